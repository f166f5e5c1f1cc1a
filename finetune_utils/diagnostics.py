"""Diagnosing fine-tuning: what a run forgot, imbalanced data, and where a strategy fits.

Lesson 08 induces the classic fine-tuning failures and measures them; lesson 09 chooses
an adaptation strategy with the evidence. What they need beyond the other modules:

* **Forgetting.** all-MiniLM-L6-v2 was pre-trained to make the mean of its token
  vectors a sentence embedding whose cosine similarity tracks meaning.
  :func:`sentence_embeddings` computes those embeddings from any model built on the
  encoder (bare, with a classification head, with LoRA adapters), and
  :func:`similarity_skill` scores them on :data:`PARAPHRASE_PAIRS`: does a sentence
  come closer to its paraphrase than to unrelated sentences? Measured before and
  after fine-tuning, the drop is what fine-tuning made the encoder forget::

      skill = diagnostics.similarity_skill(model, tokenizer)
      skill["ranking_accuracy"], skill["recall_at_1"]

* **Label imbalance.** :func:`downsample_class` keeps a fraction of one class;
  :func:`balanced_class_weights` gives the loss weights that undo it, for
  ``training.train(..., class_weights=...)``; :func:`per_class_recall` shows the damage.

* **Choosing a strategy.** :func:`embedding_logreg` is the cheapest adaptation of the
  encoder (frozen sentence embeddings + logistic regression); :func:`relative_change`
  measures how far fine-tuning moved each block of the pre-trained parameters
  (θ̂ → θ̃); :func:`plot_decision_guide` draws the data × compute map of strategies.
"""

from __future__ import annotations

import numpy as np

#: Paraphrase pairs for the similarity check: (sentence, the same request or feeling in other words).
#: Customer-support messages, 8 negative, 8 neutral, 8 positive, each pair on its own topic, so that
#: the other pairs of the same sentiment are unrelated sentences with the same sentiment. Written
#: for the course; the paraphrase shares meaning, not wording.
PARAPHRASE_PAIRS: tuple[tuple[str, str], ...] = (
    # negative
    ("My parcel still hasn't arrived and the tracking page hasn't moved in a week.",
     "The package I ordered is lost somewhere: no delivery and no tracking update for days."),
    ("You charged my card twice for the same order.",
     "I was billed two times for a single purchase."),
    ("The app crashes every time I try to open my account settings.",
     "Opening the settings screen makes the application close on its own, again and again."),
    ("The food came cold and half of the order was missing.",
     "My dinner was delivered lukewarm, and several dishes were not in the bag."),
    ("I've been on hold for forty minutes and nobody has picked up.",
     "Nobody answers the phone; I've been waiting in the queue for most of an hour."),
    ("The hotel room was dirty and the air conditioning didn't work.",
     "Our room hadn't been cleaned, and the cooling was broken the whole stay."),
    ("My internet connection keeps dropping every evening.",
     "Each night the broadband cuts out over and over."),
    ("The refund you promised three weeks ago has still not reached my account.",
     "I'm still waiting for the money back that you said would be returned weeks ago."),
    # neutral
    ("How do I change the e-mail address linked to my account?",
     "What are the steps to update the e-mail on my profile?"),
    ("Can you tell me your opening hours on public holidays?",
     "When are you open on bank holidays?"),
    ("I'd like to move my flight from Tuesday to Thursday.",
     "Please rebook my flight for Thursday instead of Tuesday."),
    ("Is it possible to pay the invoice by bank transfer?",
     "Do you accept a wire transfer as payment for the bill?"),
    ("Where can I find the serial number of my router?",
     "Which part of the modem has its serial number printed on it?"),
    ("Please send me a copy of last month's statement.",
     "Could I get the statement for the previous month again?"),
    ("Does the premium plan include international calls?",
     "Are calls abroad covered by the premium subscription?"),
    ("What is the weight limit for checked luggage?",
     "How heavy can a suitcase be when I check it in?"),
    # positive
    ("Thank you so much, the replacement phone arrived the next day and works perfectly.",
     "Really grateful: the new handset came overnight and has had no problems at all."),
    ("The agent on the chat was patient and sorted out my billing issue in minutes.",
     "Your support person calmly fixed the problem with my bill really quickly."),
    ("We loved our stay: the staff were friendly and the view from the room was amazing.",
     "A wonderful holiday, with welcoming people at the hotel and a stunning view."),
    ("Great news, the new update made the app much faster.",
     "Since the latest version the application runs far more quickly, brilliant."),
    ("The courier was early and even carried the box upstairs for me, brilliant service.",
     "Delivery came ahead of time and the driver kindly took the parcel up the stairs."),
    ("I'm very happy with the new savings account, setting it up was easy.",
     "Opening the savings account was simple and I'm delighted with it."),
    ("The pizza was hot, delicious and arrived in twenty minutes.",
     "Quick delivery, and the pizza was warm and tasty."),
    ("Thanks for upgrading my seat, the flight was so comfortable.",
     "I appreciated the seat upgrade; it made the journey really pleasant."),
)

