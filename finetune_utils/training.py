"""Fine-tuning: tokenization, dynamically padded batches, the training loop, Trainer, prediction.

The objective is the loss over the labelled set D = {(x_i, y_i)}:

    (θ̃, ω̃) = argmin_{θ, ω}  Σ_i  L(f_ω(g_θ(x_i)), y_i),    starting from θ = θ̂ (pre-trained)

with L the cross-entropy. :func:`train` is that loop written out (forward, loss,
backward, AdamW step, linear warm-up then decay); :func:`make_trainer` gives the same
set-up through ``transformers.Trainer``. Lesson 02 writes the loop in the notebook
first; later lessons call these helpers.
"""

from __future__ import annotations

import math
import time

import numpy as np

from . import env
from .data import IGNORE_INDEX
from .evaluation import scores

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "labels")
#: The default peak learning rate of each strategy (:func:`train`'s ``lr`` is the full fine-tuning one; the training
#: command's ``--lr``, when not given, is its strategy's). The full fine-tuning value is the one
#: ``bench/defaults_sweep.py`` chose on validation across the course's sequence and pair data sets (the README's
#: table); the others are the values lessons 03 and 09 train those strategies with.
DEFAULT_LR = {"full": 2e-4, "last_k": 2e-4, "lora": 2e-3, "head_only": 2e-2}
#: Gradient clipping of every loop of the course (taught in lesson 02), the command's included.
MAX_GRAD_NORM = 1.0


# --------------------------------------------------------------------------- data


def tokenize(ds, tokenizer, text_field: str = "text", pair_field: str | None = None, max_length: int = 128, label_field: str = "label"):
    """Tokenize a ``Dataset``/``DatasetDict`` for sequence (or pair) classification. Taught in lesson 01.

    Texts longer than ``max_length`` tokens are truncated (for pairs, the longer text
    is cut first). No padding here: batches are padded dynamically by the collator.
    Keeps only the model inputs and ``labels``.
    """
    if not isinstance(max_length, int) or max_length < 8:
        raise ValueError(f"max_length must be an int >= 8 tokens, got {max_length!r}")
    columns = _columns(ds)
    for name in (text_field, pair_field, label_field):
        if name is not None and name not in columns:
            raise ValueError(f"the data set has no column {name!r} (its columns: {columns}); name the right field")

    def encode(batch):
        texts = batch[text_field]
        pairs = batch[pair_field] if pair_field else None
        out = tokenizer(texts, pairs, truncation="longest_first" if pairs else True, max_length=max_length)
        if label_field is not None:  # label_field=None: new, unlabelled text (inference)
            out["labels"] = batch[label_field]
        return out

    return ds.map(encode, batched=True, remove_columns=columns)


def tokenize_tokens(ds, tokenizer, entity_labels=None, max_length: int = 128):
    """Tokenize a span data set (text + entities) for token classification. Taught in lesson 05.

    Every word piece gets a BIO tag id from the character spans (``data.spans_to_bio``
    on the tokenizer's offset mapping): B-X for the first piece inside an entity of
    type X, I-X for the following pieces, O outside; special tokens get ``IGNORE_INDEX`` (ignored
    by the loss). ``entity_labels`` are the entity types (``["PRODUCT", ...]``); the
    BIO tag names that ``data.load`` returns are accepted too, and by default the
    types are read from the data set's features. Tag ids follow ``data.bio_names``.
    """
    from .data import spans_to_bio

    if not isinstance(max_length, int) or max_length < 8:
        raise ValueError(f"max_length must be an int >= 8 tokens, got {max_length!r}")
    columns = _columns(ds)
    if "text" not in columns or "entities" not in columns:
        raise ValueError(f"tokenize_tokens needs 'text' and 'entities' columns (a span data set); got {columns}")
    stored = _stored_entity_names(ds)  # names of the ClassLabel ids in the data set (None: strings)
    entity_labels = _entity_types(stored, entity_labels)
    unknown = sorted(set(stored or ()) - set(entity_labels))
    if unknown:
        raise ValueError(f"the data set has entity types {unknown} that are not in entity_labels={entity_labels}")

    def encode(batch):
        out = tokenizer(batch["text"], truncation=True, max_length=max_length, return_offsets_mapping=True)
        out["labels"] = [
            spans_to_bio(_entities(ents, stored), offsets, entity_labels)
            for ents, offsets in zip(batch["entities"], out.pop("offset_mapping"))
        ]
        return out

    return ds.map(encode, batched=True, remove_columns=columns)


