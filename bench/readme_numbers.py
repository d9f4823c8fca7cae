#!/usr/bin/env python3
"""Rewrites the README's measured numbers from what the tests printed, so they cannot go stale.

Run after `mvn -B verify` (which leaves each test's stdout in target/surefire-reports/TEST-*.xml):

    python3 bench/readme_numbers.py           # rewrites README.md between the "generated" markers
    python3 bench/readme_numbers.py --check   # exit 1 if README.md differs from the tests' output

Blocks (each between <!-- generated:NAME --> and <!-- /generated:NAME -->):
  psnr       UNetTinyGoldenTest and OpsGoldenTest (CPU backend rows): PSNR per stored tensor, lowest over the cases
  schedulers SchedulerGoldenTest: alphas_cumprod and the worst step of each trajectory
  kill       OutputKillTest: where each kill -9 landed and what it left
  cpu-kernels bench/results/kernels-cpu-sd15.json (bench kernels --backend cpu): time and rate per op kind over an SD1.5 step
  torch      bench/results/cpu-vs-torch-*.json (bench/cpu_vs_torch.py): Latte's CPU backend vs PyTorch, side by side
  cpu-memory bench/results/cpu-memory-*.json (bench unet --weights/--config on the CPU): load, RSS and its terms
"""
import glob
import json
import os
import re
import sys
import xml.etree.ElementTree as ET

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_output():
    text = []
    for f in sorted(glob.glob(os.path.join(ROOT, "*", "target", "surefire-reports", "TEST-*.xml"))):
        for el in ET.parse(f).getroot().iter("system-out"):
            text.append(el.text or "")
    return "\n".join(text)


def psnr_block(out):
    cases = {}  # tensor -> {case: dB}
    # "unet-tiny [BACKEND] case-N TENSOR PSNR X dB": the CPU backend's rows (or rows naming none)
    for backend, case, name, db in re.findall(
            r"unet-tiny (?:(\w+) )?(case-\d+) (\S+)\s+PSNR ([-\d.]+|NaN|Infinity) dB", out):
        if backend in ("", "cpu"):
            cases.setdefault(name, {})[case] = float(db)
    ops = list({name: float(db) for name, db in re.findall(r"\[ops/cpu\] (\S+)\s+PSNR\s+([-\d.]+) dB", out)}.values())
    if "out" not in cases or not ops:
        sys.exit("readme_numbers: no UNetTinyGoldenTest/OpsGoldenTest output in */target/surefire-reports;"
                 " run `mvn -B verify` first")
    out_dbs = cases.pop("out")
    lowest = {name: min(v.values()) for name, v in cases.items()}
    names = sorted(lowest, key=lowest.get)
    rows = [
        "| tensor | PSNR |",
        "|---|---|",
        "| `out` (the UNet's output), cases %s | %s dB (lowest %.2f) |" % (
            "/".join(c.split("-")[1] for c in sorted(out_dbs)),
            " / ".join("%.2f" % out_dbs[c] for c in sorted(out_dbs)), min(out_dbs.values())),
        "| %d intermediates (`%s` … `%s`), lowest of %d cases | %.2f–%.2f dB |" % (
            len(lowest), names[0], names[-1], len(out_dbs), min(lowest.values()), max(lowest.values())),
        "| %d per-op goldens (conv, GroupNorm, attention, GEGLU, timestep embedding, …) | %.2f–%.2f dB |" % (
            len(ops), min(ops), max(ops)),
    ]
    return "\n".join(rows)


def schedulers_block(out):
    lines = []
    for name, db in re.findall(r"^(\S+) alphas_cumprod: ([-\d.]+) dB", out, re.M):
        lines.append("- `%s`: `alphas_cumprod` %s dB" % (name, db))
    for name, steps, db in re.findall(r"^(\S+): (\d+) steps, worst step ([-\d.]+) dB", out, re.M):
        lines.append("- `%s`: %s steps, every step's sample at least %s dB" % (name, steps, db))
    if not lines:
        sys.exit("readme_numbers: no SchedulerGoldenTest output; run `mvn -B verify` first")
    return "\n".join(sorted(set(lines)))


def kill_block(out):
    lines = ["- %s: %s" % m for m in re.findall(r"^KILL-TEST ([^:]+): (.+)$", out, re.M)]
    if not lines:
        sys.exit("readme_numbers: no OutputKillTest output; run `mvn -B verify` first")
    return "\n".join(lines)


def gib(b):
    return "%.2f" % (b / 2 ** 30) if b else "?"