#: The sentiment of each pair in :data:`PARAPHRASE_PAIRS` (both sentences share it).
PARAPHRASE_SENTIMENT: tuple[str, ...] = ("negative",) * 8 + ("neutral",) * 8 + ("positive",) * 8


# --------------------------------------------------------------------------- embeddings and forgetting


def _body(model):
    """The pre-trained encoder inside ``model``: a bare encoder, a task model, or either wrapped by peft.

    For a peft model the body keeps its LoRA layers, so the embeddings include the adapters.
    """
    from .freezing import unwrap

    model = unwrap(model)
    prefix = getattr(model, "base_model_prefix", "")
    if prefix and hasattr(model, prefix) and not hasattr(model, "embeddings"):
        return getattr(model, prefix)
    if hasattr(model, "embeddings") and hasattr(model, "encoder"):
        return model
    raise ValueError(
        f"cannot find a BERT-style encoder inside {type(model).__name__}: pass models.load_encoder()'s model, "
        "a heads.classifier(...) model, or one of them wrapped with LoRA"
    )


def sentence_embeddings(model, tokenizer, texts, batch_size: int = 32, max_length: int = 64, device=None) -> np.ndarray:
    """Sentence embeddings: the mean of the encoder's last-layer token vectors, L2-normalised. Taught in lesson 03.

    That is how all-MiniLM-L6-v2 was pre-trained to embed sentences (the dot product of
    two embeddings is their cosine similarity). ``model`` may be the bare encoder, a
    classifier built on it (its encoder part is used, the head ignored) or a LoRA-wrapped
    model. Returns a float array of shape ``(len(texts), hidden_size)``.
    """
    import torch

    if isinstance(texts, str):
        raise TypeError("texts must be a list of strings, not one string: wrap it as [text]")
    texts = list(texts)
    if not texts:
        raise ValueError("texts is empty: give at least one sentence to embed")
    empty = [i for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()]
    if empty:
        raise ValueError(f"texts at positions {empty[:5]} are empty or not strings: every sentence needs words")
    body = _body(model)
    device = device or next(body.parameters()).device
    was_training = body.training
    body.eval()
    # Texts of similar length share a batch (little padding); the output keeps the input order.
    order = np.argsort([len(t) for t in texts], kind="stable")
    out = np.zeros((len(texts), body.config.hidden_size), dtype=np.float32)
    try:
        with torch.no_grad():
            for start in range(0, len(texts), batch_size):
                idx = order[start : start + batch_size]
                batch = tokenizer(
                    [texts[i] for i in idx], padding=True, truncation=True, max_length=max_length,
                    return_tensors="pt",
                ).to(device)
                hidden = body(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                mean = (hidden * mask).sum(1) / mask.sum(1)
                out[idx] = torch.nn.functional.normalize(mean, dim=-1).float().cpu().numpy()
    finally:
        body.train(was_training)
    return out


def similarity_scores(first, second, groups=None) -> dict:
    """Paraphrase retrieval scores from two aligned sets of normalised embeddings.

    ``first[i]`` and ``second[i]`` embed a sentence and its paraphrase; every
    ``second[j]`` with ``j != i`` is an unrelated sentence for ``first[i]`` (and the
    other way round: both directions are scored). Returns:

    * ``ranking_accuracy``: the share of (paraphrase, unrelated) comparisons in which
      the paraphrase is the more similar one (ties count half; 0.5 is chance, 1.0 perfect);
    * ``recall_at_1``: how often the paraphrase is the most similar of all candidates;
    * ``mrr``: mean reciprocal rank of the paraphrase among the candidates;
    * ``paraphrase_cosine`` / ``unrelated_cosine``: mean cosine similarity of paraphrase
      pairs and of unrelated pairs, and ``margin``, their difference.

    With ``groups`` (one value per pair, e.g. :data:`PARAPHRASE_SENTIMENT`) also
    ``same_group_ranking_accuracy`` and ``same_group_cosine``: the same, counting only
    unrelated candidates of the pair's own group, the hard comparisons (same sentiment,
    different meaning).
    """
    a, b = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"first and second must be (n, dim) arrays of the same shape, got {a.shape} and {b.shape}")
    if len(a) < 2:
        raise ValueError("need at least 2 pairs: each pair's unrelated candidates are the other pairs")
    sims = a @ b.T
    n = len(sims)
    off = ~np.eye(n, dtype=bool)
    out = _ranking(sims, off)
    ranks = np.concatenate([1 + ((s > np.diag(s)[:, None]) & off).sum(1) for s in (sims, sims.T)])
    paraphrase = float(np.mean(np.diag(sims)))
    unrelated = float(sims[off].mean())
    out.update(
        recall_at_1=float(np.mean(ranks == 1)),
        mrr=float(np.mean(1.0 / ranks)),
        paraphrase_cosine=paraphrase,
        unrelated_cosine=unrelated,
        margin=paraphrase - unrelated,
    )
    if groups is not None:
        groups = np.asarray(groups)
        if len(groups) != n:
            raise ValueError(f"groups has {len(groups)} values for {n} pairs: give one per pair")
        same = off & (groups[:, None] == groups[None, :])
        if not same.any():
            raise ValueError("no two pairs share a group: same-group scores need groups with at least 2 pairs")
        out["same_group_ranking_accuracy"] = _ranking(sims, same)["ranking_accuracy"]
        out["same_group_cosine"] = float(sims[same].mean())
    return out


