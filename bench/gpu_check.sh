#!/usr/bin/env bash
# The lessons' training on a CUDA GPU, in one short go (about 5 minutes on one modern GPU).
#
#     bash bench/gpu_check.sh            # from the repository root, after `make setup`
#
# Prints: the GPU, then the wall time of the training command (full fine-tuning, LoRA,
# head only) on support_sentiment with bf16/fp16 mixed precision, the same command on the
# CPU for comparison (one strategy), and the runtime of lesson 03 with the larger GPU
# settings (FINETUNE_COURSE_FULL=1). Nothing is downloaded; the outputs go to a temporary folder.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

"$PY" - <<'PYEOF'
import sys, torch
if not torch.cuda.is_available():
    sys.exit("no CUDA GPU visible to PyTorch: this script is for a GPU machine")
p = torch.cuda.get_device_properties(0)
print(f"GPU: {p.name}, {p.total_memory / 2**30:.0f} GiB, bf16 {'yes' if torch.cuda.is_bf16_supported() else 'no'}; "
      f"torch {torch.__version__}, CUDA {torch.version.cuda}")
PYEOF

run() {  # name, then the command's options
  local name=$1; shift
  local start=$(date +%s.%N)
  "$PY" -m finetune_utils.train --data support_sentiment --quiet --output "$OUT/$name" "$@" > "$OUT/$name.log" 2>&1 \
    || { echo "FAILED: $name"; tail -20 "$OUT/$name.log"; exit 1; }
  local end=$(date +%s.%N)
  "$PY" - "$OUT/$name/metrics.json" "$name" "$start" "$end" <<'PYEOF'
import json, sys
m = json.load(open(sys.argv[1]))
wall = float(sys.argv[4]) - float(sys.argv[3])
print(f"{sys.argv[2]:<28} wall {wall:6.1f} s  training {m['train_seconds']:6.1f} s  precision {m['precision']:<4}  "
      f"test macro-F1 {m['test']['macro_f1']:.3f}  ({m['device']})")
PYEOF
}

echo "--- the training command (support_sentiment, max length 128, 3 epochs)"
run gpu-full      --device cuda --strategy full      --epochs 3 --max-length 128 --lr 1e-4
run gpu-lora      --device cuda --strategy lora      --epochs 3 --max-length 128 --lr 1e-3
run gpu-head-only --device cuda --strategy head_only --epochs 3 --max-length 128 --lr 1e-2
run gpu-full-fp32 --device cuda --strategy full      --epochs 3 --max-length 128 --lr 1e-4 --precision no
run cpu-full      --device cpu  --strategy full      --epochs 3 --max-length 128 --lr 1e-4

echo "--- lesson 03 with the larger settings (FINETUNE_COURSE_FULL=1)"
FINETUNE_COURSE_FULL=1 "$PY" tools/run_all.py solutions/03_freezing_and_lora.ipynb | tail -6
