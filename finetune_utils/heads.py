"""Prediction networks on top of the pre-trained encoder.

Adapting a pre-trained encoder means discarding its pre-training head and adding a
new prediction network. For classification that network is one linear layer on the
encoder's representation of the first token, [CLS]:

    p(y | x) = softmax(W · h_[CLS] + b),    W: (num_labels, hidden),  b: (num_labels,)

transformers builds exactly this (after BERT's pooler, a tanh layer pre-trained with
the encoder) in ``AutoModelForSequenceClassification``; token tasks apply the same
linear layer to every token's vector (``AutoModelForTokenClassification``).
:func:`classifier` builds them from the packaged encoder, and
:func:`new_parameter_names` shows which parameters are new (ω) and which come
from pre-training (θ̂).
"""

from __future__ import annotations

from pathlib import Path

from . import env, models

TASKS = ("sequence", "pair", "token")


def model_class(task: str = "sequence"):
    """The transformers Auto class that builds or loads a classifier for ``task``.

    ``"token"``: one label per token; ``"sequence"`` and ``"pair"``: one label per text
    (a pair is two texts joined with [SEP]). Defined once for :func:`classifier` and
    for ``models.load_finetuned``.
    """
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    return AutoModelForTokenClassification if task == "token" else AutoModelForSequenceClassification


def classifier(
    label_names,
    task: str = "sequence",
    name_or_path=None,
    dropout: float | None = None,
    seed: int | None = None,
):
    """The pre-trained encoder with a new, randomly initialised prediction network.

    ``task`` is ``"sequence"`` (one label per text), ``"pair"`` (one label per text
    pair: the same head, the two texts joined with [SEP]) or ``"token"`` (one label
    per token; pass the BIO tag names). ``dropout`` overrides the dropout before the
    classifier; ``seed``, if given, seeds every generator first so that the new
    head ω gets the same random initial values every time. Returns the model
    (``BertForSequenceClassification`` / ``BertForTokenClassification`` for the
    packaged encoder); its config carries the label names (``id2label``/``label2id``).
    """
    if isinstance(label_names, str):
        raise TypeError(
            f"label_names must be a list of names, got the string {label_names!r}; "
            "pass e.g. the names that data.load returns: ds, labels = data.load(name)"
        )
    label_names = list(label_names)
    cls = model_class(task)
    if len(label_names) < 2:
        raise ValueError(f"a classifier needs at least two label names, got {label_names}")
    duplicates = sorted({n for n in label_names if label_names.count(n) > 1}, key=str)
    if duplicates:
        raise ValueError(f"label names must be distinct; {duplicates} appear more than once in {label_names}")
    if dropout is not None and not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout is a probability in [0, 1), got {dropout!r}")
    source, _ = models.resolve(name_or_path, models.ENCODER, models.encoder_path)
    extra = {} if dropout is None else {"classifier_dropout": dropout}
    if seed is not None:
        env.seed_everything(seed)
    with models.hub_errors(source), _quiet_transformers():
        return cls.from_pretrained(
            str(source),
            num_labels=len(label_names),
            id2label=dict(enumerate(label_names)),
            label2id={n: i for i, n in enumerate(label_names)},
            **extra,
        )


class _quiet_transformers:
    """Silence the 'newly initialized weights' notice: the lessons show it on purpose."""

    def __enter__(self):
        from transformers.utils import logging

        self._level = logging.get_verbosity()
        logging.set_verbosity_error()

    def __exit__(self, *exc):
        from transformers.utils import logging

        logging.set_verbosity(self._level)


def checkpoint_names(path: str | Path | None = None) -> set[str]:
    """Parameter names stored in the pre-trained checkpoint (safetensors)."""
    from safetensors import safe_open

    folder = Path(path) if path is not None else models.encoder_path()
    with safe_open(str(folder / "model.safetensors"), framework="pt") as fh:
        return set(fh.keys())


def new_parameter_names(model, path=None) -> list[str]:
    """Parameters of ``model`` that were *not* in the pre-trained checkpoint: ω, the new network.

    Names are compared without the model-type prefix ("bert." in a classifier).
    """
    pretrained = checkpoint_names(path)
    base = getattr(model, "base_model_prefix", "")  # "bert" in BertForSequenceClassification
    new = []
    for name, _ in model.named_parameters():
        stripped = name[len(base) + 1 :] if base and name.startswith(base + ".") else name
        if stripped not in pretrained:
            new.append(name)
    return new
