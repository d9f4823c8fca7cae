#!/usr/bin/env python3
"""Latte's CPU backend and PyTorch's CPU side by side on one UNet step, interleaved.

One process pair per shape: this script (PyTorch, the UNet of bench/torch_unet.py in fp32) and
`latte bench unet --backend cpu --interleave` (Java), which runs a timed step each time it reads a
line. They take turns, step for step (ABBA order), so both see the same machine: on a shared
machine the load moves, and it moves for both. Both run the same weights: `latte export-random`
writes the seeded random weights that `bench unet --config` makes in memory, and both sides load
that folder (Latte with `bench unet --weights`, memory-mapped). Writes one JSON with both sides, their ratio, the machine (lscpu model and flags),
the thread counts and the load average before, during and after.

PyTorch's environment, set here before torch is imported (and recorded in the JSON):
  OPENBLAS_CORETYPE=SkylakeX where lscpu lists avx512f (Debian's OpenBLAS otherwise picks a
  slower kernel in this VM), OMP_WAIT_POLICY=PASSIVE (spinning OpenMP workers steal the cores
  the other side needs), OMP_NUM_THREADS and torch.set_num_threads = --threads.

  python3 bench/cpu_vs_torch.py --config sd15 --shapes 512x512x1,512x512x2,256x256x1 --rounds 5 \
      --json bench/results/cpu-vs-torch-sd15.json
  python3 bench/cpu_vs_torch.py --config tests/src/test/resources/golden/unet-tiny --shapes 128x128x2 \
      --rounds 20 --json bench/results/cpu-vs-torch-tiny.json

Needs Debian's python3-torch with OpenBLAS as its BLAS (apt-get install python3-torch libopenblas0-pthread:
without the second package PyTorch runs on the reference BLAS, which the script refuses) and a built bin/latte.
"""
import argparse, datetime, gc, json, mmap, os, statistics, struct, subprocess, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def lscpu():
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    info = {}
    for line in out.splitlines():
        k, _, v = line.partition(":")
        info[k.strip()] = v.strip()
    return info


CPU = lscpu()
FLAGS = CPU.get("Flags", "").split()
ENV = {"OMP_WAIT_POLICY": "PASSIVE"}
if "avx512f" in FLAGS:
    ENV["OPENBLAS_CORETYPE"] = "SkylakeX"


def blas_libraries():
    """The BLAS shared objects this process mapped (torch's BLAS_INFO=generic means libblas.so.3, whichever
    Debian alternative provides it)."""
    libs = set()
    with open("/proc/self/maps") as f:
        for line in f:
            path = line.split()[-1]
            if "blas" in os.path.basename(path) or "/mkl" in path:
                libs.add(os.path.realpath(path))
    return sorted(libs)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="sd15", help="sd15 or a folder with config.json (as bench unet --config)")
    p.add_argument("--shapes", default="512x512x1", help="HxWxBATCH,... in image pixels")
    p.add_argument("--context", type=int, default=77)
    p.add_argument("--rounds", type=int, default=5, help="timed steps per side and shape")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--weights", help="folder for the exported weights (default /tmp/latte-random-<config>)")
    p.add_argument("--latte", default=os.path.join(ROOT, "bin", "latte"))
    p.add_argument("--latte-heap", default="12g", help="the JVM's -Xmx")
    p.add_argument("--allow-reference-blas", action="store_true",
                   help="run even when PyTorch's BLAS is the unoptimised reference one")
    p.add_argument("--json", required=True)
    return p.parse_args()


def rss():
    r = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                r[line.split(":")[0]] = int(line.split()[1]) * 1024
    return r.get("VmRSS"), r.get("VmHWM")


