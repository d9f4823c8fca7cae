#!/usr/bin/env python3
"""Static evidence about Latte's kernels until a GPU measures them: bench/results/kernels-static.json.

For every kernel of kernels/src/main/resources/dev/latte/kernels/*.cu, built by nvcc for sm_90:
  * ptxas -v: registers, spill bytes, stack, static shared memory;
  * the main loop's instruction mix: the innermost loop (a backward branch) that holds the
    kernel's tensor-core instructions (else the loop with the most FMAs), counted in PTX (the
    virtual ISA ptxas compiles: counts before ptxas's scheduling and address folding). SASS counts
    (HMMA per instruction from cuobjdump -sass) are not made here: this machine's CUDA toolkit has
    no cuobjdump or nvdisasm. Reported:
    instructions per mma (HMMA/IMMA in SASS), and useful FLOPs per warp instruction, which compares
    a tensor-core loop with an FMA loop (m16n8k16 = 4096 FLOP, m16n8k32 s8 = 8192, an FFMA = 64
    per warp);
and, for every distinct op of an SD1.5 step (`latte bench kernels --list`: FLOPs and the fewest
bytes each op must move), the roofline bound max(FLOP / peak, bytes / bandwidth) on an H100 SXM
(989 TFLOP/s dense fp16 with fp32 accumulation, 3.35 TB/s HBM3; NVIDIA's datasheet) and the sum
per step. None of this is a measured time.

Usage: python3 bench/kernels_static.py [--out bench/results/kernels-static.json]
"""
import argparse
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(ROOT, "kernels/src/main/resources/dev/latte/kernels")
H100_FP16_TFLOPS = 989.4
H100_BW_TBS = 3.35
# the versions side by side (Tactics.VERSIONS): which kernel file is which version of which family
VERSIONS = {"attention.cu": "attention=v1", "attention_v2.cu": "attention=v2", "gemm.cu": "linear=v1",
            "conv.cu": "conv=v1", "int8_gemm.cu": "int8 gemm", "gemm_v2.cu": "linear=v2", "conv_v2.cu": "conv=v2"}
MMA_FLOPS = {"m16n8k16": 4096, "m16n8k8": 2048, "m16n8k32": 8192}


def nvcc():
    for c in [os.environ.get("CUDA_HOME", "") + "/bin/nvcc", "/usr/local/cuda/bin/nvcc", shutil.which("nvcc") or ""]:
        if c and os.access(c, os.X_OK):
            return c
    sys.exit("kernels_static: no nvcc (CUDA_HOME/bin, /usr/local/cuda/bin, PATH)")


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("kernels_static: %s failed:\n%s%s" % (" ".join(cmd), r.stdout, r.stderr))
    return r.stdout + r.stderr


def ptxas_report(text):
    out, kernel = {}, None
    for line in text.splitlines():
        m = re.search(r"Compiling entry function '([^']+)'", line)
        if m:
            kernel = m.group(1)
            out[kernel] = {}
            continue
        if kernel is None:
            continue
        m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if m:
            out[kernel].update(stack_bytes=int(m.group(1)), spill_store_bytes=int(m.group(2)),
                               spill_load_bytes=int(m.group(3)))
        m = re.search(r"Used (\d+) registers", line)
        if m:
            out[kernel]["registers"] = int(m.group(1))
            m2 = re.search(r"(\d+) bytes smem", line)
            out[kernel]["static_shared_bytes"] = int(m2.group(1)) if m2 else 0
    return out


# ------------------------------------------------------------------ PTX

def ptx_functions(ptx):
    """entry name -> list of instruction/label lines of its body."""
    funcs, name, body, depth = {}, None, [], 0
    for raw in ptx.splitlines():
        line = raw.split("//")[0].strip()
        m = re.match(r"\.visible \.entry (\w+)\(", line) or re.match(r"\.entry (\w+)\(", line)
        if m:
            name, body, depth = m.group(1), [], 0
            continue
        if name is None:
            continue
        depth += line.count("{") - line.count("}")
        if line in ("{", "}") or not line:
            if depth == 0 and line == "}":
                funcs[name] = body
                name = None
            continue
        body.append(line)
    return funcs


