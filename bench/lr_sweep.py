"""The training command's learning rate: a sweep over the course's sequence and pair data sets, chosen on validation.

    .venv/bin/python bench/lr_sweep.py                    # full fine-tuning, every course data set, seeds 0 1 2
    .venv/bin/python bench/lr_sweep.py --data legal_topics --lrs 5e-5 1e-4 --seeds 0 1 2 3
    .venv/bin/python bench/lr_sweep.py --quick            # a tiny end-to-end run of this script (a few minutes)

Runs ``python -m finetune_utils.train`` with its defaults (3 epochs, the best epoch kept by
validation macro-F1, max length 128) at each learning rate and seed. The choice looks at the
validation split only:

1. per data set, the validation macro-F1 of the epoch each run kept, averaged over the seeds
   (at least 3), ranks the rates (rank 1 = best mean);
2. across data sets, the chosen rate is the one with the best mean rank (ties: the higher mean
   validation macro-F1 over the sets), so that one default does well on every set at once.

Only then is the test split looked at, once, for the chosen rate alone: its test macro-F1 per
data set, mean ± std over the seeds. The command computes test scores in every run (it always
does when the data has a test split); this script keeps them aside and never prints or compares
the other rates' test scores. The Markdown tables it prints are the ones for the README.

``--train-rows`` / ``--eval-rows`` subsample each data set (the labels taken in turn, fixed seed) into a
temporary folder that the command reads as a user's data; ``--quick`` uses them for a short check
that the script runs end to end (2 data sets, 2 rates, 3 seeds, 1 epoch, 32 tokens): its numbers
mean nothing. Nothing is downloaded; the runs go to a temporary folder, deleted as they finish.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
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
SEEDS = (0, 1, 2)
QUICK = {"data": ["support_sentiment", "support_answers"], "lrs": [1e-4, 2e-4], "train_rows": 48, "eval_rows": 30,
         "extra": ["--epochs", "1", "--max-length", "32"]}


def subsample(name: str, folder: Path, train_rows: int | None, eval_rows: int | None) -> list[str]:
    """Write a stratified subsample of a course data set as a user's folder; the command options that read it."""
    schema = data.SCHEMAS[name]
    folder.mkdir(parents=True)
    for split, n in (("train", train_rows), ("validation", eval_rows), ("test", eval_rows)):
        rows = data.read_jsonl(data.folder(name) / f"{split}.jsonl")
        if n is not None and n < len(rows):
            by_label: dict[str, list[dict]] = {}
            for row in random.Random(0).sample(rows, len(rows)):
                by_label.setdefault(row[schema.label_field], []).append(row)
            queues, rows = list(by_label.values()), []
            while len(rows) < n:  # one of each label in turn: every class is present whenever n allows
                for queue in queues:
                    if queue and len(rows) < n:
                        rows.append(queue.pop())
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    options = ["--text-column", schema.text_fields[0], "--label-column", schema.label_field]
    if len(schema.text_fields) > 1:
        options += ["--pair-column", schema.text_fields[1]]
    return options


def run(source: list[str], lr: float, seed: int, strategy: str, out: Path, extra: list[str]) -> dict:
    """One run of the command; its validation result, and its test score kept aside (read only after the choice)."""
    cmd = [sys.executable, "-m", "finetune_utils.train", *source, "--strategy", strategy, "--lr", str(lr),
           "--seed", str(seed), "--output", str(out), "--quiet", *extra]
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"FAILED: {' '.join(cmd)}\n{done.stderr[-2000:]}")
    metrics = json.loads((out / "metrics.json").read_text())
    shutil.rmtree(out)  # a model per run would fill the disk: keep only the numbers
    return {"val": metrics["validation"]["macro_f1"], "epoch": metrics["epoch_kept"], "wall": time.perf_counter() - start,
            "test": (metrics.get("test") or {}).get("macro_f1")}


def choose(val: dict, names: list[str], lrs: list[float]) -> tuple[dict, dict, float]:
    """Per data set the rank of each rate by mean validation macro-F1; the rate with the best mean rank."""
    ranks = {}
    for name in names:
        order = sorted(lrs, key=lambda lr: -statistics.mean(val[name, lr]))
        ranks.update({(name, lr): order.index(lr) + 1 for lr in lrs})
    mean_rank = {lr: statistics.mean(ranks[name, lr] for name in names) for lr in lrs}
    mean_val = {lr: statistics.mean(statistics.mean(val[name, lr]) for name in names) for lr in lrs}
    chosen = min(lrs, key=lambda lr: (mean_rank[lr], -mean_val[lr]))
    return ranks, mean_rank, chosen


