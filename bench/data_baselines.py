"""Benchmark: how hard is each classification data set for models without pre-training?

    python bench/data_baselines.py

Prints, per data set, the majority-class and TF-IDF + logistic-regression scores on
the test split (macro-F1 and accuracy; C chosen on validation). The data cards quote
these figures (tools/sync_data_cards.py writes them there).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from finetune_utils import baselines, data  # noqa: E402


def inputs(name, split):
    if name == "support_answers":
        return baselines.pair_texts(split["question"], split["answer"])
    return split["text"]


def baseline_table() -> dict:
    rows = {}
    for name in data.names():
        if data.SCHEMAS[name].task not in ("sequence", "pair"):
            continue
        ds, _ = data.load(name)
        train, val, test = ds["train"], ds["validation"], ds["test"]
        model = baselines.tfidf_logreg(inputs(name, train), train["label"], inputs(name, val), val["label"])
        rows[name] = {
            "majority": baselines.majority(train["label"], test["label"]),
            "tfidf_logreg": baselines.scores(test["label"], model.predict(inputs(name, test))),
            "C": model.C_,
            "n_test": len(test),
        }
    return rows


def main() -> None:
    print(f"{'data set':<20} {'test n':>6}  {'majority F1':>11} {'acc':>6}  {'TF-IDF+LR F1':>12} {'acc':>6}  C")
    for name, r in baseline_table().items():
        m, t = r["majority"], r["tfidf_logreg"]
        print(
            f"{name:<20} {r['n_test']:>6}  {m['macro_f1']:>11.3f} {m['accuracy']:>6.3f}  "
            f"{t['macro_f1']:>12.3f} {t['accuracy']:>6.3f}  {r['C']:g}"
        )


if __name__ == "__main__":
    main()
