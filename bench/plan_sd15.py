#!/usr/bin/env python3
"""Writes bench/results/plan-sd15.json: the memory plan totals of one SD1.5 UNet step (fp16,
77 context tokens, keeping `out`) at 512² and 768², batch 1 and 2, from `bin/latte plan`.
The numbers depend on the config and the planner only, not on the machine."""
import json, os, re, subprocess, tempfile

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
shapes = []
for size in (512, 768):
    for batch in (1, 2):
        with tempfile.NamedTemporaryFile(suffix=".json") as tmp:
            cmd = ["bin/latte", "plan", "--config", "sd15", "--height", str(size), "--width", str(size),
                   "--batch", str(batch), "--dtype", "fp16", "--json", tmp.name]
            text = subprocess.run(cmd, cwd=root, check=True, capture_output=True, text=True).stdout
            plan = json.load(open(tmp.name))
        strategies = {m.group(1): {"arena_bytes_mib": float(m.group(2)), "arena_over_lower_bound": float(m.group(3))}
                      for m in re.finditer(r"^([A-Z_]+)\s+([0-9.]+)\s+([0-9.]+)$", text, re.M)}
        shapes.append({"height": size, "width": size, "latent": [size // 8, size // 8], "batch": batch,
                       "context_length": 77, "dtype": "fp16", "kept_outputs": plan["kept_outputs"],
                       "op_count": plan["op_count"], "activations": len(plan["activations"]),
                       **{k: plan[k] for k in ("naive_bytes", "lower_bound_bytes", "arena_bytes",
                                               "arena_over_lower_bound", "arena_over_naive")},
                       "best_strategy": plan["strategy"], "strategies": strategies})
commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True).stdout.strip()
dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                            capture_output=True, text=True).stdout.strip())
out = {"benchmark": "memory plan of one SD1.5 UNet step (fused op list), activations only, no weights",
       "config": "sd15 (built in: diffusers UNet2DConditionModel config of Stable Diffusion 1.5)",
       "machine_independent": True, "git_commit": commit, "worktree_dirty": dirty,
       "command": "bin/latte plan --config sd15 --height H --width W --batch B --dtype fp16 --json FILE",
       "shapes": shapes}
with open(os.path.join(root, "bench/results/plan-sd15.json"), "w") as f:
    json.dump(out, f, indent=2)
    f.write("\n")
for s in shapes:
    mib = 1 << 20
    print(f"{s['height']}x{s['width']} b{s['batch']}: naive {s['naive_bytes'] / mib:.1f} MiB, bound "
          f"{s['lower_bound_bytes'] / mib:.1f} MiB, arena {s['arena_bytes'] / mib:.1f} MiB, "
          f"{s['arena_over_lower_bound']:.4f} x bound, {s['arena_over_naive']:.3f} x naive")
