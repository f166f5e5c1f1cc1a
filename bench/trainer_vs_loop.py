"""Lesson 02's question with several seeds: does ``transformers.Trainer`` train as well as our loop?

    python bench/trainer_vs_loop.py [--seeds 0 1 2]

Lesson 02 trains the same model twice with the same hyper-parameters, once with the
package's loop (``training.train``, the lesson's hand-written loop) and once with
``transformers.Trainer`` (``training.make_trainer``), on one seed, and compares their test
macro-F1. One seed cannot separate training noise (data order, dropout masks) from a
difference in the set-up. This script repeats both for each seed, with lesson 02's
default settings (support_sentiment, 48 tokens truncated from the left, 2 epochs,
lr 2e-4, 10 % warm-up, batch 16, length-grouped batches), and prints each run's test
macro-F1, the mean and spread of each set-up, and the difference of the means next to
the spread between seeds. It also prints the Trainer's parameter groups (weight decay on
the weight matrices only, as in the loop).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from transformers import PrinterCallback

from finetune_utils import data, heads, models, training

SETTINGS = dict(epochs=2, lr=2e-4, batch_size=16, warmup_ratio=0.1, group_by_length=True)
MAX_LENGTH = 48


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    seeds = parser.parse_args().seeds

    ds, labels = data.load("support_sentiment")
    tokenizer = models.load_encoder_tokenizer()
    tokenizer.truncation_side = "left"  # as lesson 02
    tok = training.tokenize(ds, tokenizer, max_length=MAX_LENGTH)
    scores = {"loop": [], "Trainer": []}
    start = time.perf_counter()
    for seed in seeds:
        model = heads.classifier(labels, seed=seed)  # seeds every generator, as training.train does again
        training.train(model, tok["train"], tokenizer, seed=seed, progress=False, **SETTINGS)
        scores["loop"].append(training.evaluate(model, tok["test"], tokenizer)["macro_f1"])

        model = heads.classifier(labels, seed=seed)
        trainer = training.make_trainer(model, tok["train"], tokenizer, seed=seed, progress=False, **SETTINGS)
        trainer.remove_callback(PrinterCallback)  # without a progress bar, the Trainer prints every log line
        trainer.train()
        if seed == seeds[0]:
            groups = [(len(g["params"]), g["weight_decay"]) for g in trainer.optimizer.param_groups]
            print(f"Trainer parameter groups (tensors, weight decay): {groups}; {trainer.state.global_step} steps")
        scores["Trainer"].append(training.evaluate(model, tok["test"], tokenizer)["macro_f1"])
        print(f"seed {seed}: test macro-F1 loop {scores['loop'][-1]:.3f}, Trainer {scores['Trainer'][-1]:.3f}", flush=True)

    print(f"\n{'set-up':<8} " + " ".join(f"{f'seed {s}':>8}" for s in seeds) + f" {'mean':>7}  spread (max - min)")
    for name, values in scores.items():
        print(f"{name:<8} " + " ".join(f"{v:8.3f}" for v in values) + f" {np.mean(values):7.3f}  {np.ptp(values):.3f}")
    diff = np.mean(scores["loop"]) - np.mean(scores["Trainer"])
    spread = max(np.ptp(v) for v in scores.values())
    print(f"\ndifference of the means (loop - Trainer): {diff:+.3f}; largest spread between seeds of one set-up: {spread:.3f}")
    if len(seeds) > 1:
        within = abs(diff) <= spread
        print("the difference of the means is " + ("within the seed-to-seed spread: training noise explains it" if within
                                                   else "larger than the seed-to-seed spread: look for a difference in the set-up"))
    print(f"({len(seeds)} seeds x 2 set-ups in {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
