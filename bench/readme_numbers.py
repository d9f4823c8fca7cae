#!/usr/bin/env python3
"""Rewrites the README's measured numbers from what the tests printed, so they cannot go stale.

Run after `mvn -B verify` (which leaves each test's stdout in target/surefire-reports/TEST-*.xml):

    python3 bench/readme_numbers.py           # rewrites README.md between the "generated" markers
    python3 bench/readme_numbers.py --check   # exit 1 if README.md differs from the tests' output

Blocks (each between <!-- generated:NAME --> and <!-- /generated:NAME -->):
  psnr       UNetTinyGoldenTest and OpsGoldenTest (CPU backend rows): PSNR per stored tensor, lowest over the cases
  schedulers SchedulerGoldenTest: alphas_cumprod and the worst step of each trajectory
  kill       OutputKillTest: where each kill -9 landed and what it left
"""
import glob
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


def main():
    out = test_output()
    blocks = {"psnr": psnr_block(out), "schedulers": schedulers_block(out), "kill": kill_block(out)}
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
