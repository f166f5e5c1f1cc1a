#!/usr/bin/env bash
# The lessons' training on a CUDA GPU, in one short go (about 5 minutes on one modern GPU).
#
#     bash bench/gpu_check.sh            # from the repository root, after `make setup`
#
# Prints: the GPU; the training command (full fine-tuning on support_sentiment) in each
# precision (fp32 with TF32, bf16, fp16) and with --precision auto, their training times
# side by side as ratios and what auto chose; LoRA and head-only runs; the same command on
# the CPU for comparison; the command's phase table on the GPU (bench/command_phases.py);
# and the runtime of lesson 03 with the larger GPU settings (FINETUNE_COURSE_FULL=1). Nothing is downloaded; the outputs go to a temporary folder.
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

echo "--- precision candidates: full fine-tuning, support_sentiment, max length 128, 3 epochs, batches of 16"
run gpu-fp32-tf32 --device cuda --strategy full --epochs 3 --max-length 128 --precision no
run gpu-bf16      --device cuda --strategy full --epochs 3 --max-length 128 --precision bf16
run gpu-fp16      --device cuda --strategy full --epochs 3 --max-length 128 --precision fp16
run gpu-auto      --device cuda --strategy full --epochs 3 --max-length 128
"$PY" - "$OUT" <<'PYEOF'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
t = {n: json.loads((out / n / "metrics.json").read_text()) for n in ("gpu-fp32-tf32", "gpu-bf16", "gpu-fp16", "gpu-auto")}
base = t["gpu-fp32-tf32"]["train_seconds"]
print("training time relative to fp32 (TF32): " + ", ".join(
    f"{n[4:]} {m['train_seconds'] / base:.2f}x" for n, m in t.items()))
print(f"auto chose {t['gpu-auto']['precision']} ({t['gpu-auto']['precision_reason']})")
PYEOF

echo "--- the other strategies, and the CPU for comparison"
run gpu-lora      --device cuda --strategy lora      --epochs 3 --max-length 128
run gpu-head-only --device cuda --strategy head_only --epochs 3 --max-length 128
run cpu-full      --device cpu  --strategy full      --epochs 3 --max-length 128

echo "--- where the command's wall time goes on the GPU"
"$PY" bench/command_phases.py -- --device cuda

echo "--- lesson 03 with the larger settings (FINETUNE_COURSE_FULL=1)"
FINETUNE_COURSE_FULL=1 "$PY" tools/run_all.py solutions/03_freezing_and_lora.ipynb | tail -6
