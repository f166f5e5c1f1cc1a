"""The training command on 1 versus 2 CPU processes, side by side in one run.

    python bench/train_processes.py [--seeds 0 1 2]

Runs ``python -m finetune_utils.train`` on support_sentiment (max length 64, 2 epochs)
on one process with batch 16 for each seed (the single-process band of test
macro-F1), then ``torchrun --nproc_per_node 2`` with batch 8 per process (the same
global batch and number of steps) for the first seed. Prints wall seconds, training
seconds and test macro-F1 for each, and the ratios. With dropout on, as here, the two
runs differ by dropout's random draws as well; tests/test_train.py switches dropout off
and checks that 2 x 8 trains exactly as 1 x 16, step by step.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMON = ["--data", "support_sentiment", "--max-length", "64", "--epochs", "2", "--quiet"]


def run(launcher: list[str], extra: list[str], out: Path) -> dict:
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "MASTER_ADDR": "127.0.0.1"}
    start = time.perf_counter()
    result = subprocess.run(launcher + ["-m", "finetune_utils.train"] + COMMON + extra + ["--output", str(out)],
                            cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if result.returncode:
        sys.exit(f"run failed ({' '.join(launcher)} {' '.join(extra)}):\n{result.stderr[-3000:]}")
    metrics = json.loads((out / "metrics.json").read_text())
    return {"wall_s": wall, "train_s": metrics["train_seconds"], "macro_f1": metrics["test"]["macro_f1"],
            "steps": len(metrics["history"]["loss"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    bin_dir = Path(sys.executable).parent
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            r = run([sys.executable], ["--batch-size", "16", "--seed", str(seed)], Path(tmp) / f"one-{seed}")
            rows.append(("1 process x 16", seed, r))
            print(f"1 process,  seed {seed}: {r}", flush=True)
        torchrun = [str(bin_dir / "torchrun"), "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port", "29541"]
        r = run(torchrun, ["--batch-size", "8", "--seed", str(args.seeds[0])], Path(tmp) / "two")
        rows.append(("2 processes x 8", args.seeds[0], r))
        print(f"2 processes, seed {args.seeds[0]}: {r}", flush=True)

    print(f"\n{'run':<18} {'seed':>4} {'steps':>6} {'wall s':>8} {'train s':>8} {'test macro-F1':>14}")
    for name, seed, r in rows:
        print(f"{name:<18} {seed:>4} {r['steps']:>6} {r['wall_s']:>8.1f} {r['train_s']:>8.1f} {r['macro_f1']:>14.3f}")
    single = [r for name, _, r in rows if name.startswith("1")]
    f1s = [r["macro_f1"] for r in single]
    one, two = single[0], rows[-1][2]
    print(f"\nsingle-process band of test macro-F1 over seeds {args.seeds}: {min(f1s):.3f} .. {max(f1s):.3f} "
          f"(spread {max(f1s) - min(f1s):.3f})")
    print(f"2 processes vs 1 (seed {args.seeds[0]}): macro-F1 {two['macro_f1']:.3f} vs {one['macro_f1']:.3f} "
          f"(difference {two['macro_f1'] - one['macro_f1']:+.3f}); training time ratio 2p/1p "
          f"{two['train_s'] / one['train_s']:.2f}, wall ratio {two['wall_s'] / one['wall_s']:.2f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
