"""The training command's defaults, chosen on validation across the course's sequence and pair data sets.

    .venv/bin/python bench/defaults_sweep.py --jobs 2 --results runs.jsonl   # the README's table (about 2 hours)
    .venv/bin/python bench/defaults_sweep.py --data support_sentiment --variants imbalanced \
        --settings "--lr 2e-4" "--lr 2e-4 --class_weights balanced" --jobs 2
    .venv/bin/python bench/defaults_sweep.py --settings "--lr 1e-4" "--lr 2e-4 --min_train_steps 0" --variants full
    .venv/bin/python bench/defaults_sweep.py --quick         # a tiny end-to-end run of this script (a few minutes)

A *setting* is a set of options for ``python -m finetune_utils.train``; the empty setting ("") is the
command's defaults. Each setting runs on every *cell*, a course data set in one of three variants
that stand for what users bring:

- ``full``: the set as it is;
- ``small``: the training split cut to ``--small-rows`` rows (a few hundred), labels taken in turn (only for
  sets at least twice as large: the others are a few hundred rows already);
- ``imbalanced``: the training split with its first label cut to a quarter of its rows (the others whole).

Validation and test splits stay whole in every variant, so the variants are compared on the same rows.
The choice looks at the validation split only:

1. per cell, the validation macro-F1 of the epoch each run kept, averaged over the seeds (at least 3),
   ranks the settings (rank 1 = best mean);
2. the chosen setting is the one with the best mean rank over all cells (ties: the higher mean validation
   macro-F1), so that one default does well on every set at once; the table also gives each setting's
   worst gap to a cell's best.

Only then is the test split looked at, once, for the chosen setting alone: its test macro-F1 per cell,
mean ± std over the seeds. The command scores test in every run (it always does when the data has a test
split); this script keeps those numbers aside and never prints or compares other settings' test scores.
The Markdown tables it prints are the README's. ``--jobs 2`` runs two runs at a time, one thread each
(faster on 2 cores than one run on two threads; the seconds it prints are then per run, under that load).
Nothing is downloaded; runs go to a temporary folder, deleted as they finish.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from finetune_utils import data, train  # noqa: E402

DATA_SETS = [name for name in data.names() if data.SCHEMAS[name].task in ("sequence", "pair")]
VARIANTS = ("full", "small", "imbalanced")
SETTINGS = ("--lr 2e-4", "--lr 1e-4", "--lr 2e-4 --min_train_steps 0")  # the README's table
SEEDS = (0, 1, 2)
QUICK = {"data": ["support_sentiment", "support_answers"], "settings": ["", "--lr 1e-4"], "variants": ["full", "small"],
         "small_rows": 48, "extra": ["--epochs", "1", "--max-length", "32"]}


def write_variant(name: str, variant: str, folder: Path, small_rows: int, extra_rows: int | None = None) -> list[str]:
    """A course data set, in one variant, written as a user's folder; the command options that read it."""
    schema = data.SCHEMAS[name]
    folder.mkdir(parents=True)
    for split in ("train", "validation", "test"):
        rows = data.read_jsonl(data.folder(name) / f"{split}.jsonl")
        by_label: dict[str, list[dict]] = {}
        for row in random.Random(0).sample(rows, len(rows)):
            by_label.setdefault(row[schema.label_field], []).append(row)
        n = extra_rows if (extra_rows and split != "train") else None
        if split == "train" and variant == "small":
            n = small_rows
        if split == "train" and variant == "imbalanced":
            first = sorted(by_label)[0]
            by_label[first] = by_label[first][: max(2, len(by_label[first]) // 4)]
            rows = [row for queue in by_label.values() for row in queue]
        if n is not None and n < len(rows):
            queues, rows = [list(q) for q in by_label.values()], []
            while len(rows) < n:  # one of each label in turn: every class is present whenever n allows
                for queue in queues:
                    if queue and len(rows) < n:
                        rows.append(queue.pop())
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    options = ["--text-column", schema.text_fields[0], "--label-column", schema.label_field]
    if len(schema.text_fields) > 1:
        options += ["--pair-column", schema.text_fields[1]]
    return options


def run(source: list[str], setting: str, seed: int, out: Path, extra: list[str], threads: str | None) -> dict:
    """One run of the command; its validation result, and its test score kept aside (read only after the choice)."""
    cmd = [sys.executable, "-m", "finetune_utils.train", *source, *shlex.split(setting), "--seed", str(seed),
           "--output", str(out), "--quiet", *extra]
    env = dict(os.environ, **({"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads} if threads else {}))
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.exit(f"FAILED: {' '.join(cmd)}\n{done.stderr[-2000:]}")
    metrics = json.loads((out / "metrics.json").read_text())
    if train.foreign_files(out) == []:  # the command's own run, nothing else in it (its mark says so)
        shutil.rmtree(out)  # a model per run would fill the disk: keep only the numbers
    return {"val": (metrics.get("validation") or {}).get("macro_f1"),  # None: a run without validation
            "epochs": metrics["epochs"], "kept": metrics["epoch_kept"],
            "wall": time.perf_counter() - start, "test": (metrics.get("test") or {}).get("macro_f1")}


def choose(val: dict, cells: list, settings: list) -> tuple[dict, dict, str]:
    """Per cell the rank of each setting by mean validation macro-F1; the setting with the best mean rank."""
    ranks = {}
    for cell in cells:
        order = sorted(settings, key=lambda s: -statistics.mean(val[cell, s]))
        ranks.update({(cell, s): order.index(s) + 1 for s in settings})
    mean_rank = {s: statistics.mean(ranks[cell, s] for cell in cells) for s in settings}
    mean_val = {s: statistics.mean(statistics.mean(val[cell, s]) for cell in cells) for s in settings}
    chosen = min(settings, key=lambda s: (mean_rank[s], -mean_val[s]))
    return ranks, mean_rank, chosen


def spread(values: list[float]) -> str:
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}" if len(values) > 1 else f"{values[0]:.3f}"


def is_default(setting: str) -> bool:
    """True when every option the setting gives has the command's default value (so it runs the defaults)."""
    args = train.parse_args(["--data", "x", "--output_dir", "o", *shlex.split(setting)])
    parser = train.build_parser()
    for dest in args.given - {"data", "output_dir"}:
        default = train.DEFAULT_LR[args.strategy] if dest == "learning_rate" else parser.get_default(dest)
        if getattr(args, dest) != default:
            return False
    return True


def label(setting: str) -> str:
    return (f"`{setting}`" if setting else "defaults") + (" (defaults)" if setting and is_default(setting) else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", nargs="+", choices=DATA_SETS, help="default: every course sequence and pair data set")
    parser.add_argument("--settings", nargs="+", help="option strings for the command, one per setting ('' = defaults; "
                        f"default: {' | '.join(repr(s) for s in SETTINGS)})")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=["full", "small"],
                        help="default: full small (the README's table)")
    parser.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS), help="at least 3 (default: 0 1 2)")
    parser.add_argument("--small-rows", type=int, default=200, help="training rows of the 'small' variant (default 200)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time, each on one thread when > 1")
    parser.add_argument("--quick", action="store_true", help="a tiny configuration that checks the script end to end")
    parser.add_argument("--results", type=Path, help="a JSON-lines file: each finished run is appended to it, and runs "
                        "already in it are not run again (an interrupted sweep continues; several sweeps share runs)")
    parser.add_argument("extra", nargs="*", help="further options for every run, after --")
    args = parser.parse_args()
    if len(args.seeds) < 3:
        parser.error("choose on the mean over at least 3 seeds: give --seeds with 3 or more values")
    extra_rows = None
    if args.quick:
        args.data = args.data or QUICK["data"]
        args.settings = args.settings or QUICK["settings"]
        args.variants, args.small_rows, extra_rows = QUICK["variants"], QUICK["small_rows"], 30
        args.extra = QUICK["extra"] + args.extra
    names, settings = args.data or DATA_SETS, list(dict.fromkeys(args.settings or SETTINGS))
    labels = {s: label(s) for s in settings}
    cells = [(name, variant) for name in names for variant in args.variants  # 'small' only where it is smaller
             if variant != "small" or len(data.read_jsonl(data.folder(name) / "train.jsonl")) >= 2 * args.small_rows]
    val, test, info = {}, {}, {}  # (cell, setting) -> [per seed]; `test` is read only after the choice
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(args.jobs) as pool:
        sources = {cell: ["--data", str(Path(tmp) / f"data-{cell[0]}-{cell[1]}")] + write_variant(
            *cell, Path(tmp) / f"data-{cell[0]}-{cell[1]}", args.small_rows, extra_rows) for cell in cells}
        jobs = [(cell, s, seed) for cell in cells for s in settings for seed in args.seeds]
        key = lambda cell, s, seed: json.dumps([*cell, s, seed, args.small_rows, args.extra])  # noqa: E731
        done = {}
        if args.results and args.results.exists():
            done = {r["key"]: r for r in map(json.loads, args.results.read_text().splitlines()) if r.get("key")}

        def record(job, r):
            if args.results:
                with args.results.open("a") as f:
                    f.write(json.dumps({"key": key(*job), **r}) + "\n")
        start = lambda i, cell, s, seed: pool.submit(  # noqa: E731
            run, sources[cell], s, seed, Path(tmp) / f"run-{i}", args.extra, "1" if args.jobs > 1 else None)
        futures = [None if key(*job) in done else start(i, *job) for i, job in enumerate(jobs)]
        for (cell, s, seed), future in zip(jobs, futures):
            r = done[key(cell, s, seed)] if future is None else future.result()
            if future is not None:
                record((cell, s, seed), r)
            val.setdefault((cell, s), []).append(r["val"])
            test.setdefault((cell, s), []).append(r["test"])
            info.setdefault((cell, s), []).append(r)
            print(f"{cell[0]:<18} {cell[1]:<10} {labels[s]:<34} seed {seed}: validation macro-F1 {r['val']:.3f} "
                  f"(epoch {r['kept']} of {r['epochs']}, {r['wall']:.0f} s)", flush=True)
        ranks, mean_rank, chosen = choose(val, cells, settings)
        # A run read back without its test score (recorded by hand from a log) is run again for it, now that the
        # choice is made: the same seed gives the same model (tests/test_train.py::test_same_seed_same_result).
        # Every variant has a test split (write_variant writes one), so a run's own score is never None.
        for i, (cell, s, seed) in enumerate(jobs):
            if s == chosen and test[cell, s][args.seeds.index(seed)] is None:
                r = start(len(jobs) + i, cell, s, seed).result()
                test[cell, s][args.seeds.index(seed)] = r["test"]
                record((cell, s, seed), r)

    print(f"\nValidation macro-F1 of `python -m finetune_utils.train` by setting: the epoch kept by each run, mean ± std "
          f"over seeds {' '.join(map(str, args.seeds))} (rank in the cell in brackets); extra options: "
          f"`{' '.join(args.extra) or 'none'}`.\n")
    print("| data set | variant | " + " | ".join(labels[s] for s in settings) + " |")
    print("|---|---|" + "---|" * len(settings))
    for cell in cells:
        print(f"| {cell[0]} | {cell[1]} | " + " | ".join(f"{spread(val[cell, s])} ({ranks[cell, s]})" for s in settings)
              + " |")
    gaps = {s: [statistics.mean(val[c, s]) - max(statistics.mean(val[c, o]) for o in settings) for c in cells]
            for s in settings}
    print("| mean rank | | " + " | ".join(f"{mean_rank[s]:.2f}" for s in settings) + " |")
    print("| worst gap to the cell's best | | " + " | ".join(f"{min(gaps[s]):+.3f}" for s in settings) + " |")
    print("| mean gap to the cell's best | | " + " | ".join(f"{statistics.mean(gaps[s]):+.3f}" for s in settings) + " |")
    print("| mean epochs run (kept) | | " + " | ".join(
        f"{statistics.mean(r['epochs'] for c in cells for r in info[c, s]):.1f} "
        f"({statistics.mean(r['kept'] for c in cells for r in info[c, s]):.1f})" for s in settings) + " |")
    print("| mean seconds per run | | " + " | ".join(
        f"{statistics.mean(r['wall'] for c in cells for r in info[c, s]):.0f}" for s in settings) + " |")
    print(f"\nChosen by the best mean rank over {len(cells)} cells, on validation only: {labels[chosen]} "
          f"({'the command defaults' if is_default(chosen) else 'not the command defaults'}).")

    print(f"\nTest macro-F1 of the chosen setting ({labels[chosen]}), scored after the choice, mean ± std over the seeds:\n")
    print("| data set | variant | test macro-F1 |\n|---|---|---|")
    for cell in cells:
        scores = [s for s in test[cell, chosen] if s is not None]
        print(f"| {cell[0]} | {cell[1]} | {spread(scores) if scores else 'no test split'} |")
    if args.quick:
        print("\n(--quick: a check that the script runs end to end on a tiny configuration; these numbers mean nothing.)")


if __name__ == "__main__":
    main()