def _stored_entity_names(ds):
    """The names of the entity label ids stored in a span data set, or None if it stores strings."""
    first = next(iter(ds.values())) if hasattr(ds, "values") else ds
    feature = first.features["entities"]
    inner = feature.feature if hasattr(feature, "feature") else feature[0]  # List({...}) or [{...}]
    label_feature = inner.get("label") if isinstance(inner, dict) else None
    return list(label_feature.names) if hasattr(label_feature, "names") else None


def _entity_types(stored, entity_labels) -> list[str]:
    """Entity types from the argument (types or BIO names), else the stored names."""
    if entity_labels is None:
        if stored is None:
            raise ValueError("the data set stores entity labels as strings: pass entity_labels (the entity types)")
        return stored
    entity_labels = list(entity_labels)
    if entity_labels and entity_labels[0] == "O" and all(n[:2] in ("B-", "I-") for n in entity_labels[1:]):
        types = list(dict.fromkeys(n[2:] for n in entity_labels[1:]))  # BIO names -> types, in order
        if ["O"] + [f"{p}-{t}" for t in types for p in ("B", "I")] != entity_labels:
            raise ValueError(f"BIO names must be 'O', then B-X, I-X for each type X (data.bio_names); got {entity_labels}")
        return types
    return entity_labels


def _entities(ents, stored_names):
    """Entities with string labels (the loader stores them as ClassLabel ids named ``stored_names``)."""
    return [{**e, "label": stored_names[e["label"]] if isinstance(e["label"], int) else e["label"]} for e in ents]


def _columns(ds):
    names = ds.column_names
    return next(iter(names.values())) if isinstance(names, dict) else names


def collator(tokenizer, task: str = "sequence", pad_to: int | None = None):
    """A collator that pads each batch to its longest member (or to ``pad_to`` tokens)."""
    from transformers import DataCollatorForTokenClassification, DataCollatorWithPadding

    padding = "max_length" if pad_to else "longest"
    if task == "token":
        return DataCollatorForTokenClassification(tokenizer, padding=padding, max_length=pad_to)
    return DataCollatorWithPadding(tokenizer, padding=padding, max_length=pad_to)


def loader(
    ds,
    tokenizer,
    batch_size: int = 16,
    shuffle: bool = False,
    seed: int = 0,
    task: str = "sequence",
    pad_to=None,
    group_by_length: bool = False,
):
    """A ``DataLoader`` over a tokenized data set, with dynamic padding. Taught in lesson 02.

    With ``group_by_length`` (training only; implies shuffling) batches are drawn by
    ``transformers``' ``LengthGroupedSampler``: the examples are shuffled, cut into
    groups of about 50 batches, and sorted by length inside each group, so that a
    batch holds texts of similar length and dynamic padding adds few pad tokens.
    """
    import torch
    from torch.utils.data import DataLoader

    keep = [c for c in ds.column_names if c in MODEL_INPUTS]
    generator = torch.Generator().manual_seed(seed)
    sampler = None
    if group_by_length:
        from transformers.trainer_pt_utils import LengthGroupedSampler

        lengths = [len(ids) for ids in ds["input_ids"]]
        sampler, shuffle = LengthGroupedSampler(batch_size, lengths=lengths, generator=generator), False
    return DataLoader(
        ds.select_columns(keep),
        batch_size=batch_size,
        shuffle=shuffle,
        sampler=sampler,
        generator=generator,
        collate_fn=collator(tokenizer, task=task, pad_to=pad_to),
    )


class GroupedSampler:
    """The examples of one process, in batches of similar length, reshuffled each epoch. Taught in lesson 07.

    :func:`loader`'s ``group_by_length`` order (``transformers``' ``LengthGroupedSampler``)
    for a run that must restart mid-epoch and may be split over processes: the order of
    epoch ``e`` depends only on ``seed + e`` (``set_epoch``, as ``DistributedSampler``),
    and ``num_replicas`` processes each take every ``num_replicas``-th index of a
    global order grouped in batches of ``batch_size × num_replicas``, so each process's
    batch holds texts of similar length. The order is padded with its first indices to
    a multiple of ``num_replicas`` (as ``DistributedSampler`` does). Like ``LengthGroupedSampler``
    it sorts groups of up to 50 batches, at most a quarter of the data each: a set of fewer than
    8 global batches is only sorted within each batch.
    """

    def __init__(self, lengths, batch_size: int, seed: int = 0, num_replicas: int = 1, rank: int = 0):
        self.lengths, self.batch_size, self.seed = list(lengths), batch_size, seed
        self.num_replicas, self.rank, self.epoch = num_replicas, rank, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(len(self.lengths) / self.num_replicas)

    def __iter__(self):
        import torch
        from transformers.trainer_pt_utils import LengthGroupedSampler

        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = list(LengthGroupedSampler(self.batch_size * self.num_replicas, lengths=self.lengths,
                                          generator=generator))
        order += order[: len(self) * self.num_replicas - len(order)]
        return iter(order[self.rank :: self.num_replicas])


