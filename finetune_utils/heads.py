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
from pre-training (θ̂) (taught in lesson 01). A fine-tuned classifier that one lesson saves
with the recipe that made it (:func:`save_finetuned`, lesson 03) a later lesson reuses instead
of training it again (:func:`load_finetuned`, lesson 04); any difference in the recipe means
training anew.
"""

from __future__ import annotations

import json
from pathlib import Path

from . import env, integrity, models

TASKS = ("sequence", "pair", "token")


def model_class(task: str = "sequence"):
    """The transformers Auto class that builds or loads a classifier for ``task``.

    ``"token"``: one label per token; ``"sequence"`` and ``"pair"``: one label per text
    (a pair is two texts joined with [SEP]). Defined once for :func:`classifier` and
    for :func:`load_finetuned`.
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
    """The pre-trained encoder with a new, randomly initialised prediction network. Taught in lesson 01.

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
    with models.hub_errors(source), quiet_transformers():
        return cls.from_pretrained(
            str(source),
            num_labels=len(label_names),
            id2label=dict(enumerate(label_names)),
            label2id={n: i for i, n in enumerate(label_names)},
            **extra,
        )


class quiet_transformers:
    """Silence the 'newly initialized weights' notice: the lessons show it on purpose."""

    def __enter__(self):
        from transformers.utils import logging

        self._level = logging.get_verbosity()
        logging.set_verbosity_error()

    def __exit__(self, *exc):
        from transformers.utils import logging

        logging.set_verbosity(self._level)


def checkpoint_names(path: str | Path | None = None) -> set[str]:
    """Parameter names stored in the pre-trained checkpoint (safetensors). Taught in lesson 01."""
    from safetensors import safe_open

    folder = Path(path) if path is not None else models.encoder_path()
    with safe_open(str(folder / "model.safetensors"), framework="pt") as fh:
        return set(fh.keys())


def new_parameter_names(model, path=None) -> list[str]:
    """Parameters of ``model`` that were *not* in the pre-trained checkpoint: ω, the new network. Taught in lesson 01.

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


# --------------------------------------------------------------------------- fine-tuned models shared by lessons

#: The mark of a folder :func:`save_finetuned` wrote: the recipe, the files' checksums, ``written_by``.
RECIPE_FILE = "recipe.json"
_WRITER = "finetune_utils.heads.save_finetuned"


def data_digest(ds, columns=("input_ids", "token_type_ids", "labels")) -> str:
    """A short :func:`integrity.fingerprint` of a tokenized split (token ids and labels, in order).

    A recipe records it so that a saved model is only reused for the data it was trained on
    (taught in lessons 03 and 04).
    """
    plain = ds.with_format(None)  # Python lists, whatever format the split was given
    return integrity.fingerprint(*[(c, list(plain[c])) for c in columns if c in plain.column_names], length=16)


def _full_recipe(recipe: dict) -> dict:
    """The recipe as JSON stores it, with the versions of the libraries and of the code that trained the model.

    The training loop's and the heads' source files are digested too: a change to a
    default there (warm-up, weight decay, the head's initialisation) means training anew.
    """
    import torch
    import transformers

    from . import __version__, training

    code = integrity.fingerprint(*[Path(f).read_text(encoding="utf-8") for f in (training.__file__, __file__)],
                                 length=16)
    versions = {"finetune_utils": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
                "training_code": code}
    return json.loads(json.dumps({**recipe, "versions": versions}))


