"""Fine-tune the course's encoder on your own data, from the command line.

    python -m finetune_utils.train --data support_sentiment --output runs/sentiment
    python -m finetune_utils.train --data reviews.csv --text-column review --label-column stars --output runs/reviews
    finetune-train --help                                   # the same command, as a console script

It runs unchanged on several processes (CPU with gloo, or several GPUs)::

    accelerate launch --multi_gpu --num_processes 2 -m finetune_utils.train --data ... --batch-size 8
    (accelerate's multi-process launcher; without GPUs the processes train on the CPU with gloo)
    torchrun --nproc_per_node 2 -m finetune_utils.train --data ... --batch-size 8

``--batch-size`` is per process, so 2 processes × 8 take the same optimizer steps as
1 process × 16. Only the main process writes. What ends up in ``--output``:

* ``model/``: the fine-tuned model (safetensors; LoRA adapters merged in) and its
  tokenizer; it loads with ``AutoModelForSequenceClassification.from_pretrained``;
* ``labels.json``: the label names in id order;
* ``metrics.json``: the options, per-epoch validation scores, test scores, seconds;
* ``curve.png``: training loss per step and validation macro-F1 per epoch;
* ``checkpoints/``: the last checkpoint while training runs (for ``--resume``);
  removed at the end unless ``--keep-checkpoints``.

A checkpoint is written to a temporary folder and renamed into place, and the
``checkpoints/latest`` pointer is replaced atomically after it, so a crash while
saving leaves the previous checkpoint usable. A resumed run restores the weights,
the optimizer, the learning-rate schedule, the random state and the position in the
epoch, and reaches the same result as an uninterrupted one.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
import time
from pathlib import Path

from . import data as course_data

CHECKPOINT_DIR = "checkpoints"
LATEST = "latest"
#: Options that must match when a run is resumed.
RESUME_KEYS = ("data", "text_column", "pair_column", "label_column", "model", "strategy", "k", "lora_r",
               "epochs", "lr", "batch_size", "max_length", "seed", "warmup_ratio", "weight_decay")
STOPPED_EXIT_CODE = 3


class TrainError(Exception):
    """Bad input to the training command; the message says what is wrong and what to do."""


# --------------------------------------------------------------------------- options


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m finetune_utils.train",
        description="Fine-tune the packaged pre-trained encoder (all-MiniLM-L6-v2) as a text classifier "
        "on a course data set or on your own JSONL/CSV data, and write the model, label names, "
        "metrics and a training curve to an output folder.",
        epilog="Runs under `accelerate launch` and `torchrun` with several processes unchanged; "
        "--batch-size is per process. Exit status: 0 done, 2 bad input, 3 stopped by --stop-after.",
    )
    d = p.add_argument_group("data")
    d.add_argument("--data", required=True,
                   help="a course data set name (support_sentiment, legal_topics, support_answers), a folder with "
                   "train.jsonl|csv and optionally validation.* and test.*, or one .jsonl/.csv file (then split "
                   "70/15/15, stratified, with a fixed seed)")
    d.add_argument("--text-column", default="text", help="column holding the text (default: text)")
    d.add_argument("--pair-column", default=None,
                   help="second text column for sentence-pair tasks (e.g. answer); default: none")
    d.add_argument("--label-column", default="label", help="column holding the label (default: label)")
    d.add_argument("--max-length", type=int, default=128, help="tokens per text; longer texts are truncated (default: 128)")
    m = p.add_argument_group("model")
    m.add_argument("--model", default=None,
                   help="encoder folder or hub name (hub names need internet); default: the packaged all-MiniLM-L6-v2")
    m.add_argument("--strategy", default="full", choices=("full", "head_only", "last_k", "lora"),
                   help="what trains: every parameter, the new head only, the last k layers + head, or LoRA adapters + head "
                   "(default: full)")
    m.add_argument("--k", type=int, default=2, help="layers to train with --strategy last_k (default: 2)")
    m.add_argument("--lora-r", type=int, default=8, help="LoRA rank with --strategy lora (default: 8)")
    t = p.add_argument_group("training")
    t.add_argument("--epochs", type=int, default=3, help="passes over the training set (default: 3)")
    t.add_argument("--lr", type=float, default=5e-5, help="peak learning rate of AdamW (default: 5e-5)")
    t.add_argument("--batch-size", type=int, default=16, help="examples per step per process (default: 16)")
    t.add_argument("--warmup-ratio", type=float, default=0.1, help="share of steps for linear warm-up (default: 0.1)")
    t.add_argument("--weight-decay", type=float, default=0.01, help="AdamW weight decay (default: 0.01)")
    t.add_argument("--seed", type=int, default=0, help="seed for the head's initial values, shuffling and dropout (default: 0)")
    t.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                   help="auto takes CUDA when available (default: auto)")
    t.add_argument("--precision", default="auto", choices=("auto", "no", "bf16", "fp16"),
                   help="mixed precision: auto = bf16 on CUDA where supported, else fp16; off on CPU (default: auto)")
    o = p.add_argument_group("output and checkpoints")
    o.add_argument("--output", required=True, help="folder to write the model, labels.json, metrics.json, curve.png")
    o.add_argument("--overwrite", action="store_true", help="replace an existing, non-empty output folder")
    o.add_argument("--resume", action="store_true", help="continue an interrupted run from its last checkpoint")
    o.add_argument("--save-every", type=int, default=0,
                   help="also checkpoint every N optimizer steps (default: 0 = only at the end of each epoch)")
    o.add_argument("--keep-checkpoints", action="store_true", help="keep checkpoints/ after a finished run")
    o.add_argument("--stop-after", type=int, default=None, metavar="STEPS",
                   help="checkpoint and stop after this many optimizer steps, as if interrupted (exit status 3); "
                   "for trying out --resume")
    o.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def check_options(args) -> None:
    """Reject impossible option values before anything is loaded."""
    problems = []
    if args.epochs < 1:
        problems.append(f"--epochs must be >= 1 (got {args.epochs})")
    if not args.lr > 0:
        problems.append(f"--lr must be > 0 (got {args.lr})")
    if args.batch_size < 1:
        problems.append(f"--batch-size must be >= 1 (got {args.batch_size})")
    if args.max_length < 8:
        problems.append(f"--max-length must be >= 8 tokens (got {args.max_length})")
    if not 0 <= args.warmup_ratio < 1:
        problems.append(f"--warmup-ratio must be in [0, 1) (got {args.warmup_ratio})")
    if args.seed < 0:
        problems.append(f"--seed must be >= 0 (got {args.seed})")
    if args.save_every < 0:
        problems.append(f"--save-every must be >= 0 (got {args.save_every})")
    if args.stop_after is not None and args.stop_after < 1:
        problems.append(f"--stop-after must be >= 1 (got {args.stop_after})")
    if args.overwrite and args.resume:
        problems.append("--overwrite and --resume contradict each other: --resume continues the run in --output, "
                        "--overwrite deletes it")
    if problems:
        raise TrainError("; ".join(problems))


def check_output(output: Path, overwrite: bool, resume: bool) -> None:
    """Refuse to write into a folder that holds something, unless asked to."""
    if output.exists() and not output.is_dir():
        raise TrainError(f"--output {output} is a file, not a folder; name a folder")
    busy = output.is_dir() and any(output.iterdir())
    if resume:
        if (output / "metrics.json").is_file() and not (output / CHECKPOINT_DIR / LATEST).is_file():
            raise TrainError(f"the run in {output} has finished (its metrics.json is there): nothing to resume. "
                             "Use --overwrite to train it again, or choose another --output.")
        if not (output / CHECKPOINT_DIR / LATEST).is_file():
            raise TrainError(f"nothing to resume in {output}: it has no {CHECKPOINT_DIR}/{LATEST}. "
                             "Start the run without --resume.")
        return
    if busy and not overwrite:
        raise TrainError(f"the output folder {output} exists and is not empty; nothing was changed. "
                         "Pass --overwrite to replace it, --resume to continue an interrupted run, or choose another --output.")


# --------------------------------------------------------------------------- data


def _read_table(path: Path) -> list[dict]:
    if not path.is_file():
        raise TrainError(f"data file {path} not found; check the path (--data)")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        try:
            return course_data.read_jsonl(path)
        except course_data.DataError as err:
            raise TrainError(str(err)) from None
    if suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
            if reader.fieldnames is None:
                raise TrainError(f"{path} is empty: a CSV file needs a header row and data rows")
        return rows
    raise TrainError(f"{path}: unsupported file type {path.suffix!r}; use .jsonl (one JSON object per line) or .csv")


def _split_file(rows: list[dict], label_column: str) -> dict:
    from sklearn.model_selection import train_test_split

    labels = [str(r.get(label_column)) for r in rows]
    counts = {lab: labels.count(lab) for lab in set(labels)}
    stratify = labels if min(counts.values()) >= 4 else None  # stratify when every class can be split
    rest, test = train_test_split(rows, test_size=0.15, random_state=0, stratify=stratify)
    rest_labels = [str(r.get(label_column)) for r in rest] if stratify else None
    train, val = train_test_split(rest, test_size=0.15 / 0.85, random_state=0, stratify=rest_labels)
    return {"train": train, "validation": val, "test": test}


def load_splits(args) -> tuple[dict, list[str], str | None]:
    """Read the data the options name. Returns ({split: (texts, pairs, label ids)}, label names, pair column)."""
    if args.data in course_data.names():
        schema = course_data.SCHEMAS[args.data]
        if schema.task not in ("sequence", "pair"):
            raise TrainError(f"{args.data} is a {schema.task} data set; this command trains sequence and sentence-pair "
                             "classifiers (token classification is in lesson 05, instruction tuning in lesson 07)")
        try:
            ds, names = course_data.load(args.data)
        except course_data.DataError as err:
            raise TrainError(str(err)) from None
        text_col, pair_col = (schema.text_fields + (None,))[:2]
        out = {s: (ds[s][text_col], ds[s][pair_col] if pair_col else None, ds[s]["label"]) for s in ds}
        return out, list(names), pair_col

    source = Path(args.data)
    if source.is_dir():
        found = {}
        for split in course_data.SPLITS:
            files = [source / f"{split}{ext}" for ext in (".jsonl", ".csv") if (source / f"{split}{ext}").is_file()]
            if files:
                found[split] = _read_table(files[0])
        if "train" not in found:
            raise TrainError(f"the folder {source} has no train.jsonl or train.csv; put the training examples there "
                             "(and optionally validation.* and test.*)")
        raw = found
    elif source.exists() or source.suffix:
        raw = {"all": _read_table(source)}
    else:
        raise TrainError(f"--data {args.data!r} is neither a course data set ({course_data.names()}) "
                         "nor an existing file or folder")

    for split, rows in raw.items():
        if not rows:
            raise TrainError(f"the {split} data of {args.data} has no rows")
        columns = list(rows[0])
        for option, column in (("--text-column", args.text_column), ("--pair-column", args.pair_column),
                               ("--label-column", args.label_column)):
            if column is not None and column not in columns:
                raise TrainError(f"the {split} data of {args.data} has no column {column!r} (its columns: {columns}); "
                                 f"name the right one with {option}")
        for i, row in enumerate(rows, start=1):
            for column in (args.text_column, args.pair_column):
                if column is None:
                    continue
                value = row.get(column)
                if not isinstance(value, str):
                    raise TrainError(f"{split} data, row {i}: {column!r} must be text, got {type(value).__name__}")
                if not value.strip():
                    raise TrainError(f"{split} data, row {i}: {column!r} is empty; remove the row or fill in the text")
            if row.get(args.label_column) in (None, ""):
                raise TrainError(f"{split} data, row {i}: the label ({args.label_column!r}) is missing")
    if "all" in raw:
        raw = _split_file(raw["all"], args.label_column)

    train_labels = {row[args.label_column] for row in raw["train"]}
    if len(train_labels) < 2:
        raise TrainError(f"the label column {args.label_column!r} has a single class ({next(iter(train_labels))!r}) in "
                         "the training data; a classifier needs examples of at least two classes")
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in train_labels)
    names = [str(v) for v in sorted(train_labels, key=(float if numeric else str))]
    index = {name: i for i, name in enumerate(names)}
    out = {}
    for split, rows in raw.items():
        ids = []
        for i, row in enumerate(rows, start=1):
            label = str(row[args.label_column])
            if label not in index:
                raise TrainError(f"{split} data, row {i}: label {label!r} does not occur in the training data "
                                 f"(its labels: {names}); fix the label or add training examples of it")
            ids.append(index[label])
        texts = [row[args.text_column] for row in rows]
        pairs = [row[args.pair_column] for row in rows] if args.pair_column else None
        out[split] = (texts, pairs, ids)
    return out, names, args.pair_column


def _dataset(texts, pairs, labels):
    from datasets import Dataset

    columns = {"text": texts, "label": labels}
    if pairs is not None:
        columns["pair"] = pairs
    return Dataset.from_dict(columns)


# --------------------------------------------------------------------------- checkpoints


def save_checkpoint(folder: Path, model, optimizer, scheduler, state: dict, scaler=None) -> Path:
    """Write a checkpoint atomically and point ``folder/latest`` at it.

    The checkpoint (trainable weights as safetensors, optimizer and schedule state,
    random state, progress) is written to a temporary folder, renamed into place, and
    only then does ``latest`` (replaced with ``os.replace``) name it; older
    checkpoints are removed last. A crash at any point leaves ``latest`` naming a
    complete checkpoint.
    """
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    name = f"step-{state['step']:06d}"
    tmp = folder / f".tmp-{name}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    trainable = {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad}
    save_file(trainable, str(tmp / "trainable.safetensors"))
    torch.save(
        {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "scaler": scaler.state_dict() if scaler is not None else None,
        },
        tmp / "training_state.pt",
    )
    (tmp / "state.json").write_text(json.dumps(state, indent=1))
    final = folder / name
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    pointer = folder / f".{LATEST}.tmp"
    pointer.write_text(name)
    os.replace(pointer, folder / LATEST)
    for old in folder.iterdir():
        if old.is_dir() and old.name != name:
            shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(folder: Path) -> Path:
    """The checkpoint ``folder/latest`` names, checked to be complete."""
    pointer = folder / LATEST
    if not pointer.is_file():
        raise TrainError(f"no checkpoint in {folder}: {LATEST} is missing; start the run without --resume")
    path = folder / pointer.read_text().strip()
    missing = [f for f in ("trainable.safetensors", "training_state.pt", "state.json") if not (path / f).is_file()]
    if missing:
        raise TrainError(f"the checkpoint {path} is incomplete (missing {missing}); "
                         "start again with --overwrite")
    return path


def load_checkpoint(path: Path, model, optimizer, scheduler, scaler=None) -> dict:
    """Restore what :func:`save_checkpoint` wrote; returns its progress state."""
    import torch
    from safetensors.torch import load_file

    weights = load_file(str(path / "trainable.safetensors"))
    own = {n for n, p in model.named_parameters() if p.requires_grad}
    if set(weights) != own:
        raise TrainError(f"the checkpoint {path} holds other trainable parameters than this model "
                         f"({len(weights)} vs {len(own)} tensors); resume with the options the run started with")
    model.load_state_dict(weights, strict=False)
    saved = torch.load(path / "training_state.pt", map_location="cpu", weights_only=True)
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    torch.set_rng_state(saved["rng_cpu"])
    if saved["rng_cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(saved["rng_cuda"])
    if scaler is not None and saved["scaler"] is not None:
        scaler.load_state_dict(saved["scaler"])
    return json.loads((path / "state.json").read_text())


# --------------------------------------------------------------------------- training


def choose_precision(requested: str, device_type: str) -> str:
    """``"no"``, ``"bf16"`` or ``"fp16"``: mixed precision on CUDA only."""
    if device_type != "cuda":
        if requested in ("bf16", "fp16"):
            raise TrainError(f"--precision {requested} needs a CUDA GPU; on {device_type} use --precision no (or auto)")
        return "no"
    if requested != "auto":
        return requested
    import torch

    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def run(args) -> int:
    import numpy as np
    import torch
    import torch.nn.functional as F
    from accelerate import Accelerator
    from torch.utils.data import DataLoader, DistributedSampler
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup

    from . import env, freezing, heads, models, training
    from .evaluation import scores

    check_options(args)
    output = Path(args.output)
    check_output(output, args.overwrite, args.resume)
    splits, label_names, pair_col = load_splits(args)

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    use_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    if args.device == "cuda" and not torch.cuda.is_available():
        raise TrainError("--device cuda: no CUDA GPU is visible; use --device cpu (or auto)")
    precision = choose_precision(args.precision, "cuda" if use_cuda else "cpu")
    accelerator = Accelerator(cpu=not use_cuda, mixed_precision=precision)
    main = accelerator.is_main_process
    device = accelerator.device
    if main and args.overwrite and output.exists():
        shutil.rmtree(output)
    accelerator.wait_for_everyone()

    try:
        tokenizer = models.load_encoder_tokenizer(args.model)
        env.seed_everything(args.seed)
        model = heads.classifier(label_names, task="pair" if pair_col else "sequence", name_or_path=args.model,
                                 seed=args.seed)
    except (models.ModelPackageMissingError, models.UnknownModelError) as err:
        raise TrainError(str(err)) from None
    lora = {"r": args.lora_r} if args.strategy == "lora" else {}
    model = freezing.apply_strategy(model, args.strategy, k=args.k, **lora)
    n_trainable = freezing.trainable_summary(model)

    tokenized = {
        s: training.tokenize(_dataset(*v), tokenizer, pair_field="pair" if pair_col else None, max_length=args.max_length)
        for s, v in splits.items()
    }
    train_ds = tokenized["train"].select_columns([c for c in tokenized["train"].column_names if c in training.MODEL_INPUTS])
    sampler = DistributedSampler(train_ds, num_replicas=accelerator.num_processes, rank=accelerator.process_index,
                                 shuffle=True, seed=args.seed)
    # The loader gets its own generator: iterating it must not draw from the global random state,
    # which the checkpoints save and restore for dropout.
    batches = DataLoader(train_ds, batch_size=args.batch_size, sampler=sampler,
                         collate_fn=training.collator(tokenizer), generator=torch.Generator().manual_seed(args.seed))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = training.adamw(training.weight_decay_groups(params, args.weight_decay), args.lr, device)
    steps_per_epoch = len(batches)
    total_steps = args.epochs * steps_per_epoch
    scheduler = get_linear_schedule_with_warmup(optimizer, int(np.ceil(args.warmup_ratio * total_steps)), total_steps)
    model, optimizer = accelerator.prepare(model, optimizer)
    inner = accelerator.unwrap_model(model)

    options = {k: getattr(args, k) for k in RESUME_KEYS}
    state = {"step": 0, "epoch": 1, "step_in_epoch": 0, "seconds": 0.0, "options": options, "processes": accelerator.num_processes,
             "history": {"step": [], "loss": [], "lr": [], "epoch": [], "epoch_step": [], "train_loss": [], "seconds": []},
             "epoch_losses": []}
    ckpt_dir = output / CHECKPOINT_DIR
    if args.resume:
        path = latest_checkpoint(ckpt_dir)
        saved_state = json.loads((path / "state.json").read_text())
        changed = {k: (saved_state["options"].get(k), v) for k, v in options.items() if saved_state["options"].get(k) != v}
        if saved_state.get("processes") != accelerator.num_processes:
            changed["processes"] = (saved_state.get("processes"), accelerator.num_processes)
        if changed:
            listing = ", ".join(f"{k}: checkpoint {a!r}, now {b!r}" for k, (a, b) in changed.items())
            raise TrainError(f"the checkpoint in {ckpt_dir} was made with other options ({listing}); "
                             "resume with the same options, or start anew with --overwrite")
        state = load_checkpoint(path, inner, optimizer, scheduler, accelerator.scaler)
        if main:
            print(f"resuming from {path.name}: epoch {state['epoch']}, step {state['step']} of {total_steps}")
    elif main:
        output.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()

    def checkpoint():
        accelerator.wait_for_everyone()
        if main:
            save_checkpoint(ckpt_dir, inner, optimizer, scheduler, state, accelerator.scaler)
        accelerator.wait_for_everyone()

    history = state["history"]
    bar = tqdm(total=total_steps, initial=state["step"], desc="fine-tuning", disable=args.quiet or not main, leave=False, mininterval=1.0)
    stopped = False
    for epoch in range(state["epoch"], args.epochs + 1):
        sampler.set_epoch(epoch)
        model.train()
        start = time.perf_counter()
        for i, batch in enumerate(batches):
            if i < state["step_in_epoch"]:
                continue  # already done before the interruption
            batch = {k: v.to(device) for k, v in batch.items()}
            labels = batch.pop("labels")
            with accelerator.autocast():
                logits = model(**batch).logits
            loss = F.cross_entropy(logits.float(), labels)
            accelerator.backward(loss)
            accelerator.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            mean_loss = accelerator.reduce(loss.detach(), reduction="mean").item()
            state["step"] += 1
            state["step_in_epoch"] = i + 1
            state["epoch_losses"].append(mean_loss)
            history["step"].append(state["step"])
            history["loss"].append(mean_loss)
            history["lr"].append(scheduler.get_last_lr()[0])
            bar.update(1)
            bar.set_postfix(epoch=epoch, loss=f"{mean_loss:.3f}", refresh=False)
            at_stop = args.stop_after is not None and state["step"] >= args.stop_after
            if at_stop or (args.save_every and state["step"] % args.save_every == 0 and i + 1 < steps_per_epoch):
                state["seconds"] += time.perf_counter() - start
                start = time.perf_counter()
                checkpoint()
            if at_stop:
                stopped = True
                break
        if stopped:
            break
        state["seconds"] += time.perf_counter() - start
        history["epoch"].append(epoch)
        history["epoch_step"].append(state["step"])
        history["train_loss"].append(float(np.mean(state["epoch_losses"])))
        history["seconds"].append(state["seconds"] - sum(history["seconds"]))
        if "validation" in tokenized and main:
            for key, value in training.evaluate(inner, tokenized["validation"], tokenizer, device=device).items():
                history.setdefault(f"val_{key}", []).append(value)
        state.update(epoch=epoch + 1, step_in_epoch=0, epoch_losses=[])
        checkpoint()
    bar.close()
    if stopped:
        if main:
            print(f"stopped after step {state['step']} (--stop-after); continue with the same command plus --resume",
                  file=sys.stderr)
        return STOPPED_EXIT_CODE

    if main:
        final = inner.merge_and_unload() if hasattr(inner, "merge_and_unload") else inner
        final.save_pretrained(output / "model", safe_serialization=True)
        tokenizer.save_pretrained(output / "model")
        (output / "labels.json").write_text(json.dumps(label_names, indent=1))
        metrics = {
            "options": options,
            "processes": accelerator.num_processes,
            "device": str(device),
            "precision": precision,
            "examples": {s: len(v[2]) for s, v in splits.items()},
            "labels": label_names,
            "parameters": n_trainable,
            "train_seconds": state["seconds"],
            "history": history,
            "validation": {k[4:]: v[-1] for k, v in history.items() if k.startswith("val_")} or None,
            "test": None,
        }
        if "test" in tokenized:
            logits = training.predict(final, tokenized["test"], tokenizer, device=device)
            metrics["test"] = scores(tokenized["test"]["labels"], logits.argmax(-1))
        (output / "metrics.json").write_text(json.dumps(metrics, indent=1))
        _plot(history, output / "curve.png", title=f"{args.data}: {args.strategy}, {accelerator.num_processes} process(es)")
        if not args.keep_checkpoints:
            shutil.rmtree(ckpt_dir, ignore_errors=True)
        summary = metrics["test"] or metrics["validation"] or {}
        print(f"done in {state['seconds']:.0f} s on {accelerator.num_processes} process(es); "
              + ", ".join(f"{k} {v:.3f}" for k, v in summary.items()) + f"; written to {output}")
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return 0


def _plot(history, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .evaluation import plot_history

    fig, ax = plt.subplots(figsize=(6, 3.2))
    plot_history(history, ax=ax, title=title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except TrainError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
