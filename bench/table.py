#!/usr/bin/env python3
"""The README table from bench JSON files ("latte-bench-unet/1"): one row per run, the ratio of each
to the first Latte run without a CUDA graph. Usage: python3 bench/table.py FILE.json..."""
import json, sys


def main(paths):
    rows = []
    for p in paths:
        j = json.load(open(p))
        if j.get("schema") != "latte-bench-unet/1":
            continue
        name = j["runtime"] + (" + CUDA graph" if j.get("cuda_graph") and j["runtime"] == "latte" else "")
        rows.append((name, j))
    if not rows:
        print("no latte-bench-unet/1 files among", paths)
        return
    base = next((j for n, j in rows if n == "latte"), rows[0][1])["latency_ms"]["median"]
    print("| runtime | device | median ms (p10–p90) | vs Latte | peak MiB | weights MiB | kernels/step |")
    print("|---|---|---|---|---|---|---|")
    for n, j in rows:
        lat, mem = j["latency_ms"], j["memory"]
        mib = lambda v: "—" if v is None else "%.0f" % (v / 2**20)
        print("| %s | %s | %.2f (%.2f–%.2f) | %.2f× | %s | %s | %s |" % (
            n, j.get("device", {}).get("name", "?"), lat["median"], lat["p10"], lat["p90"], lat["median"] / base,
            mib(mem.get("peak_bytes")), mib(mem.get("weight_bytes")), j.get("kernels_per_step") or "—"))


if __name__ == "__main__":
    main(sys.argv[1:])
