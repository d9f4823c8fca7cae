#!/usr/bin/env bash
# bench/gpu-run.sh: everything issue #7 measures, in one run on a GPU machine (H100/H200), after
# `../shared/tools/gpu-bundle` here (the machine has no Maven and no network; .gpu/ carries the
# classes, the jars and a JRE). Writes at most 8 files to $OUT (the device tool's limit):
#   tests.txt                       bash .gpu/test.sh (every test, GPU tests included; JUnit XML in /tmp)
#   kernels.json                    latte bench kernels (fp16, SD1.5 at 512 and 768, batch 2)
#   latte-unet.json, latte-unet-graph.json   latte bench unet --config sd15, eager and as one CUDA graph
#   torch-eager.json, torch-compile.json     bench/torch_unet.py on the same random weights
#   log.txt                         everything printed
# Each step runs even if one before it failed; bench/table.py turns the JSON into the README table.
set -uo pipefail
out=${OUT:-/tmp/latte-bench}
mkdir -p "$out"
exec > >(tee -a "$out/log.txt") 2>&1
cd "$(dirname "$0")/.."
J=(bash .gpu/java.sh -Xmx32g)
size=(--height 512 --width 512 --batch 2)
bash .gpu/probe.sh
OUT=/tmp bash .gpu/test.sh > "$out/tests.txt" 2>&1; echo "tests: exit $? ($(grep -E 'tests (successful|failed|skipped)' "$out/tests.txt" | tr -s ' ' | tr '\n' ';'))"
"${J[@]}" dev.latte.cli.Main bench kernels --json "$out/kernels.json" | tail -n 12
"${J[@]}" dev.latte.cli.Main bench unet --config sd15 --backend cuda --dtype fp16 "${size[@]}" --iters 20 \
  --json "$out/latte-unet.json"
"${J[@]}" dev.latte.cli.Main bench unet --config sd15 --backend cuda --dtype fp16 "${size[@]}" --iters 20 --graph \
  --json "$out/latte-unet-graph.json"
"${J[@]}" dev.latte.cli.Main export-random --config sd15 --seed 0 --dtype fp16 --out /tmp/sd15-random
for mode in eager compile; do
  PYTHONUNBUFFERED=1 python3 bench/torch_unet.py --model /tmp/sd15-random --mode $mode "${size[@]}" --iters 20 \
    --json "$out/torch-$mode.json"
done
python3 bench/table.py "$out"/*.json