# --------------------------------------------------------------------------- the loop


def weight_decay_groups(params, weight_decay: float) -> list[dict]:
    """AdamW parameter groups: weight matrices decay; biases and LayerNorm weights (1-d tensors) do not."""
    params = [p for p in params if p.requires_grad]
    return [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]


def adamw(param_groups, lr: float, device=None):
    """``torch.optim.AdamW`` with the fused implementation where PyTorch has one (CPU, CUDA).

    Fused AdamW updates all tensors in one kernel instead of a Python loop over them:
    the same update rule, less overhead per step. ``transformers.Trainer`` uses it by default too.
    """
    import torch

    device_type = getattr(device, "type", device) or "cpu"
    return torch.optim.AdamW(param_groups, lr=lr, fused=device_type in ("cpu", "cuda"))


def optimizer_and_schedule(model, lr: float, weight_decay: float, warmup_ratio: float, total_steps: int, device=None):
    """AdamW over the trainable parameters (:func:`weight_decay_groups`) and a linear warm-up-then-decay schedule.

    Taught in lesson 02."""
    from transformers import get_linear_schedule_with_warmup

    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters: unfreeze something before training")
    optimizer = adamw(weight_decay_groups(params, weight_decay), lr, device)
    return optimizer, get_linear_schedule_with_warmup(optimizer, math.ceil(warmup_ratio * total_steps), total_steps)


def classification_loss(class_weights=None):
    """``loss(model, batch)``: cross-entropy of the model's logits against ``batch["labels"]``.

    Sequence and token tasks alike (labels ``IGNORE_INDEX`` are skipped); ``class_weights``
    (one per class, e.g. ``diagnostics.balanced_class_weights``) weigh each class's examples.
    """
    import torch
    import torch.nn.functional as F

    def loss(model, batch):
        labels = batch.pop("labels")
        logits = model(**batch).logits.float()
        weight = None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32, device=logits.device)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), weight=weight,
                               ignore_index=IGNORE_INDEX)

    return loss


class NonFiniteLoss(ArithmeticError):
    """The training loss or gradient norm became NaN or infinite, so the loop stopped."""

    def __init__(self, step: int, epoch: int, loss: float, grad_norm: float):
        self.step, self.epoch, self.loss, self.grad_norm = step, epoch, loss, grad_norm
        what = f"the training loss is {loss}" if not math.isfinite(loss) else f"the gradient norm is {grad_norm}"
        super().__init__(f"step {step} (epoch {epoch}): {what}")


def new_state() -> dict:
    """The progress of a run as :func:`loop` keeps it (a checkpoint saves it, a resumed run passes it back)."""
    history = {"step": [], "loss": [], "lr": [], "epoch": [], "epoch_step": [], "train_loss": [], "seconds": []}
    return {"step": 0, "epoch": 1, "step_in_epoch": 0, "seconds": 0.0, "epoch_losses": [], "history": history}