def _ranking(sims, candidates) -> dict:
    """Share of (paraphrase, candidate) comparisons won by the paraphrase, both directions, ties half."""
    wins, total = 0.0, 0
    for s in (sims, sims.T):
        diag = np.diag(s)[:, None]
        wins += float(((diag > s) & candidates).sum() + 0.5 * ((diag == s) & candidates).sum())
        total += int(candidates.sum())
    return {"ranking_accuracy": wins / total}


def similarity_skill(model, tokenizer, pairs=PARAPHRASE_PAIRS, groups=None, **kwargs) -> dict:
    """The encoder's pre-training skill, sentence similarity, on paraphrase pairs. Taught in lesson 08.

    Embeds both sides of every pair with :func:`sentence_embeddings` and scores them
    with :func:`similarity_scores`. Compare the result before and after fine-tuning:
    a drop is forgetting. With the default pairs, ``groups`` defaults to their
    sentiment (:data:`PARAPHRASE_SENTIMENT`). ``kwargs`` go to :func:`sentence_embeddings`.
    """
    pairs = [tuple(p) for p in pairs]
    if any(len(p) != 2 for p in pairs):
        raise ValueError("pairs must be (sentence, paraphrase) tuples")
    if groups is None and pairs == list(PARAPHRASE_PAIRS):
        groups = PARAPHRASE_SENTIMENT
    first = sentence_embeddings(model, tokenizer, [p[0] for p in pairs], **kwargs)
    second = sentence_embeddings(model, tokenizer, [p[1] for p in pairs], **kwargs)
    return similarity_scores(first, second, groups)


# --------------------------------------------------------------------------- imbalance


