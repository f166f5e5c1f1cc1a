"""Evaluating a classifier: scores, confusion matrix, per-class report, errors, calibration, curves."""

from __future__ import annotations

import numpy as np


def scores(y_true, y_pred) -> dict:
    """Macro-F1 (every class weighs the same), micro-F1 and accuracy."""
    from sklearn.metrics import accuracy_score, f1_score

    return {
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "micro_f1": float(f1_score(y_true, y_pred, average="micro", zero_division=0)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
    }


def softmax(logits) -> np.ndarray:
    """Row-wise softmax of a (n, classes) array, numerically stable."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def report(y_true, y_pred, label_names) -> str:
    """scikit-learn's per-class precision / recall / F1 table."""
    from sklearn.metrics import classification_report

    return classification_report(
        y_true, y_pred, labels=list(range(len(label_names))), target_names=list(label_names), digits=3, zero_division=0
    )


def plot_confusion(y_true, y_pred, label_names, ax=None, normalize=None, title=None):
    """Confusion matrix (rows: true label, columns: predicted). Returns the axes."""
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    if ax is None:
        _, ax = plt.subplots(figsize=(1.2 * len(label_names) + 2, 1.2 * len(label_names) + 1.5))
    ConfusionMatrixDisplay.from_predictions(
        y_true,
        y_pred,
        labels=list(range(len(label_names))),
        display_labels=list(label_names),
        normalize=normalize,
        ax=ax,
        colorbar=False,
        xticks_rotation=30,
        values_format=".2f" if normalize else "d",
    )
    if title:
        ax.set_title(title)
    return ax


def calibration_bins(probs, y_true, n_bins: int = 10):
    """Confidence (max probability) vs accuracy in equal-width bins.

    Returns (bin_confidence, bin_accuracy, bin_count), each of length ``n_bins``
    (NaN where a bin is empty).
    """
    probs = np.asarray(probs)
    y_true = np.asarray(y_true)
    if probs.ndim != 2 or len(probs) != len(y_true):
        raise ValueError(f"probs must be (n, classes) and match y_true; got {probs.shape} and {y_true.shape}")
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y_true
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)
    conf, acc, count = np.full(n_bins, np.nan), np.full(n_bins, np.nan), np.zeros(n_bins, dtype=int)
    for b in range(n_bins):
        mask = index == b
        count[b] = mask.sum()
        if count[b]:
            conf[b], acc[b] = confidence[mask].mean(), correct[mask].mean()
    return conf, acc, count


def expected_calibration_error(probs, y_true, n_bins: int = 10) -> float:
    """ECE: the average gap |accuracy - confidence| over bins, weighted by bin size."""
    conf, acc, count = calibration_bins(probs, y_true, n_bins)
    used = count > 0
    return float(np.sum(count[used] * np.abs(acc[used] - conf[used])) / count.sum())


def plot_reliability(probs, y_true, n_bins: int = 10, ax=None, label=None):
    """Reliability diagram: accuracy per confidence bin against the diagonal. Returns the axes."""
    import matplotlib.pyplot as plt

    conf, acc, count = calibration_bins(probs, y_true, n_bins)
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    centers = (np.arange(n_bins) + 0.5) / n_bins
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    ax.bar(centers, np.nan_to_num(acc), width=1 / n_bins, alpha=0.6, edgecolor="black", label=label or "accuracy")
    ax.set_xlabel("confidence (max probability)")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(f"ECE = {expected_calibration_error(probs, y_true, n_bins):.3f}")
    ax.legend(loc="upper left", fontsize=8)
    return ax


def most_confident_mistakes(probs, y_true, texts, label_names, k: int = 5) -> list[dict]:
    """The ``k`` wrong predictions the model was most sure of, most confident first."""
    probs = np.asarray(probs)
    y_true = np.asarray(y_true)
    pred = probs.argmax(axis=1)
    wrong = np.flatnonzero(pred != y_true)
    order = wrong[np.argsort(-probs[wrong, pred[wrong]])][:k]
    return [
        {
            "text": texts[i],
            "true": label_names[y_true[i]],
            "predicted": label_names[pred[i]],
            "confidence": float(probs[i, pred[i]]),
        }
        for i in order
    ]


def plot_history(history, ax=None, title=None):
    """Training loss per step and validation macro-F1 per epoch from :func:`training.train`."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3))
    ax.plot(history["step"], history["loss"], alpha=0.7, label="training loss (per step)")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    if history.get("val_macro_f1"):
        twin = ax.twinx()
        twin.plot(history["epoch_step"], history["val_macro_f1"], "o-", color="C1", label="validation macro-F1")
        twin.set_ylabel("macro-F1")
        twin.set_ylim(0, 1)
        twin.legend(loc="center right", fontsize=8)
    ax.legend(loc="upper right", fontsize=8)
    if title:
        ax.set_title(title)
    return ax