def loop(model, batches, optimizer, scheduler, loss_fn, *, epochs: int = 1, max_grad_norm: float = MAX_GRAD_NORM, device=None,
         state: dict | None = None, accelerator=None, evaluate_epoch=None, on_step=None, on_epoch=None,
         progress: bool = True, desc: str = "fine-tuning") -> dict:
    """The package's one training loop: the lessons' :func:`train`, ``sft.train`` and the training command run it.

    Each step: ``loss_fn(model, batch)`` on the batch moved to ``device``, backward,
    gradient norm clipped to ``max_grad_norm``, optimizer and scheduler step. A loss
    or gradient norm that is not finite raises :class:`NonFiniteLoss` before the step
    is taken (under fp16 mixed precision an infinite gradient is normal: the loss
    scaler skips that step, so only the loss is checked).

    * ``state`` (:func:`new_state`) is the progress; a state restored from a checkpoint
      continues where it stopped: the batches of the epoch already done are drawn and
      skipped, so the rest come in the order of an uninterrupted run.
    * ``accelerator`` (``accelerate.Accelerator``): backward, clipping and the loss
      averaged over processes go through it.
    * ``evaluate_epoch(model)`` returns ``{name: value}`` recorded per epoch in the history.
    * ``on_step(state, model)`` runs after every step; a true result stops the run
      (``state["stopped"]``). ``on_epoch(state, model)`` runs after each epoch, once the
      state points at the next one (the place to checkpoint). Time spent in the hooks
      is not counted in ``seconds``.

    Returns the history (``state["history"]``), a dict of lists: per step ``step``,
    ``loss``, ``lr`` (after the step's scheduler update); per epoch ``epoch``,
    ``epoch_step``, ``train_loss`` (mean batch loss), ``seconds`` and what
    ``evaluate_epoch`` returns.
    """
    import torch
    from tqdm.auto import tqdm

    state = new_state() if state is None else state
    history = state["history"]
    params = [p for p in model.parameters() if p.requires_grad]
    clip = accelerator.clip_grad_norm_ if accelerator is not None else torch.nn.utils.clip_grad_norm_
    check_grad = accelerator is None or accelerator.mixed_precision != "fp16"
    sampler = getattr(batches, "sampler", None)
    bar = tqdm(total=epochs * len(batches), initial=state["step"], desc=desc, disable=not progress, leave=False,
               mininterval=1.0)
    try:
        for epoch in range(state["epoch"], epochs + 1):
            if hasattr(sampler, "set_epoch"):
                sampler.set_epoch(epoch)
            model.train()
            start = time.perf_counter()
            for i, batch in enumerate(batches):
                if i < state["step_in_epoch"]:
                    continue  # done before the interruption
                loss = loss_fn(model, {k: v.to(device) for k, v in batch.items()})
                if accelerator is None:
                    loss.backward()
                    value = loss.item()
                else:
                    accelerator.backward(loss)
                    value = accelerator.reduce(loss.detach(), reduction="mean").item()  # the same on every process
                norm = clip(params, max_grad_norm)
                norm = float(norm) if norm is not None else 0.0
                if not math.isfinite(value) or (check_grad and not math.isfinite(norm)):
                    raise NonFiniteLoss(state["step"] + 1, epoch, value, norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                state["step"] += 1
                state["step_in_epoch"] = i + 1
                state["epoch_losses"].append(value)
                history["step"].append(state["step"])
                history["loss"].append(value)
                history["lr"].append(scheduler.get_last_lr()[0])
                bar.update(1)
                bar.set_postfix(epoch=epoch, loss=f"{value:.3f}", refresh=False)
                if on_step is not None:
                    state["seconds"] += time.perf_counter() - start
                    stop = on_step(state, model)
                    start = time.perf_counter()
                    if stop:
                        state["stopped"] = True
                        return history
            state["seconds"] += time.perf_counter() - start
            history["epoch"].append(epoch)
            history["epoch_step"].append(state["step"])
            history["train_loss"].append(float(np.mean(state["epoch_losses"])))
            history["seconds"].append(state["seconds"] - sum(history["seconds"]))
            for key, value in (evaluate_epoch(model) if evaluate_epoch is not None else {}).items():
                history.setdefault(key, []).append(value)
            state.update(epoch=epoch + 1, step_in_epoch=0, epoch_losses=[])
            if on_epoch is not None:
                on_epoch(state, model)
    finally:
        bar.close()
    return history


def _task_of(model) -> str:
    return "token" if type(model).__name__.endswith("ForTokenClassification") else "sequence"


def _check_labels(model, ds):
    """Raise a clear error if the data set's labels do not fit the model's head."""
    if "labels" not in ds.column_names:
        raise ValueError(
            f"the data set has no 'labels' column (columns: {ds.column_names}); "
            "tokenize it first with training.tokenize (or tokenize_tokens for token tasks)"
        )
    num_labels = model.config.num_labels
    labels = np.asarray([x for row in ds["labels"] for x in (row if isinstance(row, list) else [row])])
    labels = labels[labels != IGNORE_INDEX]
    if labels.size and (labels.min() < 0 or labels.max() >= num_labels):
        raise ValueError(
            f"labels range over {labels.min()}..{labels.max()} but the head predicts {num_labels} classes; "
            f"build the classifier with the data set's label names (num_labels={labels.max() + 1})."
        )


def train(
    model,
    train_ds,
    tokenizer,
    val_ds=None,
    *,
    epochs: int = 3,
    lr: float = DEFAULT_LR["full"],
    batch_size: int = 16,
    warmup_ratio: float = 0.1,
    weight_decay: float = 0.01,
    max_grad_norm: float = MAX_GRAD_NORM,
    class_weights=None,
    seed: int = 0,
    device=None,
    pad_to: int | None = None,
    progress: bool = True,
    eval_sets: dict | None = None,
    group_by_length: bool = False,
    on_epoch=None,
) -> dict:
    """Fine-tune ``model`` on a tokenized data set with the package's loop (:func:`loop`). Taught in lesson 02.

    Every parameter with ``requires_grad`` is updated (θ̂ → θ̃ and ω̃, or only a part:
    see :mod:`finetune_utils.freezing`). AdamW, linear warm-up over ``warmup_ratio``
    of the steps then linear decay to 0, gradient clipping, cross-entropy (optionally
    class-weighted; ``IGNORE_INDEX`` labels skipped). The model is left on ``device``.
    A non-finite loss stops the run with :class:`NonFiniteLoss`.

    Returns the history of :func:`loop`; with ``val_ds`` it also holds ``val_macro_f1``,
    ``val_micro_f1``, ``val_accuracy`` per epoch, and with ``eval_sets`` (a dict
    ``{name: tokenized data set}``, e.g. ``{"train": train_ds}`` to watch the
    train/validation gap) ``<name>_macro_f1``, ``<name>_micro_f1``, ``<name>_accuracy``.

    ``group_by_length=True`` batches texts of similar length together (see :func:`loader`):
    the same examples per epoch, far fewer pad tokens when lengths vary a lot.
    ``on_epoch(state, model)`` is called after each epoch (see :func:`loop`).
    """
    if epochs < 1 or lr <= 0 or batch_size < 1:
        raise ValueError(f"need epochs >= 1, lr > 0 and batch_size >= 1; got {epochs}, {lr}, {batch_size}")
    _check_labels(model, train_ds)
    if eval_sets is not None and not isinstance(eval_sets, dict):
        raise TypeError(f"eval_sets must be a dict {{name: tokenized data set}}, got {type(eval_sets).__name__}")
    for extra in (eval_sets or {}).values():
        _check_labels(model, extra)
    env.seed_everything(seed)
    device = device or env.pick_device()
    model.to(device)
    batches = loader(train_ds, tokenizer, batch_size, shuffle=True, seed=seed, task=_task_of(model), pad_to=pad_to,
                     group_by_length=group_by_length)
    optimizer, scheduler = optimizer_and_schedule(model, lr, weight_decay, warmup_ratio, epochs * len(batches), device)
    named = {"val": val_ds} if val_ds is not None else {}
    named.update(eval_sets or {})

    def evaluate_epoch(model):
        return {f"{name}_{key}": value for name, ds in named.items()
                for key, value in evaluate(model, ds, tokenizer, batch_size=64, device=device).items()}

    return loop(model, batches, optimizer, scheduler, classification_loss(class_weights), epochs=epochs,
                max_grad_norm=max_grad_norm, device=device, evaluate_epoch=evaluate_epoch, on_epoch=on_epoch,
                progress=progress)


def predict(model, ds, tokenizer, batch_size: int = 64, device=None, progress: bool = False) -> np.ndarray:
    """Logits for a tokenized data set, in order: (n, classes), or (n, tokens, classes) padded for token tasks.

    Batches are formed from texts of similar length (less padding, faster); the rows come
    back in the data set's order.
    Taught in lesson 02.
    """
    import torch
    from tqdm.auto import tqdm

    if len(ds) == 0:
        raise ValueError("the data set is empty: there is nothing to predict")
    if "input_ids" not in ds.column_names:
        raise ValueError(
            f"the data set has no 'input_ids' (columns: {ds.column_names}); tokenize it first with training.tokenize"
        )

    device = device or next(model.parameters()).device
    model.eval()
    task = _task_of(model)
    # Predict in order of length (each batch padded only to its longest text), return in the input order.
    order = np.argsort([len(ids) for ids in ds["input_ids"]], kind="stable")
    outputs = []
    with torch.no_grad():
        batches = loader(ds.select(order), tokenizer, batch_size, task=task)
        for batch in tqdm(batches, desc="predicting", disable=not progress, leave=False, mininterval=1.0):
            batch = {k: v.to(device) for k, v in batch.items() if k != "labels"}
            outputs.append(model(**batch).logits.float().cpu().numpy())
    if task == "token":
        width = max(o.shape[1] for o in outputs)
        outputs = [np.pad(o, ((0, 0), (0, width - o.shape[1]), (0, 0)), constant_values=np.nan) for o in outputs]
    logits = np.empty_like(np.concatenate(outputs))
    logits[order] = np.concatenate(outputs)
    return logits


def evaluate(model, ds, tokenizer, batch_size: int = 64, device=None) -> dict:
    """Macro-F1, micro-F1 and accuracy of ``model`` on a tokenized data set. Taught in lesson 01.

    For token tasks the scores are over word pieces that carry a label (not -100).
    """
    logits = predict(model, ds, tokenizer, batch_size, device)
    if logits.ndim == 3:
        y_true, y_pred = [], []
        for row_logits, labels in zip(logits, ds["labels"]):
            labels = np.asarray(labels)
            keep = labels != IGNORE_INDEX
            y_true.extend(labels[keep])
            y_pred.extend(row_logits[: len(labels)][keep].argmax(-1))
        return scores(y_true, y_pred)
    return scores(ds["labels"], logits.argmax(-1))


# --------------------------------------------------------------------------- Trainer


TRAINER_SETTINGS = ("epochs", "lr", "batch_size", "warmup_ratio", "weight_decay", "max_grad_norm", "seed")


def make_trainer(model, train_ds, tokenizer, val_ds=None, *, output_dir: str | None = None,
                 progress: bool = True, group_by_length: bool = False, **settings):
    """The same fine-tuning set-up as :func:`train`, through ``transformers.Trainer``. Taught in lesson 02.

    ``settings`` are :func:`train`'s keyword arguments named in ``TRAINER_SETTINGS``
    (``epochs``, ``lr``, ``batch_size``, ...), with :func:`train`'s defaults, read from its
    signature so that the two set-ups cannot drift apart. No checkpoints are written
    unless ``output_dir`` is given; no telemetry (``report_to="none"``). Evaluates
    macro-F1 on ``val_ds`` after each epoch. ``group_by_length`` batches texts of
    similar length together, as in :func:`train`.
    """
    import dataclasses
    import inspect
    import tempfile

    from transformers import Trainer, TrainingArguments

    unknown = sorted(set(settings) - set(TRAINER_SETTINGS))
    if unknown:
        raise TypeError(f"make_trainer() got unexpected settings {unknown}; it takes {list(TRAINER_SETTINGS)}")
    defaults = inspect.signature(train).parameters
    s = {name: settings.get(name, defaults[name].default) for name in TRAINER_SETTINGS}
    _check_labels(model, train_ds)
    task = _task_of(model)

    def compute_metrics(prediction):
        logits, labels = prediction.predictions, prediction.label_ids
        if logits.ndim == 3:
            keep = labels != IGNORE_INDEX
            return scores(labels[keep], logits.argmax(-1)[keep])
        return scores(labels, logits.argmax(-1))

    args = TrainingArguments(
        output_dir=output_dir or tempfile.mkdtemp(prefix="trainer-"),
        num_train_epochs=s["epochs"],
        learning_rate=s["lr"],
        per_device_train_batch_size=s["batch_size"],
        per_device_eval_batch_size=64,
        warmup_steps=s["warmup_ratio"],  # a float below 1 is a ratio of the total steps
        weight_decay=s["weight_decay"],
        max_grad_norm=s["max_grad_norm"],
        lr_scheduler_type="linear",
        eval_strategy="epoch" if val_ds is not None else "no",
        save_strategy="epoch" if output_dir else "no",
        logging_steps=5,
        seed=s["seed"],
        data_seed=s["seed"],
        report_to="none",
        disable_tqdm=not progress,
        dataloader_num_workers=0,
        use_cpu=env.pick_device().type == "cpu",
        **_length_grouping(dataclasses.fields(TrainingArguments), group_by_length),
    )
    return Trainer(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=val_ds,
        data_collator=collator(tokenizer, task=task),
        processing_class=tokenizer,
        compute_metrics=compute_metrics,
    )


def _length_grouping(fields, on: bool) -> dict:
    """The TrainingArguments option for length-grouped batches in this transformers version."""
    if not on:
        return {}
    names = {f.name for f in fields}
    if "train_sampling_strategy" in names:  # transformers >= 5
        return {"train_sampling_strategy": "group_by_length"}
    return {"group_by_length": True}  # transformers 4.x
