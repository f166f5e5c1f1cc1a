"""The training command's learning rate: a sweep over the course's sequence and pair data sets.

    .venv/bin/python bench/lr_sweep.py                 # full fine-tuning, every course data set
    .venv/bin/python bench/lr_sweep.py --data legal_topics --lrs 5e-5 1e-4

Runs ``python -m finetune_utils.train`` with its defaults (3 epochs, the best epoch kept by
validation macro-F1, max length 128, seed 0) at each learning rate, and prints for each
data set the validation macro-F1 of the epoch kept and the test macro-F1, the best rate by
test macro-F1, and how far the command's default rate (``train.DEFAULT_LR``) lands from it.
The Markdown table it prints is the one in the README. Nothing is downloaded; the runs go
to a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from finetune_utils import data, train  # noqa: E402

DATA_SETS = [name for name in data.names() if data.SCHEMAS[name].task in ("sequence", "pair")]
LRS = (2e-5, 5e-5, 1e-4, 2e-4, 4e-4)


def run(name: str, lr: float, strategy: str, out: Path, extra: list[str]) -> dict:
    cmd = [sys.executable, "-m", "finetune_utils.train", "--data", name, "--strategy", strategy, "--lr", str(lr),
           "--output", str(out), "--quiet", *extra]
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"FAILED: {' '.join(cmd)}\n{done.stderr[-2000:]}")
    metrics = json.loads((out / "metrics.json").read_text())
    return {"val": metrics["validation"]["macro_f1"], "test": metrics["test"]["macro_f1"],
            "epoch": metrics["epoch_kept"], "wall": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", nargs="+", default=DATA_SETS, choices=DATA_SETS)
    parser.add_argument("--lrs", nargs="+", type=float, default=list(LRS))
    parser.add_argument("--strategy", default="full", choices=sorted(train.DEFAULT_LR))
    parser.add_argument("extra", nargs="*", help="further options for the command, after --")
    args = parser.parse_args()
    default = train.DEFAULT_LR[args.strategy]
    lrs = sorted(set(args.lrs) | {default})
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.data:
            for lr in lrs:
                r = run(name, lr, args.strategy, Path(tmp) / f"{name}-{lr:g}", args.extra)
                results[name, lr] = r
                print(f"{name:<18} lr {lr:<7g} validation macro-F1 {r['val']:.3f} (epoch {r['epoch']})  "
                      f"test macro-F1 {r['test']:.3f}  ({r['wall']:.0f} s)", flush=True)

    print(f"\nTest macro-F1 of `python -m finetune_utils.train --strategy {args.strategy}` by learning rate "
          "(validation macro-F1 of the epoch kept in brackets); **bold**: the default.\n")
    print("| data set | " + " | ".join(f"**{lr:g}**" if lr == default else f"{lr:g}" for lr in lrs)
          + " | best | default − best |")
    print("|---|" + "---|" * (len(lrs) + 2))
    worst = 0.0
    for name in args.data:
        row = [results[name, lr] for lr in lrs]
        best_lr = max(lrs, key=lambda lr: results[name, lr]["test"])
        gap = results[name, default]["test"] - results[name, best_lr]["test"]
        worst = min(worst, gap)
        print(f"| {name} | " + " | ".join(f"{r['test']:.3f} ({r['val']:.3f})" for r in row)
              + f" | {best_lr:g} | {gap:+.3f} |")
    print(f"\nThe default ({default:g}) lands at most {-worst:.3f} macro-F1 below the best rate of the sweep.")


if __name__ == "__main__":
    main()
