"""Benchmark: training and inference throughput of the fine-tuning helpers (examples per second).

    python bench/train_throughput.py [--examples 256] [--rounds 2] [--max-length 128]

Measures, in one run, full fine-tuning of the packaged MiniLM on support_sentiment:

1. dynamic padding (each batch padded to its longest message) versus padding every
   batch to a fixed ``--max-length`` (``training.train(..., pad_to=128)``);
2. the hand-written loop (``training.train``) versus ``transformers.Trainer``
   (``training.make_trainer``), same data, batch size, learning rate and schedule;
3. inference (``training.predict``) at batch sizes 1, 8 and 32.

Each training measurement is one epoch over the same ``--examples`` training
messages with a freshly loaded model. The machine may be busy with other work, so
the variants are interleaved in every round (their order rotates), and the script
prints each round's ratios next to the medians: a ratio measured within one round
is fairer than two absolute numbers taken minutes apart. The load average before
and after tells how busy the machine was.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from finetune_utils import data, env, heads, models, training  # noqa: E402

BATCH = 16
LR = 5e-5


def train_variant(name, train_ds, tokenizer, label_names, max_length):
    """Seconds for one epoch of full fine-tuning with a fresh model (model loading not timed)."""
    model = heads.classifier(label_names)
    if name == "Trainer":
        trainer = training.make_trainer(model, train_ds, tokenizer, epochs=1, lr=LR, batch_size=BATCH, progress=False)
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):  # Trainer prints its loss logs
            trainer.train()
        return time.perf_counter() - start
    pad_to = max_length if name == "fixed padding" else None
    start = time.perf_counter()
    training.train(model, train_ds, tokenizer, epochs=1, lr=LR, batch_size=BATCH, pad_to=pad_to, progress=False)
    return time.perf_counter() - start


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=256, help="training messages per measurement (one epoch)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved repetitions of every measurement")
    parser.add_argument("--max-length", type=int, default=128, help="truncation and fixed-padding length (tokens)")
    parser.add_argument("--predict-examples", type=int, default=128, help="test messages per inference measurement")
    args = parser.parse_args(argv)

    threads = env.thread_report()
    load_before = os.getloadavg()
    print(f"machine: {threads['usable_cores']} usable cores, torch threads {threads['torch_threads']}, "
          f"device {env.pick_device()}; load average {load_before[0]:.1f} (1 min)")
    ds, label_names = data.load("support_sentiment")
    tokenizer = models.load_encoder_tokenizer()
    train_ds = training.tokenize(ds["train"].select(range(args.examples)), tokenizer, max_length=args.max_length)
    test_ds = training.tokenize(ds["test"].select(range(args.predict_examples)), tokenizer, max_length=args.max_length)
    lengths = [len(ids) for ids in train_ds["input_ids"]]
    print(f"support_sentiment: {args.examples} training messages, {statistics.mean(lengths):.1f} tokens on average "
          f"(max {max(lengths)}, truncated at {args.max_length}); batch {BATCH}, 1 epoch per measurement\n")

    variants = ["dynamic padding", "fixed padding", "Trainer"]
    warm = train_ds.select(range(BATCH))
    for name in ("dynamic padding", "Trainer"):  # first calls pay one-off costs (imports, thread pools): not timed
        train_variant(name, warm, tokenizer, label_names, args.max_length)
    seconds = {v: [] for v in variants}
    for r in range(args.rounds):
        order = variants[r % len(variants):] + variants[: r % len(variants)]
        for name in order:
            seconds[name].append(train_variant(name, train_ds, tokenizer, label_names, args.max_length))
        dyn, fix, trn = (seconds[v][-1] for v in variants)
        print(f"round {r + 1} (order: {', '.join(order)}): "
              f"dynamic {args.examples / dyn:.1f} ex/s, fixed-{args.max_length} {args.examples / fix:.1f} ex/s, "
              f"Trainer {args.examples / trn:.1f} ex/s | dynamic/fixed {fix / dyn:.2f}x, loop/Trainer {trn / dyn:.2f}x",
              flush=True)

    print("\nTraining throughput (full fine-tuning, median over rounds)")
    print(f"{'variant':<38} {'examples/s':>10} {'s/epoch':>8}")
    rows = [
        ("hand-written loop, dynamic padding", "dynamic padding"),
        (f"hand-written loop, padded to {args.max_length}", "fixed padding"),
        ("transformers.Trainer, dynamic padding", "Trainer"),
    ]
    med = {v: statistics.median(s) for v, s in seconds.items()}
    for label, v in rows:
        print(f"{label:<38} {args.examples / med[v]:>10.1f} {med[v]:>8.1f}")
    ratio_pad = [f / d for f, d in zip(seconds["fixed padding"], seconds["dynamic padding"])]
    ratio_trn = [t / d for t, d in zip(seconds["Trainer"], seconds["dynamic padding"])]
    print(f"dynamic padding is {statistics.median(ratio_pad):.2f}x as fast as padding to {args.max_length} "
          f"(per round: {', '.join(f'{x:.2f}' for x in ratio_pad)})")
    print(f"the hand-written loop is {statistics.median(ratio_trn):.2f}x as fast as Trainer "
          f"(per round: {', '.join(f'{x:.2f}' for x in ratio_trn)})")

    print(f"\nInference throughput (training.predict on {args.predict_examples} test messages, fine-tuned-size model)")
    model = heads.classifier(label_names)
    training.predict(model, test_ds.select(range(8)), tokenizer, batch_size=8)  # warm-up
    batch_sizes = [1, 8, 32]
    pred_seconds = {b: [] for b in batch_sizes}
    for r in range(args.rounds):
        for b in batch_sizes[r % 3:] + batch_sizes[: r % 3]:
            start = time.perf_counter()
            training.predict(model, test_ds, tokenizer, batch_size=b)
            pred_seconds[b].append(time.perf_counter() - start)
    base = statistics.median(pred_seconds[1])
    print(f"{'batch size':<12} {'examples/s':>10} {'vs batch 1':>10}")
    for b in batch_sizes:
        m = statistics.median(pred_seconds[b])
        print(f"{b:<12} {args.predict_examples / m:>10.1f} {base / m:>9.2f}x")
    load_after = os.getloadavg()
    print(f"\nload average after: {load_after[0]:.1f} (1 min); with load above the {threads['usable_cores']} cores, "
          "absolute numbers are low; compare the ratios.")


if __name__ == "__main__":
    main()
