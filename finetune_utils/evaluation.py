"""Evaluating a classifier: scores, confusion matrix, per-class report, errors, calibration, curves.

Everything here works on plain arrays (labels as integer ids, probabilities as a
``(n, classes)`` array), so it serves every model of the course::

    from finetune_utils import evaluation, training
    logits = training.predict(model, enc["test"], tokenizer)
    probs = evaluation.softmax(logits)
    evaluation.scores(y_true, probs.argmax(1))            # macro-F1, micro-F1, accuracy
    evaluation.expected_calibration_error(probs, y_true)  # how far confidence is from accuracy

Token classification (BIO tags) is scored per entity, not per word piece:
:func:`bio_spans` turns a tag sequence into spans and :func:`span_scores` /
:func:`entity_scores` count exact matches.
"""

from __future__ import annotations

import numpy as np

from .data import IGNORE_INDEX


# --------------------------------------------------------------------------- checks


def _labels(y, name: str = "y_true") -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{name} must be a 1-D sequence of class ids, got shape {y.shape}")
    if y.size == 0:
        raise ValueError(f"{name} is empty: there is nothing to evaluate")
    return y


def _check_pair(y_true, y_pred):
    y_true, y_pred = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    if len(y_true) != len(y_pred):
        raise ValueError(
            f"y_true has {len(y_true)} labels but y_pred has {len(y_pred)}: predict on the same examples you score"
        )
    return y_true, y_pred


def _check_probs(probs, y_true):
    """Validate a (n, classes) probability array and its integer labels."""
    probs = np.asarray(probs, dtype=np.float64)
    y_true = _labels(y_true)
    if probs.ndim != 2 or probs.shape[1] < 2:
        raise ValueError(f"probs must be a (n, classes) array with at least 2 classes, got shape {probs.shape}")
    if len(probs) != len(y_true):
        raise ValueError(f"probs has {len(probs)} rows but y_true has {len(y_true)} labels; they must match")
    if not np.all(np.isfinite(probs)):
        raise ValueError("probs contains NaN or infinite values")
    if probs.min() < 0 or probs.max() > 1 or not np.allclose(probs.sum(axis=1), 1.0, atol=1e-3):
        raise ValueError(
            "probs must be probabilities (each row in [0, 1], summing to 1); "
            "these look like logits: pass evaluation.softmax(logits)"
        )
    if not np.issubdtype(y_true.dtype, np.integer) or y_true.min() < 0 or y_true.max() >= probs.shape[1]:
        raise ValueError(f"y_true must hold class ids 0..{probs.shape[1] - 1}, got values {np.unique(y_true)[:10]}")
    return probs, y_true


# --------------------------------------------------------------------------- scores