def save_finetuned(model, tokenizer, folder, recipe: dict, info: dict | None = None) -> Path:
    """Save a fine-tuned model, its tokenizer and the recipe that made it, for a later lesson (taught in lesson 03).

    ``recipe`` holds what determines the weights: the base model, a :func:`data_digest`
    of the training split, the strategy and every training setting, the seed; the
    versions of finetune_utils, torch and transformers and a digest of the training
    code are added. ``info`` is kept beside it and not compared (e.g. which lesson
    trained it, and in how many seconds). The recipe file is the folder's mark
    (:func:`integrity.write_mark`): marked "saving" first, it gets the recipe last, so that
    an interrupted save is never mistaken for a finished one (and may be saved over). A
    folder that holds files but not a recipe file of ours was not written here and is
    refused: nothing of the user's is replaced.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"{folder} is a file; pass a folder for the fine-tuned model")
    if folder.is_dir() and any(folder.iterdir()) and not _written_here(folder):
        raise FileExistsError(
            f"{folder} holds files that save_finetuned did not write (no {RECIPE_FILE} of ours); "
            "choose an empty or new folder, or move those files away"
        )
    folder.mkdir(parents=True, exist_ok=True)
    integrity.write_mark(folder, RECIPE_FILE, _WRITER, saving=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    env.make_readable(folder)
    files = integrity.file_sums(folder, [p.name for p in sorted(folder.iterdir()) if p.is_file()
                                         and not p.name.startswith(RECIPE_FILE)])
    integrity.write_mark(folder, RECIPE_FILE, _WRITER, recipe=_full_recipe(recipe), info=info or {}, files=files)
    return folder


def _written_here(folder) -> bool:
    """Whether ``folder``'s recipe file is one that :func:`save_finetuned` wrote (finished or not; also before
    the mark named its writer)."""
    record = integrity.read_mark(folder, RECIPE_FILE)
    return record is not None and (record.get("written_by") == _WRITER or record.get("saving") is True
                                   or isinstance(record.get("recipe"), dict))


def saved_recipe(folder) -> dict | None:
    """What :func:`save_finetuned` recorded in ``folder`` (``recipe`` and ``info``), or None if nothing readable.

    Taught in lesson 04."""
    record = integrity.read_mark(folder, RECIPE_FILE)
    return record if record is not None and isinstance(record.get("recipe"), dict) else None


def recipe_mismatch(folder, recipe: dict) -> str | None:
    """Why the model saved in ``folder`` cannot stand in for one trained with ``recipe`` (None: it can).

    Taught in lesson 04, which reuses lesson 03's model only when its recipe matches.
    """
    record = saved_recipe(folder)
    if record is None:
        return f"no model saved with its recipe in {folder}"
    wanted, saved = _full_recipe(recipe), record["recipe"]
    differences = [
        f"{key}: saved {saved.get(key, '(none)')!r}, wanted {wanted.get(key, '(none)')!r}"
        for key in sorted(set(wanted) | set(saved))
        if wanted.get(key) != saved.get(key)
    ]
    return None if not differences else "the saved model's recipe differs: " + "; ".join(differences)


def damaged_files(folder) -> list[str]:
    """The files of a :func:`save_finetuned` folder that are missing or differ from the size and checksum
    recorded when it was saved (:func:`integrity.file_problem`, as for the SmolLM2 cache and the command's
    checkpoints). A folder saved without checksums counts as damaged: it cannot be verified."""
    files = (saved_recipe(folder) or {}).get("files")
    if not isinstance(files, dict) or not files:
        return [f"{RECIPE_FILE} (no checksums recorded)"]
    return [name for name, meta in sorted(files.items()) if integrity.file_problem(Path(folder) / name, meta)]


def load_finetuned(folder, recipe: dict, task: str = "sequence"):
    """The model saved in ``folder`` by :func:`save_finetuned` if its recipe equals ``recipe``, else None.

    ``task`` picks the class as :func:`classifier` does (:func:`model_class`).
    :func:`recipe_mismatch` says why the recipe does not fit; a matching folder whose files
    do not match their recorded checksums (:func:`damaged_files`), or whose weights do not
    load, also gives None, and the caller trains instead (taught in lesson 04).
    """
    auto = model_class(task)
    if recipe_mismatch(folder, recipe) is not None or damaged_files(folder):
        return None
    try:
        model = auto.from_pretrained(str(folder))
    except Exception:  # damaged or partial weights (safetensors raises its own error type): train anew
        return None
    model.eval()
    return model
