"""Does training the final model on every row pay for its time? (issue 28, item 3)

    .venv/bin/python bench/refit_check.py --jobs 2            # the README's table (about 25 minutes on 2 cores)
    .venv/bin/python bench/refit_check.py --quick             # a tiny end-to-end run of this script

Given one training file, the command carves 15 % of it out as validation to choose the epoch (and keeps the
best one), so the model it saves has seen 85 % of the user's rows. The alternative: once the epoch is chosen,
train again on *all* rows for that many epochs (``--validation_share 0 --num_train_epochs E --keep_epoch last``),
as a scikit-learn search refits on the whole training set. Per cell (a course sequence or pair set, as it is or
cut to a few hundred rows) and seed, this script runs:

- **carve-out** (the defaults): the set's training split as the user's only file; the epoch it keeps is E;
- **refit**: the same file, all rows, E epochs.

Both models are scored on the course's **validation** split, which the command never sees (it is handed to the
command as its test file, so the command scores it itself). The course's test split is not read. The table gives
macro-F1 mean ± std over the seeds, the difference, and the wall time of each run: the refit's time is added to
the carve-out's, since it needs E from that run.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from defaults_sweep import DATA_SETS, run, spread, write_variant  # noqa: E402
from finetune_utils import data  # noqa: E402


def user_folder(name: str, variant: str, folder: Path, small_rows: int) -> list[str]:
    """The variant's training split as train.jsonl and the course's validation split as test.jsonl."""
    options = write_variant(name, variant, folder / "all", small_rows)
    folder.joinpath("user").mkdir()
    shutil.copy(folder / "all" / "train.jsonl", folder / "user" / "train.jsonl")
    shutil.copy(folder / "all" / "validation.jsonl", folder / "user" / "test.jsonl")
    return ["--data", str(folder / "user"), *options]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", nargs="+", choices=DATA_SETS, help="default: every course sequence and pair data set")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--small-rows", type=int, default=200, help="training rows of the 'small' variant (default 200)")
    parser.add_argument("--jobs", type=int, default=1, help="cells at a time, each run on one thread when > 1")
    parser.add_argument("--quick", action="store_true", help="one set, one seed, 48 rows, short texts")
    args = parser.parse_args()
    names, extra = args.data or DATA_SETS, []
    if args.quick:
        names, args.seeds, args.small_rows, extra = names[:1], args.seeds[:1], 48, ["--max-length", "32"]
    cells = [(name, variant) for name in names for variant in (("small",) if args.quick else ("full", "small"))
             if variant != "small" or len(data.read_jsonl(data.folder(name) / "train.jsonl")) >= 2 * args.small_rows]
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(args.jobs) as pool:
        def both(i, cell, seed):
            source = user_folder(*cell, Path(tmp) / f"data-{i}", args.small_rows)
            threads = "1" if args.jobs > 1 else None
            # the command scores the course's validation split as its test file: "test" is that score here
            carve = run(source, "", seed, Path(tmp) / f"carve-{i}", extra, threads)
            refit = run(source, f"--validation_share 0 --num_train_epochs {carve['kept']} --keep_epoch last", seed,
                        Path(tmp) / f"refit-{i}", extra, threads)
            return carve, refit

        jobs = [(cell, seed) for cell in cells for seed in args.seeds]
        futures = [pool.submit(both, i, cell, seed) for i, (cell, seed) in enumerate(jobs)]
        results: dict = {}
        for (cell, seed), future in zip(jobs, futures):
            carve, refit = future.result()
            results.setdefault(cell, []).append((carve, refit))
            print(f"{cell[0]:<18} {cell[1]:<6} seed {seed}: carve-out {carve['test']:.3f} (epoch {carve['kept']} of "
                  f"{carve['epochs']}, {carve['wall']:.0f} s), refit {refit['test']:.3f} ({refit['wall']:.0f} s)", flush=True)
    print("\n| cell | carve-out (defaults) | refit on all rows | difference | wall: carve-out | wall: + refit |")
    print("|---|---|---|---|---|---|")
    for cell, pairs in results.items():
        diffs = [r["test"] - c["test"] for c, r in pairs]
        print(f"| {cell[0]} ({cell[1]}) | {spread([c['test'] for c, _ in pairs])} | {spread([r['test'] for _, r in pairs])} "
              f"| {statistics.mean(diffs):+.3f} (seeds: {', '.join(f'{d:+.3f}' for d in diffs)}) "
              f"| {statistics.mean(c['wall'] for c, _ in pairs):.0f} s | +{statistics.mean(r['wall'] for _, r in pairs):.0f} s |")
    print(f"\nmacro-F1 on each course set's validation split, which the command never saw; seeds {args.seeds}; "
          f"{'one thread per run, ' + str(args.jobs) + ' runs at a time' if args.jobs > 1 else 'one run at a time'}")


if __name__ == "__main__":
    main()