def torch_block():
    rows = []
    for f in sorted(glob.glob(os.path.join(ROOT, "bench", "results", "cpu-vs-torch-*.json"))):
        d = json.load(open(f))
        blas = ", ".join(sorted({os.path.basename(os.path.dirname(b)) for b in d["torch"].get("blas", [])})) or "not recorded"
        name = os.path.basename(os.path.normpath(d["config"]))
        for r in d["rows"]:
            lat = r.get("latent") or [r["height"] // 8, r["width"] // 8]
            load = r.get("load_average_per_round") or []
            rows.append((name, lat[0] * lat[1], r["batch"], d["threads"],
                         "| %s, %d×%d latent, batch %d | %d | %d | %.2f s | %.2f s | **%.2f×** | %s / %s GiB | %s | %s | `%s` |" % (
                             name, lat[0], lat[1], r["batch"], d["threads"], r["rounds"],
                             r["latte"]["median_ms"] / 1000, r["torch"]["median_ms"] / 1000, r["ratio_torch_over_latte"],
                             gib(r["latte"].get("peak_resident_bytes")), gib(r["torch"].get("peak_resident_bytes")),
                             ("%.1f–%.1f" % (min(load), max(load))) if load else "?", blas, os.path.basename(f))))
    if not rows:
        sys.exit("readme_numbers: no bench/results/cpu-vs-torch-*.json; run bench/cpu_vs_torch.py first")
    head = ("| shape (fp32) | threads each | rounds | Latte median | PyTorch median | PyTorch ÷ Latte "
            "| peak RSS Latte / PyTorch | load average | PyTorch's BLAS | JSON |\n|---|---|---|---|---|---|---|---|---|---|")
    return head + "\n" + "\n".join(r[-1] for r in sorted(rows, key=lambda r: (r[0] != "sd15", -r[1], r[2], -r[3])))


def memory_block():
    rows = []
    for f in sorted(glob.glob(os.path.join(ROOT, "bench", "results", "cpu-memory-*.json"))):
        d = json.load(open(f))
        h, i = d["host"], d["input"]
        m = re.search(r"\((\w+), (memory-mapped|widened to heap copies)\)$", d["weights"])
        how = ("%s file, %s" % (m.group(1), "**mapped**" if m.group(2) == "memory-mapped" else "heap")) if m \
            else "random (in memory)"
        name = os.path.basename(os.path.normpath(d["config"]))
        mib = lambda b: "—" if not b else "%.2f GiB" % (b / 2 ** 30) if b >= 2 ** 30 else "%.1f MiB" % (b / 2 ** 20)
        rows.append((name, how, "| %s, %d×%d latent, batch %d, %s | %.1f s | %.1f s | %s GiB | %s + %s GiB | %s | %s | %s |"
                     " %.1f | `%s` |" % (
                         name, i["latent_height"], i["latent_width"], i["batch"], how, d["load_ms"] / 1000,
                         d["first_step_ms"] / 1000, gib(h["peak_resident_bytes"]), gib(h["resident_anon_bytes"]),
                         gib(h["resident_file_bytes"]), mib(h["packed_weight_bytes"]), mib(h["in_place_weight_bytes"]),
                         mib(h["arena_bytes"]), h["load_average_before"], os.path.basename(f))))
    if not rows:
        sys.exit("readme_numbers: no bench/results/cpu-memory-*.json; run bench unet --weights first")
    head = ("| model, weights | load | first step (packs) | peak RSS (VmHWM) | RSS: anon + file | packed | in place "
            "| arena | load average | JSON |\n|---|---|---|---|---|---|---|---|---|---|")
    return head + "\n" + "\n".join(r[-1] for r in sorted(rows, key=lambda r: ("sd15" not in r[0], r[0], "mapped" in r[1], r[1])))


def torch_headline_block():
    d = json.load(open(os.path.join(ROOT, "bench", "results", "cpu-vs-torch-sd15.json")))
    r = next(r for r in d["rows"] if r["batch"] == 1 and r["height"] == 512)
    return ("**Latte %.2f s, PyTorch %.2f s; peak RSS %s vs %s GiB** (%d threads each, load %.1f–%.1f)." % (
        r["latte"]["median_ms"] / 1000, r["torch"]["median_ms"] / 1000, gib(r["latte"]["peak_resident_bytes"]),
        gib(r["torch"]["peak_resident_bytes"]), d["threads"], min(r["load_average_per_round"]),
        max(r["load_average_per_round"])))


def cpu_kernels_block():
    f = os.path.join(ROOT, "bench", "results", "kernels-cpu-sd15.json")
    d = json.load(open(f))
    kinds = {}
    for c in d["cases"]:
        if c["status"] == "ok":
            k = kinds.setdefault(c["op"], [0.0, 0.0])
            k[0] += c["flops"] * c["count_per_step"]
            k[1] += c["median_ms"] * c["count_per_step"]
    flops = sum(k[0] for k in kinds.values())
    ms = sum(k[1] for k in kinds.values())
    lines = ["| op kind (%s, %d threads, load %.1f–%.1f, commit %s) | ms per step | GFLOP/s |" % (
        d["cases"][0]["config"], d["threads"], d["load_average_before"], d["load_average_after"], d["commit"][:7]),
        "|---|---|---|"]
    rest = 0.0
    for op, (f_, t) in sorted(kinds.items(), key=lambda kv: -kv[1][1]):
        if f_ / max(t, 1e-9) / 1e6 < 10:    # memory-bound ops: listed together
            rest += t
            continue
        lines.append("| %s | %s | %.1f |" % (op, format(round(t), ","), f_ / t / 1e6))
    lines.append("| everything else (norms, adds, layout changes) | %s | — |" % format(round(rest), ","))
    lines.append("| **all %.0f GFLOP** | **%s** | **%.1f** |" % (flops / 1e9, format(round(ms), ","), flops / ms / 1e6))
    return "\n".join(lines)


def main():
    out = test_output()
    blocks = {"psnr": psnr_block(out), "schedulers": schedulers_block(out), "kill": kill_block(out),
              "torch": torch_block(), "cpu-memory": memory_block(), "cpu-kernels": cpu_kernels_block(),
              "torch-headline": torch_headline_block()}
    path = os.path.join(ROOT, "README.md")
    readme = open(path, encoding="utf-8").read()
    new = readme
    for name, body in blocks.items():
        pattern = re.compile(r"(<!-- generated:%s -->\n).*?(<!-- /generated:%s -->)" % (name, name), re.S)
        if not pattern.search(new):
            sys.exit("readme_numbers: README.md has no <!-- generated:%s --> block" % name)
        new = pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(2), new)
    if "--check" in sys.argv:
        if new != readme:
            sys.exit("readme_numbers: README.md is stale; run python3 bench/readme_numbers.py")
        return
    open(path, "w", encoding="utf-8").write(new)
    print("README.md: %d generated blocks rewritten" % len(blocks))


if __name__ == "__main__":
    main()