def downsample_class(ds, label: int, keep: float, seed: int = 0, label_field: str = "label"):
    """A copy of ``ds`` (a ``Dataset``) that keeps only a fraction ``keep`` of class ``label``. Taught in lesson 08.

    The kept examples of that class are drawn at random (``seed``), at least one; every
    other example stays, in the original order.
    """
    if not 0 < keep <= 1:
        raise ValueError(f"keep is the fraction of the class to keep, in (0, 1], got {keep!r}")
    if label_field not in ds.column_names:
        raise ValueError(f"the data set has no column {label_field!r} (columns: {ds.column_names})")
    labels = np.asarray(ds[label_field])
    members = np.flatnonzero(labels == label)
    if members.size == 0:
        raise ValueError(f"no example has {label_field} == {label!r}; labels present: {sorted(set(labels.tolist()))}")
    rng = np.random.default_rng(seed)
    kept = rng.choice(members, size=max(1, round(keep * members.size)), replace=False)
    index = np.sort(np.concatenate([np.flatnonzero(labels != label), kept]))
    return ds.select(index.tolist())


def balanced_class_weights(labels, num_classes: int) -> list[float]:
    """Loss weights n / (num_classes · n_c): a rare class weighs more, every class counts equally overall.

    The same rule as scikit-learn's ``class_weight="balanced"``. Pass the result to
    ``training.train(..., class_weights=...)``. A class with no example cannot be
    re-weighted: that is an error, not a weight.
    Taught in lesson 08.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.size == 0:
        raise ValueError("labels must be a non-empty 1-D sequence of class ids")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"labels range over {labels.min()}..{labels.max()}, outside 0..{num_classes - 1}")
    counts = np.bincount(labels, minlength=num_classes)
    if (counts == 0).any():
        raise ValueError(
            f"classes {np.flatnonzero(counts == 0).tolist()} have no training example: no weight can make the "
            "model learn them; collect examples of every class first"
        )
    return (labels.size / (num_classes * counts)).tolist()


def per_class_recall(y_true, y_pred, label_names) -> dict:
    """Recall of each class: the share of its examples that the model labels correctly. Taught in lesson 08."""
    from sklearn.metrics import recall_score

    values = recall_score(y_true, y_pred, labels=list(range(len(label_names))), average=None, zero_division=0)
    return {name: float(v) for name, v in zip(label_names, values)}


# --------------------------------------------------------------------------- choosing a strategy


def embedding_logreg(train_embeddings, train_labels, val_embeddings=None, val_labels=None, cs=(0.1, 1.0, 10.0), seed: int = 0):
    """Logistic regression on frozen sentence embeddings: the cheapest adaptation of the encoder. Taught in lesson 03.

    The pre-trained encoder is not changed at all; only a linear classifier (the new
    head ω) is fitted on its embeddings (:func:`sentence_embeddings`). C is chosen by
    macro-F1 on the validation embeddings when given, else C=1. Returns the fitted
    scikit-learn model, with ``.C_`` the chosen C.
    """
    from sklearn.linear_model import LogisticRegression

    from .baselines import choose_c
    from .env import one_blas_thread

    def fit(c):
        return LogisticRegression(C=c, max_iter=2000, class_weight="balanced", random_state=seed).fit(
            train_embeddings, train_labels
        )

    if len(train_embeddings) != len(train_labels):
        raise ValueError(f"{len(train_embeddings)} embeddings but {len(train_labels)} labels: give one label per row")
    with one_blas_thread():  # many tiny BLAS calls: one thread is several times faster
        if val_embeddings is None:
            best, best_c = fit(1.0), 1.0
        else:
            best, best_c = choose_c(fit, cs, val_embeddings, val_labels)
    best.C_ = best_c
    return best


def relative_change(model, reference) -> dict:
    """How far each block of pre-trained parameters moved: ‖θ̃ − θ̂‖ / ‖θ̂‖ per block. Taught in lesson 09.

    ``model`` is a fine-tuned classifier, ``reference`` the untouched pre-trained model
    (e.g. a fresh ``heads.classifier`` or ``models.load_encoder()``'s encoder). Blocks are
    those of ``freezing.block_of`` (embeddings, layer.0 …, pooler); parameters that exist
    only in ``model`` (the new head ω) are left out, since they have no pre-trained value.
    """
    from .freezing import block_of, pretrained_name

    ref = {pretrained_name(n): p.detach() for n, p in reference.named_parameters()}
    moved, size = {}, {}
    for name, param in model.named_parameters():
        key = pretrained_name(name)
        if key not in ref or ref[key].shape != param.shape:
            continue
        block = block_of(key)
        before = ref[key].float().cpu()
        moved[block] = moved.get(block, 0.0) + float(((param.detach().float().cpu() - before) ** 2).sum())
        size[block] = size.get(block, 0.0) + float((before**2).sum())
    if not moved:
        raise ValueError("model and reference share no pre-trained parameter: are they built on the same encoder?")
    return {block: (moved[block] / size[block]) ** 0.5 for block in moved}


#: The decision guide's regions: (strategy, x-range, y-range, colour), one rectangle each (a strategy may
#: have several; it is labelled on its first). x: log10 of the number of labelled examples; y: compute
#: relative to the model's size, 0-1 a laptop CPU (minutes), 1-2 one GPU (hours), 2-3 many GPUs (days).
#: Generation tasks follow the same map with instruction-response pairs as the labelled data.
GUIDE_REGIONS = (
    ("prompting\n(zero-/few-shot)", (0.0, 1.6), (0.0, 3.0), "#dde6f5"),
    ("frozen encoder + head\n(or a TF-IDF baseline)", (1.6, 4.5), (0.0, 1.0), "#e3f1df"),
    ("LoRA / partial freezing\n(instruction tuning: SFT + LoRA)", (1.6, 3.0), (1.0, 3.0), "#fbefd5"),
    ("LoRA / partial freezing\n(instruction tuning: SFT + LoRA)", (3.0, 4.5), (1.0, 2.0), "#fbefd5"),
    ("full fine-tuning", (3.0, 4.5), (2.0, 3.0), "#f6dcdc"),
)


def plot_decision_guide(points=(), ax=None):
    """The decision guide as a picture: labelled data (log scale) × compute, one region per strategy.

    Each strategy's region (:data:`GUIDE_REGIONS`) is labelled once. ``points`` are results
    or scenarios to place on the map, each a dict with ``n`` (labelled examples),
    ``compute`` (0-3 on the scale of :data:`GUIDE_REGIONS`), ``label`` (text beside the
    point) and optionally ``marker`` and ``offset`` (of the label, in points; default (5, 3)).
    Returns the axes.
    Taught in lesson 09.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4.8))
    labelled = set()
    for name, (x0, x1), (y0, y1), colour in GUIDE_REGIONS:
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, facecolor=colour, edgecolor="white", lw=1.5))
        if name not in labelled:
            labelled.add(name)
            ax.text(x1 - 0.05, y1 - 0.06, name, ha="right", va="top", fontsize=8, color="#333333")
    for point in points:
        missing = {"n", "compute", "label"} - set(point)
        if missing:
            raise ValueError(f"each point needs n, compute and label; {point} lacks {sorted(missing)}")
        if point["n"] < 1:
            raise ValueError(f"n is a number of labelled examples (>= 1), got {point['n']!r}")
        x = np.log10(point["n"])
        ax.plot(x, point["compute"], point.get("marker", "o"), color="black", ms=6)
        ax.annotate(point["label"], (x, point["compute"]), xytext=point.get("offset", (5, 3)), textcoords="offset points",
                    fontsize=7.5)
    ticks = [0, 1, 2, 3, 4]
    ax.set_xticks(ticks, [f"{10**t:,}" for t in ticks])
    ax.set_yticks([0.5, 1.5, 2.5], ["laptop CPU,\nminutes", "one GPU,\nhours", "many GPUs,\ndays"])
    ax.set_xlim(0, 4.5)
    ax.set_ylim(0, 3)
    ax.set_xlabel("labelled examples for the task (log scale)")
    ax.set_ylabel("compute available")
    return ax
