"""Where the training command's wall time goes: one run, its phases side by side.

    .venv/bin/python bench/command_phases.py                          # support_sentiment on this machine
    .venv/bin/python bench/command_phases.py --data legal_topics -- --device cuda --epochs 1

Runs ``python -m finetune_utils.train`` once and prints each phase's seconds (the command
records them in ``metrics.json`` under ``phase_seconds``) with its share of the wall time;
"interpreter and module imports" is the wall time the phases do not cover (Python's start
and the imports before the command's own code runs). The last line compares the time
outside training with the target of at most 8 s beyond it.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="support_sentiment")
    parser.add_argument("extra", nargs="*", help="further options for the command, after --")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "finetune_utils.train", "--data", args.data, "--output", f"{tmp}/run", "--quiet",
               *args.extra]
        start = time.perf_counter()
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            sys.exit(f"FAILED: {' '.join(cmd)}\n{done.stderr[-2000:]}")
        metrics = json.loads(Path(tmp, "run", "metrics.json").read_text())
    phases = dict(metrics["phase_seconds"])
    phases["interpreter and module imports"] = wall - sum(phases.values())
    print(f"{' '.join(cmd[1:])}\n{metrics['device']}, precision {metrics['precision']} ({metrics['precision_reason']})\n")
    print(f"{'phase':<32}{'seconds':>9}{'share':>8}")
    for name, seconds in sorted(phases.items(), key=lambda kv: -kv[1]):
        print(f"{name:<32}{seconds:9.1f}{seconds / wall:8.0%}")
    outside = wall - phases["training"]
    print(f"{'wall':<32}{wall:9.1f}\n\noutside training: {outside:.1f} s "
          f"({'within' if outside <= 8 else 'over'} the target of training + 8 s)")


if __name__ == "__main__":
    main()