def load_weights(model, path):
    """Loads a safetensors file by memory map: no second copy of 3.4 GB on the heap."""
    import torch
    dtypes = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}
    with open(path, "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
    n = struct.unpack("<Q", mm[:8])[0]
    header = json.loads(mm[8:8 + n])
    sd = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        dt = dtypes[t["dtype"]]
        count = (b - a) // torch.tensor([], dtype=dt).element_size()
        sd[name] = torch.frombuffer(mm, dtype=dt, count=count, offset=8 + n + a).reshape(t["shape"])
    model.load_state_dict(sd, strict=True)
    del sd
    gc.collect()
    try:
        mm.close()
    except BufferError:
        pass


def stats(v):
    s = sorted(v)

    def pct(q):
        x = (len(s) - 1) * q
        lo = int(x)
        hi = min(lo + 1, len(s) - 1)
        return s[lo] + (s[hi] - s[lo]) * (x - lo)
    return {"median": statistics.median(s), "p10": pct(0.1), "p90": pct(0.9), "min": s[0], "max": s[-1]}


def main():
    a = parse_args()
    os.environ.update(ENV)
    os.environ["OMP_NUM_THREADS"] = str(a.threads)
    import torch  # after the environment: OpenBLAS and OpenMP read it when they load
    import torch.nn.functional as F
    attention = "F.scaled_dot_product_attention"
    if not hasattr(F, "scaled_dot_product_attention"):
        # torch < 2.0 (Debian 12 ships 1.13): what diffusers' AttnProcessor does there, baddbmm
        # scores, softmax, bmm (the whole score matrix is materialised)
        def sdpa(q, k, v):
            shape = q.shape
            q, k, v = (x.reshape(-1, x.shape[-2], x.shape[-1]) for x in (q, k, v))
            s = torch.baddbmm(torch.empty(q.shape[0], q.shape[1], k.shape[1], dtype=q.dtype), q,
                              k.transpose(-1, -2), beta=0, alpha=q.shape[-1] ** -0.5)
            return torch.bmm(s.softmax(dim=-1), v).reshape(shape[:-1] + (v.shape[-1],))
        F.scaled_dot_product_attention = sdpa
        attention = "baddbmm + softmax + bmm (diffusers' AttnProcessor; torch < 2.0 has no SDPA)"
    sys.path.insert(0, HERE)
    from torch_unet import UNet
    torch.set_num_threads(a.threads)
    blas = blas_libraries()
    if not any("openblas" in b or "mkl" in b for b in blas) and not a.allow_reference_blas:
        raise SystemExit("PyTorch's BLAS is %s, not OpenBLAS or MKL: Debian's python3-torch pulls in the "
                         "reference BLAS (libblas3), ~20x slower; apt-get install libopenblas0-pthread "
                         "(or pass --allow-reference-blas to measure it anyway)" % (blas or "unknown"))

    name = os.path.basename(os.path.normpath(a.config))
    weights = a.weights or "/tmp/latte-random-" + name
    java_env = dict(os.environ, LATTE_JAVA_OPTS="-Xmx" + a.latte_heap)
    if not os.path.exists(os.path.join(weights, "diffusion_pytorch_model.safetensors")):
        print("exporting %s's seeded random weights (fp32) to %s..." % (a.config, weights), file=sys.stderr)
        subprocess.run([a.latte, "export-random", "--config", a.config, "--dtype", "fp32", "--seed", "0",
                        "--out", weights], check=True, env=java_env)
    cfg = json.load(open(os.path.join(weights, "config.json")))
    git = subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    report = {
        "schema": "latte-cpu-vs-torch/1",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(), "commit": git,
        "machine": {"model": CPU.get("Model name"), "cpus": CPU.get("CPU(s)"), "flags": FLAGS,
                    "l2": CPU.get("L2 cache"), "l3": CPU.get("L3 cache"), "hypervisor": CPU.get("Hypervisor vendor")},
        "threads": a.threads, "torch_env": dict(ENV, OMP_NUM_THREADS=str(a.threads)),
        "torch": {"version": torch.__version__, "mkldnn": torch.backends.mkldnn.is_available(),
                  "num_threads": torch.get_num_threads(), "attention": attention, "blas": blas,
                  "config": torch.__config__.show()},
        "config": a.config, "weights": "seeded random (latte export-random --seed 0), fp32, both sides loading that folder"
                   " (Latte: bench unet --weights, memory-mapped)",
        "timing": "wall clock per step; the two sides take turns step for step (ABBA), each after one warm-up",
        "load_average_start": os.getloadavg(), "rows": [],
    }
    for shape in a.shapes.split(","):
        h, w, b = (int(x) for x in shape.split("x"))
        print("== %s %dx%d batch %d" % (name, h, w, b), file=sys.stderr)
        latte_json = a.json + ".latte-%dx%dx%d.json" % (h, w, b)
        latte = subprocess.Popen([a.latte, "bench", "unet", "--weights", weights, "--backend", "cpu", "--threads",
                                  str(a.threads), "--height", str(h), "--width", str(w), "--batch", str(b),
                                  "--context", str(a.context), "--warmup", str(a.warmup), "--iters", str(a.rounds),
                                  "--interleave", "--json", latte_json],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=java_env)
        model = UNet(cfg)
        load_weights(model, os.path.join(weights, "diffusion_pytorch_model.safetensors"))
        model = model.float().eval()
        g = torch.Generator().manual_seed(0)
        sample = torch.randn(b, cfg.get("in_channels", 4), h // 8, w // 8, generator=g)
        ctx_dim = model.mid_block.attentions[0].transformer_blocks[0].attn2.to_k.in_features
        ctx = torch.randn(b, a.context, ctx_dim, generator=g)
        t = torch.full((b,), 500.0)
        with torch.inference_mode():
            for _ in range(a.warmup):
                out = model(sample, t, ctx)
            assert torch.isfinite(out).all(), "torch: non-finite output"
            line = latte.stdout.readline().strip()
            if line != "ready":
                latte.kill()
                raise SystemExit("latte bench unet did not start (said %r)" % line)
            torch_ms, latte_ms, loads = [], [], []
            for r in range(a.rounds):
                for side in (("torch", "latte") if r % 2 == 0 else ("latte", "torch")):
                    if side == "torch":
                        t0 = time.perf_counter()
                        model(sample, t, ctx)
                        torch_ms.append((time.perf_counter() - t0) * 1e3)
                    else:
                        latte.stdin.write("\n")
                        latte.stdin.flush()
                        reply = latte.stdout.readline().split()
                        if len(reply) != 2 or reply[0] != "step":
                            latte.kill()
                            raise SystemExit("latte bench unet: unexpected reply %r" % reply)
                        latte_ms.append(float(reply[1]))
                loads.append(os.getloadavg()[0])
                print("  round %d: torch %.1f ms, latte %.1f ms, load %.1f"
                      % (r + 1, torch_ms[-1], latte_ms[-1], loads[-1]), file=sys.stderr)
        torch_rss, torch_hwm = rss()
        latte.stdin.close()
        for line in latte.stdout:
            pass
        if latte.wait() != 0:
            raise SystemExit("latte bench unet failed (exit %d)" % latte.returncode)
        lj = json.load(open(latte_json))
        os.remove(latte_json)
        ts, ls = stats(torch_ms), stats(latte_ms)
        report["rows"].append({
            "height": h, "width": w, "batch": b, "latent": [h // 8, w // 8], "context_length": a.context,
            "rounds": a.rounds,
            "torch": {"median_ms": ts["median"], "p10_ms": ts["p10"], "p90_ms": ts["p90"], "raw_ms": torch_ms,
                      "resident_bytes": torch_rss, "peak_resident_bytes": torch_hwm,
                      "weight_bytes": sum(p.numel() * p.element_size() for p in model.parameters())},
            "latte": {"median_ms": ls["median"], "p10_ms": ls["p10"], "p90_ms": ls["p90"], "raw_ms": latte_ms,
                      "resident_bytes": lj["host"]["resident_bytes"],
                      "peak_resident_bytes": lj["host"]["peak_resident_bytes"],
                      "packed_weight_bytes": lj["host"]["packed_weight_bytes"],
                      "weight_bytes": lj["memory"]["weight_bytes"], "arena_bytes": lj["memory"]["arena_bytes"],
                      "vector_api": lj["host"]["vector_api"], "commit": lj.get("commit"),
                      "jdk": lj.get("machine", {}).get("jdk")},
            "ratio_torch_over_latte": ts["median"] / ls["median"],
            "load_average_per_round": loads,
        })
        print("  median: torch %.1f ms, latte %.1f ms: latte is %.2fx torch's speed"
              % (ts["median"], ls["median"], ts["median"] / ls["median"]), file=sys.stderr)
        del model, sample, ctx, out
        gc.collect()
    report["load_average_end"] = os.getloadavg()
    report["note"] = ("load averages are of the whole machine; above the CPU count other processes shared the"
                      " cores, with both sides alike (they alternate step by step)")
    with open(a.json, "w") as f:
        f.write(json.dumps(report, indent=2) + "\n")
    print("wrote " + a.json, file=sys.stderr)


if __name__ == "__main__":
    main()