def ptx_is_instruction(line):
    return not line.endswith(":") and not line.startswith(".") and line not in ("{", "}")


def ptx_loops(body):
    labels = {}
    for i, l in enumerate(body):
        if l.endswith(":"):
            labels[l[:-1]] = i
    loops = []
    for i, l in enumerate(body):
        m = re.search(r"\bbra(?:\.uni)?\s+(\$?\w+)", l)
        if m and m.group(1) in labels and labels[m.group(1)] < i:
            loops.append((labels[m.group(1)], i))
    return loops


def ptx_mix(lines):
    mix = {"instructions": 0, "mma": 0, "mma_flops": 0, "fma_f32": 0, "ldmatrix": 0, "cp_async": 0,
           "ld_shared": 0, "st_shared": 0, "ld_global": 0, "shfl": 0, "ex2": 0, "div_rem_int": 0}
    for l in lines:
        if not ptx_is_instruction(l):
            continue
        op = l.split()[0]
        if op.startswith("@"):
            op = l.split()[1]
        mix["instructions"] += 1
        if op.startswith("mma.sync"):
            mix["mma"] += 1
            shape = re.search(r"m16n8k\d+", op).group(0)
            mix["mma_flops"] += MMA_FLOPS[shape]
        elif op.startswith("fma.rn.f32") or op.startswith("fma.rn.ftz.f32"):
            mix["fma_f32"] += 1
        elif op.startswith("ldmatrix"):
            mix["ldmatrix"] += 1
        elif op.startswith("cp.async") and not op.startswith("cp.async.commit") and not op.startswith("cp.async.wait"):
            mix["cp_async"] += 1
        elif op.startswith("ld.shared"):
            mix["ld_shared"] += 1
        elif op.startswith("st.shared"):
            mix["st_shared"] += 1
        elif op.startswith("ld.global"):
            mix["ld_global"] += 1
        elif op.startswith("shfl"):
            mix["shfl"] += 1
        elif op.startswith("ex2"):
            mix["ex2"] += 1
        elif re.match(r"(div|rem)\.(s|u)(32|64)", op):
            mix["div_rem_int"] += 1
    return mix


def main_loop(body, loops):
    """The innermost loop holding tensor-core instructions, else the loop with the most FMAs."""
    def mix(a, b):
        m = ptx_mix(body[a:b + 1])
        # loops inside this one: their bodies are counted once here, though they run several times
        m["nested_loops"] = sum(1 for (c, d) in loops if a <= c and d <= b and (c, d) != (a, b))
        return m
    mixes = [(b - a, mix(a, b)) for (a, b) in loops]
    mma = [(size, m) for size, m in mixes if m["mma"] > 0]
    if mma:
        return min(mma, key=lambda x: x[0])[1]
    fma = [(size, m) for size, m in mixes if m["fma_f32"] > 0]
    return max(fma, key=lambda x: (x[1]["fma_f32"], -x[0]))[1] if fma else None


def summarise(mix):
    flops = mix["mma_flops"] + 64 * mix["fma_f32"]
    return dict(mix, instructions_per_mma=round(mix["instructions"] / mix["mma"], 2) if mix["mma"] else None,
                flops_per_warp_instruction=round(flops / mix["instructions"], 1) if mix["instructions"] else 0)


# ------------------------------------------------------------------ roofline