def spread(values: list[float]) -> str:
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}" if len(values) > 1 else f"{values[0]:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", nargs="+", choices=DATA_SETS, help="default: every course sequence and pair data set")
    parser.add_argument("--lrs", nargs="+", type=float, help=f"default: {' '.join(f'{lr:g}' for lr in LRS)}")
    parser.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS), help="at least 3 (default: 0 1 2)")
    parser.add_argument("--strategy", default="full", choices=sorted(train.DEFAULT_LR))
    parser.add_argument("--train-rows", type=int, help="subsample each training split to this many rows")
    parser.add_argument("--eval-rows", type=int, help="subsample each validation and test split to this many rows")
    parser.add_argument("--quick", action="store_true", help="a tiny configuration that checks the script end to end")
    parser.add_argument("extra", nargs="*", help="further options for the command, after --")
    args = parser.parse_args()
    if len(args.seeds) < 3:
        parser.error("choose on the mean over at least 3 seeds: give --seeds with 3 or more values")
    if args.quick:
        args.data = args.data or QUICK["data"]
        args.lrs = args.lrs or QUICK["lrs"]
        args.train_rows = args.train_rows or QUICK["train_rows"]
        args.eval_rows = args.eval_rows or QUICK["eval_rows"]
        args.extra = QUICK["extra"] + args.extra
    names, default = args.data or DATA_SETS, train.DEFAULT_LR[args.strategy]
    lrs = sorted(set(args.lrs or LRS) | {default})
    val, test = {}, {}  # (data set, lr) -> [score per seed]; `test` is read only after the choice
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            source = ["--data", name]
            if args.train_rows or args.eval_rows:
                source = ["--data", str(Path(tmp) / f"data-{name}")] + subsample(
                    name, Path(tmp) / f"data-{name}", args.train_rows, args.eval_rows)
            for lr in lrs:
                for seed in args.seeds:
                    r = run(source, lr, seed, args.strategy, Path(tmp) / f"{name}-{lr:g}-{seed}", args.extra)
                    val.setdefault((name, lr), []).append(r["val"])
                    test.setdefault((name, lr), []).append(r["test"])
                    print(f"{name:<18} lr {lr:<7g} seed {seed}: validation macro-F1 {r['val']:.3f} (epoch {r['epoch']}, "
                          f"{r['wall']:.0f} s)", flush=True)
    ranks, mean_rank, chosen = choose(val, names, lrs)

    print(f"\nValidation macro-F1 of `python -m finetune_utils.train --strategy {args.strategy}` by learning rate: the "
          f"epoch kept by each run, mean ± std over seeds {' '.join(map(str, args.seeds))} (rank on that set in brackets); "
          f"**bold**: the command's default ({default:g}).\n")
    print("| data set | " + " | ".join(f"**{lr:g}**" if lr == default else f"{lr:g}" for lr in lrs)
          + " | best on validation | default − best (validation) |")
    print("|---|" + "---|" * (len(lrs) + 2))
    for name in names:
        best = min(lrs, key=lambda lr: ranks[name, lr])
        gap = statistics.mean(val[name, default]) - statistics.mean(val[name, best])
        print(f"| {name} | " + " | ".join(f"{spread(val[name, lr])} ({ranks[name, lr]})" for lr in lrs)
              + f" | {best:g} | {gap:+.3f} |")
    print("| mean rank | " + " | ".join(f"{mean_rank[lr]:.2f}" for lr in lrs) + " | | |")
    print(f"\nChosen by the best mean rank over {len(names)} data set(s), on validation only: {chosen:g} "
          f"({'the command default' if chosen == default else f'the command default is {default:g}'}).")

    print(f"\nTest macro-F1 of the chosen rate ({chosen:g}), scored after the choice, mean ± std over the seeds:\n")
    print("| data set | test macro-F1 |\n|---|---|")
    for name in names:
        scores = [s for s in test[name, chosen] if s is not None]
        print(f"| {name} | {spread(scores) if scores else 'no test split'} |")
    if args.quick:
        print("\n(--quick: a check that the script runs end to end on a tiny configuration; these numbers mean nothing.)")


if __name__ == "__main__":
    main()