def scores(y_true, y_pred) -> dict:
    """Macro-F1 (every class weighs the same), micro-F1 and accuracy. Taught in lesson 01.

    For single-label classification micro-F1 equals accuracy (every wrong prediction
    is one false positive and one false negative); macro-F1 is lower when some class
    is handled badly, however rare it is.
    """
    from sklearn.metrics import accuracy_score, f1_score

    y_true, y_pred = _check_pair(y_true, y_pred)
    return {
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "micro_f1": float(f1_score(y_true, y_pred, average="micro", zero_division=0)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
    }


def softmax(logits, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax over the last axis, numerically stable (also for huge logits).

    ``temperature`` divides the logits first: T > 1 softens the probabilities, T < 1
    sharpens them, the argmax never changes (temperature scaling, lesson 04).
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim == 0 or z.shape[-1] == 0:
        raise ValueError(f"logits must have a class axis (last axis), got shape {z.shape}")
    z = z / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def report(y_true, y_pred, label_names) -> str:
    """scikit-learn's per-class precision / recall / F1 table. Taught in lesson 02."""
    from sklearn.metrics import classification_report

    y_true, y_pred = _check_pair(y_true, y_pred)
    return classification_report(
        y_true, y_pred, labels=list(range(len(label_names))), target_names=list(label_names), digits=3, zero_division=0
    )


def group_accuracy(y_true, y_pred, groups, missing: str = "(none)") -> dict:
    """Accuracy per group (e.g. per ``hard_type``): ``{group: {"n": count, "accuracy": share correct}}``.

    ``groups`` gives one value per example; ``None`` values are reported under
    ``missing``. Groups are ordered from the lowest accuracy to the highest, so the
    kinds of examples the model gets wrong most often come first.
    Taught in lesson 04.
    """
    y_true, y_pred = _check_pair(y_true, y_pred)
    groups = [missing if g is None else g for g in groups]
    if len(groups) != len(y_true):
        raise ValueError(f"groups has {len(groups)} values but there are {len(y_true)} labels; give one per example")
    out = {}
    for g in dict.fromkeys(groups):
        mask = np.array([x == g for x in groups])
        out[g] = {"n": int(mask.sum()), "accuracy": float((y_true[mask] == y_pred[mask]).mean())}
    return dict(sorted(out.items(), key=lambda kv: (kv[1]["accuracy"], -kv[1]["n"], str(kv[0]))))


def plot_confusion(y_true, y_pred, label_names, ax=None, normalize=None, title=None):
    """Confusion matrix (rows: true label, columns: predicted). Returns the axes. Taught in lesson 04.

    ``normalize="true"`` divides each row by its total: the diagonal is then each
    class's recall.
    """
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    y_true, y_pred = _check_pair(y_true, y_pred)
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


# --------------------------------------------------------------------------- calibration


def calibration_bins(probs, y_true, n_bins: int = 10):
    """Confidence (max probability) vs accuracy in equal-width bins.

    Bin ``b`` holds the predictions whose confidence lies in ``(b/n_bins, (b+1)/n_bins]``
    (the first bin also takes 0). Returns (bin_confidence, bin_accuracy, bin_count),
    each of length ``n_bins``: the mean confidence and the share of correct
    predictions in each bin (NaN where a bin is empty), and how many predictions it holds.
    """
    if not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive int, got {n_bins!r}")
    probs, y_true = _check_probs(probs, y_true)
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
    """ECE: the average gap |accuracy - confidence| over bins, weighted by bin size. Taught in lesson 04.

    ECE = Σ_b (n_b / n) · |acc_b − conf_b|. 0 means that, bin by bin, the model is
    right exactly as often as it claims; it lies in [0, 1].
    """
    conf, acc, count = calibration_bins(probs, y_true, n_bins)
    used = count > 0
    return float(np.sum(count[used] * np.abs(acc[used] - conf[used])) / count.sum())


def plot_reliability(probs, y_true, n_bins: int = 10, ax=None, label=None):
    """Reliability diagram: accuracy per confidence bin against the diagonal. Returns the axes. Taught in lesson 04.

    Bars below the diagonal mean over-confidence (the model is right less often than
    it claims), bars above it under-confidence. Each bar is annotated with its count.
    """
    import matplotlib.pyplot as plt

    conf, acc, count = calibration_bins(probs, y_true, n_bins)
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    centers = (np.arange(n_bins) + 0.5) / n_bins
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    ax.bar(centers, np.nan_to_num(acc), width=1 / n_bins, alpha=0.6, edgecolor="black", label=label or "accuracy")
    for x, a, c in zip(centers, acc, count):
        if c:
            ax.annotate(str(c), (x, min(a, 0.93) + 0.01), ha="center", fontsize=7)
    ax.set_xlabel("confidence (max probability)")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(f"ECE = {expected_calibration_error(probs, y_true, n_bins):.3f}")
    ax.legend(loc="upper left", fontsize=8)
    return ax


# --------------------------------------------------------------------------- errors


def most_confident_mistakes(probs, y_true, texts, label_names, k: int = 5) -> list[dict]:
    """The ``k`` wrong predictions the model was most sure of, most confident first. Taught in lesson 04.

    Each is a dict with ``index`` (position in the data), ``text``, ``true``,
    ``predicted`` and ``confidence`` (the probability given to the wrong label).
    """
    probs, y_true = _check_probs(probs, y_true)
    texts = list(texts)
    if len(texts) != len(y_true):
        raise ValueError(f"texts has {len(texts)} entries but there are {len(y_true)} labels; they must match")
    if len(label_names) != probs.shape[1]:
        raise ValueError(f"{len(label_names)} label names for {probs.shape[1]} classes in probs")
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    pred = probs.argmax(axis=1)
    wrong = np.flatnonzero(pred != y_true)
    order = wrong[np.argsort(-probs[wrong, pred[wrong]], kind="stable")][:k]
    return [
        {
            "index": int(i),
            "text": texts[i],
            "true": label_names[y_true[i]],
            "predicted": label_names[pred[i]],
            "confidence": float(probs[i, pred[i]]),
        }
        for i in order
    ]


# --------------------------------------------------------------------------- entities (BIO)


def bio_spans(tags, tag_names=None) -> list[tuple[str, int, int]]:
    """Entity spans ``(label, start, end)`` (end exclusive, in units of the sequence) from BIO tags.

    ``tags`` are tag strings ('O', 'B-DATE', 'I-DATE', ...) or tag ids together with
    ``tag_names``. A span starts at B-X, or at an I-X that does not continue an X
    span (the lenient convention of seqeval); it ends before the next tag that is not
    I-X. Positions tagged -100 (special tokens) end any open span and are skipped.
    Taught in lesson 05.
    """
    spans, label, start = [], None, None
    for pos, tag in enumerate(list(tags) + ["O"]):
        if not isinstance(tag, str):
            tag = int(tag)
            if tag == IGNORE_INDEX:
                tag = "O"
            elif tag_names is None:
                raise ValueError("tags are ids: pass tag_names (e.g. from data.load) to read them")
            elif not 0 <= tag < len(tag_names):
                raise ValueError(f"tag id {tag} outside 0..{len(tag_names) - 1}")
            else:
                tag = tag_names[tag]
        if tag != "O" and (len(tag) < 3 or tag[:2] not in ("B-", "I-")):
            raise ValueError(f"{tag!r} is not a BIO tag: use 'O', 'B-<label>' or 'I-<label>'")
        continues = tag.startswith("I-") and label == tag[2:]
        if label is not None and not continues:
            spans.append((label, start, pos))
            label = None
        if tag != "O" and not continues:
            label, start = tag[2:], pos
    return spans


def span_scores(true_spans, pred_spans) -> dict:
    """Entity-level precision, recall and F1 by exact match of spans. Taught in lesson 05.

    ``true_spans`` and ``pred_spans`` are lists with one entry per example, each a
    list of ``(label, start, end)`` spans (as :func:`bio_spans` returns). A predicted
    entity counts as correct only if an identical span (same label, same start, same
    end) is in the gold list of the same example. Returns precision, recall and F1
    over all entities (micro), the counts, and ``per_label`` precision/recall/F1/support.
    """
    true_spans, pred_spans = list(true_spans), list(pred_spans)
    if len(true_spans) != len(pred_spans):
        raise ValueError(
            f"{len(true_spans)} gold examples but {len(pred_spans)} predicted: give one list of spans per example"
        )

    def prf(n_correct, n_true, n_pred):
        p = n_correct / n_pred if n_pred else 0.0
        r = n_correct / n_true if n_true else 0.0
        return p, r, (2 * p * r / (p + r) if p + r else 0.0)

    counts: dict = {}
    for gold, pred in zip(true_spans, pred_spans):
        gold, pred = set(map(tuple, gold)), set(map(tuple, pred))
        for label in {s[0] for s in gold | pred}:
            c = counts.setdefault(label, [0, 0, 0])
            g, p = {s for s in gold if s[0] == label}, {s for s in pred if s[0] == label}
            c[0] += len(g & p)
            c[1] += len(g)
            c[2] += len(p)
    n_correct, n_true, n_pred = (sum(c[i] for c in counts.values()) for i in range(3))
    precision, recall, f1 = prf(n_correct, n_true, n_pred)
    per_label = {}
    for label in sorted(counts):
        p, r, f = prf(*counts[label])
        per_label[label] = {"precision": p, "recall": r, "f1": f, "support": counts[label][1]}
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "n_true": n_true,
        "n_pred": n_pred,
        "n_correct": n_correct,
        "per_label": per_label,
    }


def entity_scores(logits, labels, tag_names) -> dict:
    """Entity-level scores of a token classifier, from its logits and the gold tag ids. Taught in lesson 05.

    ``logits`` is ``(n, tokens, tags)`` as :func:`training.predict` returns for token
    tasks (padded); ``labels`` is one list of tag ids per example (-100 on special
    tokens), e.g. ``enc["test"]["labels"]``. Positions labelled -100 are skipped in
    both gold and prediction; spans are compared with :func:`span_scores`.
    """
    logits = np.asarray(logits)
    labels = list(labels)
    if logits.ndim != 3:
        raise ValueError(f"logits must be (n, tokens, tags) for a token task, got shape {logits.shape}")
    if len(logits) != len(labels):
        raise ValueError(f"logits has {len(logits)} examples but labels has {len(labels)}")
    if logits.shape[2] != len(tag_names):
        raise ValueError(f"{len(tag_names)} tag names for {logits.shape[2]} tags in the logits")
    gold, pred = [], []
    for row, lab in zip(logits, labels):
        lab = np.asarray(lab)
        if len(lab) > row.shape[0]:
            raise ValueError(f"an example has {len(lab)} labels but the logits only {row.shape[0]} positions")
        guess = row[: len(lab)].argmax(-1)
        guess = np.where(lab == IGNORE_INDEX, IGNORE_INDEX, guess)
        gold.append(bio_spans(lab, tag_names))
        pred.append(bio_spans(guess, tag_names))
    return span_scores(gold, pred)


# --------------------------------------------------------------------------- curves


def plot_history(history, ax=None, title=None):
    """Training loss per step and validation macro-F1 per epoch from :func:`training.train`. Taught in lesson 08."""
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