def roofline():
    latte = os.path.join(ROOT, "bin/latte")
    text = run([latte, "bench", "kernels", "--list"])
    rows, totals = [], {}
    for line in text.splitlines():
        m = re.match(r"^(.{24}) (\S+)\s+(\d+)\s+([\d.]+)\s+([\d.]+) (.*)$", line)
        if not m or m.group(1).strip() == "config":
            continue
        config, op, count = m.group(1).strip(), m.group(2), int(m.group(3))
        gflop, mb = float(m.group(4)), float(m.group(5))
        t_compute = gflop * 1e9 / (H100_FP16_TFLOPS * 1e12) * 1e3
        t_memory = mb * 1e6 / (H100_BW_TBS * 1e12) * 1e3
        ms = max(t_compute, t_memory)
        rows.append(dict(config=config, op=op, shape=m.group(6), count=count, gflop=gflop, mbytes=mb,
                         intensity_flop_per_byte=round(gflop * 1e3 / mb, 1) if mb else None,
                         bound="compute" if t_compute >= t_memory else "memory",
                         roofline_ms=round(ms, 5), roofline_ms_per_step=round(ms * count, 5)))
        t = totals.setdefault(config, {"roofline_ms_per_step": 0.0, "gflop_per_step": 0.0, "ops": 0})
        t["roofline_ms_per_step"] += ms * count
        t["gflop_per_step"] += gflop * count
        t["ops"] += count
    for t in totals.values():
        t["roofline_ms_per_step"] = round(t["roofline_ms_per_step"], 3)
        t["gflop_per_step"] = round(t["gflop_per_step"], 1)
    return rows, totals


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "bench/results/kernels-static.json"))
    ap.add_argument("--no-roofline", action="store_true")
    ap.add_argument("--keep-roofline", action="store_true",
                    help="take the roofline block from the existing --out file (it depends on the op table only)")
    args = ap.parse_args()
    cc = nvcc()
    version = run([cc, "--version"]).strip().splitlines()[-1]
    kernels = []
    with tempfile.TemporaryDirectory() as tmp:
        for f in sorted(os.listdir(SRC)):
            if not f.endswith(".cu"):
                continue
            path = os.path.join(SRC, f)
            cubin, ptxf = os.path.join(tmp, f + ".cubin"), os.path.join(tmp, f + ".ptx")
            report = ptxas_report(run([cc, "-cubin", "-arch=sm_90", "-std=c++17", "-Xptxas", "-v", path, "-o", cubin]))
            run([cc, "-ptx", "-arch=sm_90", "-std=c++17", path, "-o", ptxf])
            funcs = ptx_functions(open(ptxf).read())
            for name in sorted(funcs):
                body = funcs[name]
                entry = dict(file=f, version=VERSIONS.get(f), kernel=name, **report.get(name, {}))
                entry["ptx_whole_kernel"] = summarise(ptx_mix(body))
                loop = main_loop(body, ptx_loops(body))
                entry["ptx_main_loop"] = summarise(loop) if loop else None
                kernels.append(entry)
    doc = {
        "schema": "latte-kernels-static/1",
        "what": "static facts about each kernel (nvcc sm_90 build); NOT measured times",
        "made": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip(),
        "nvcc": version,
        "instruction_counts_from": "PTX (before ptxas); SASS counts need cuobjdump, which this toolkit lacks",
        "main_loop": "innermost backward-branch loop holding the kernel's mma instructions, else its FMAs",
        "kernels": kernels,
    }
    if args.keep_roofline:
        doc["roofline"] = json.load(open(args.out))["roofline"]
    elif not args.no_roofline:
        rows, totals = roofline()
        doc["roofline"] = {
            "device": "H100 SXM (datasheet): %.1f TFLOP/s dense fp16 tensor core with fp32 accumulation, %.2f TB/s"
                      % (H100_FP16_TFLOPS, H100_BW_TBS),
            "model": "per op max(FLOP / peak, bytes / bandwidth): a lower bound no kernel beats, not an estimate of"
                     " Latte's time",
            "per_step": totals, "ops": rows}
    tmp = args.out + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(doc, fh, indent=1)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, args.out)
    print("wrote %s (%d kernels)" % (args.out, len(kernels)))


if __name__ == "__main__":
    main()
