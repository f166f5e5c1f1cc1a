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

* ``finetune-run.json``: the mark of a folder this command wrote (written first) and,
  once the run has finished, the list of files it wrote with their sizes;
* ``model/``: the fine-tuned model (safetensors; LoRA adapters merged in) and its
  tokenizer; it loads with ``AutoModelForSequenceClassification.from_pretrained``;
* ``labels.json``: the label names in id order;
* ``metrics.json``: the options, per-epoch validation scores, the test scores of the model
  written, where the validation split came from, the epoch kept, the precision and why,
  seconds per phase;
* ``curve.png``: training loss per step, validation macro-F1 per epoch, the epoch kept;
* ``checkpoints/``: the last checkpoint while training runs (for ``--resume``; written at the
  end of each epoch but the last, with the best epoch's weights when they are not the latest);
  removed at the end unless ``--keep-checkpoints`` (only the files the command
  wrote there: anything else is left, and so is the folder that holds it).

The training itself is the package's one loop (``training.loop``, the loop of the
lessons' ``training.train``); this module adds the options, the data reading, the
output folder's safety, checkpoints and ``accelerate``.

Its defaults are meant for data that is not the course's: a folder without a validation
file gets a stratified validation split carved from its training file; the model written
is the epoch with the best validation macro-F1; batches group texts of similar length;
each strategy has its own learning rate (``DEFAULT_LR``); on CUDA, ``--precision auto``
keeps fp32 with TF32 for small models, where mixed precision is slower (:func:`choose_precision`).

Nothing the command did not write is ever deleted. Every option, the data and the
model are checked before anything is written. ``--overwrite`` replaces only a folder
that holds the mark and nothing else; the new run is written beside it (in
``.<name>.incoming``) and swapped in when it has finished, so a failed run leaves the
previous one intact. The command refuses an ``--output`` that is or contains the
data, the current folder or a home folder.

A checkpoint is written to a temporary folder and renamed into place, and the
``checkpoints/latest`` pointer is replaced atomically after it, so a crash while
saving leaves the previous checkpoint usable. Each checkpoint carries checksums of
its files and a fingerprint of the data and labels; ``--resume`` refuses a damaged
checkpoint or changed data. A resumed run restores the weights, the optimizer, the
learning-rate schedule, the random state and the position in the epoch, and reaches
the same result as an uninterrupted one.

A training loss or gradient that is not finite (NaN or inf) stops the run with exit
status 2 and no model written.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import io
import json
import math
import os
import re
import shutil
import sys
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from . import data as course_data
from .training import DEFAULT_LR  # the learning rate of each strategy when --lr is not given

CHECKPOINT_DIR = "checkpoints"
LATEST = "latest"
#: The mark of an output folder this command wrote.
RUN_MARK = "finetune-run.json"
CHECKSUMS = "checksums.json"
CHECKPOINT_FILES = ("trainable.safetensors", "training_state.pt", "state.json")
#: The trainable weights of the best epoch so far, in a checkpoint when that epoch is not the latest.
BEST_FILE = "best.safetensors"
#: Options that must match when a run is resumed.
RESUME_KEYS = ("data", "text_column", "pair_column", "label_column", "model", "strategy", "k", "lora_r",
               "epochs", "lr", "batch_size", "max_length", "seed", "warmup_ratio", "weight_decay", "max_grad_norm",
               "class_weights", "validation_share")
#: Models below this many parameters train in fp32 (TF32 matrix products) under ``--precision auto`` on CUDA. For
#: the course's 22.7M-parameter encoder bf16 autocast was measured slower than fp32 (its casts cost more than half
#: precision saves); the boundary itself is a rule of thumb, not a measurement (``bench/gpu_check.sh`` prints the
#: ratios for the packaged encoder on your GPU).
MIXED_PRECISION_FROM = 300_000_000
#: Fewest training rows, and fewest per class, from which a validation split is carved when none is given.
MIN_CARVE_ROWS, MIN_CARVE_PER_CLASS = 20, 2
STOPPED_EXIT_CODE = 3
#: Delimiters a CSV file may use (detected from the header).
DELIMITERS = (",", ";", "\t", "|")
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "vertical bar"}
#: Fewest rows of a single file that the automatic 70/15/15 split accepts.
MIN_SPLIT_ROWS = 10


class TrainError(Exception):
    """Bad input to the training command; the message says what is wrong and what to do."""


class NonFiniteError(TrainError):
    """The training loss or gradient became NaN or infinite."""
# --------------------------------------------------------------------------- options


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m finetune_utils.train",
        description="Fine-tune the packaged pre-trained encoder (all-MiniLM-L6-v2) as a text classifier "
        "on a course data set or on your own JSONL/CSV data, and write the model, label names, "
        "metrics and a training curve to an output folder.",
        epilog="Runs under `accelerate launch` and `torchrun` with several processes unchanged; "
        "--batch-size is per process. Exit status: 0 done, 2 bad input or a non-finite loss, 3 stopped by --stop-after.",
    )
    d = p.add_argument_group("data")
    d.add_argument("--data", required=True,
                   help="a course data set name (support_sentiment, legal_topics, support_answers), a folder with "
                   "train.jsonl|csv and optionally validation.* and test.*, or one .jsonl/.csv file (then split "
                   "70/15/15, stratified, with a fixed seed)")
    d.add_argument("--text-column", default="text", help="column holding the text (default: text)")
    d.add_argument("--pair-column", default=None,
                   help="second text column for sentence-pair tasks (e.g. answer); default: none")
    d.add_argument("--label-column", default="label", help="column holding the label (default: label). " + LABEL_RULE)
    d.add_argument("--validation-share", type=float, default=0.15,
                   help="share of the training file carved out, stratified, as the validation split when the folder has "
                   "no validation.* file (default: 0.15; 0 = no validation split)")
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
    t.add_argument("--lr", type=float, default=None,
                   help="peak learning rate of AdamW (default: per strategy: " + ", ".join(f"{k} {v:g}" for k, v in DEFAULT_LR.items())
                   + "; the full fine-tuning value from a sweep over the course data sets, see the README)")
    t.add_argument("--batch-size", type=int, default=16, help="examples per step per process (default: 16)")
    t.add_argument("--warmup-ratio", type=float, default=0.1, help="share of steps for linear warm-up (default: 0.1)")
    t.add_argument("--weight-decay", type=float, default=0.01, help="AdamW weight decay (default: 0.01)")
    t.add_argument("--max-grad-norm", type=float, default=1.0,
                   help="clip the gradient norm to this value before each step (default: 1.0)")
    t.add_argument("--class-weights", default="none", choices=("none", "balanced"),
                   help="balanced: weigh each class's loss by n / (classes × n_class), for imbalanced labels (default: none)")
    t.add_argument("--seed", type=int, default=0, help="seed for the head's initial values, shuffling and dropout (default: 0)")
    t.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                   help="auto takes CUDA when available (default: auto)")
    t.add_argument("--precision", default="auto", choices=("auto", "no", "bf16", "fp16"),
                   help="mixed precision on CUDA: auto = fp32 with TF32 matrix products for models under "
                   f"{MIXED_PRECISION_FROM // 10**6}M parameters (faster than bf16 there), bf16 (else fp16) for larger "
                   "ones; always fp32 on CPU (default: auto)")
    t.add_argument("--keep-epoch", default="best", choices=("best", "last"),
                   help="which epoch's model is written: the one with the best validation macro-F1, or the last "
                   "(default: best; without a validation split, the last)")
    o = p.add_argument_group("output and checkpoints")
    o.add_argument("--output", required=True, help="folder to write the model, labels.json, metrics.json, curve.png")
    o.add_argument("--overwrite", action="store_true", help="replace a previous run of this command in --output (only a folder holding its mark, finetune-run.json, and no other files); the new run is swapped in when it has finished")
    o.add_argument("--resume", action="store_true", help="continue an interrupted run from its last checkpoint")
    o.add_argument("--save-every", type=int, default=0,
                   help="also checkpoint every N optimizer steps (default: 0 = only at the end of each epoch)")
    o.add_argument("--keep-checkpoints", action="store_true", help="keep checkpoints/ after a finished run")
    o.add_argument("--stop-after", type=int, default=None, metavar="STEPS",
                   help="checkpoint and stop after this many optimizer steps, as if interrupted (exit status 3); "
                   "for trying out --resume")
    o.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def check_options(args) -> None:
    """Reject impossible option values before anything is loaded (every problem at once)."""
    problems = []
    if not 1 <= args.epochs <= 1000:
        problems.append(f"--epochs must be between 1 and 1000 (got {args.epochs})")
    if args.lr is not None and not (_finite(args.lr) and 0 < args.lr <= 1):
        problems.append(f"--lr must be a finite number > 0 and <= 1 (got {args.lr}); fine-tuning uses about 1e-5 to 1e-3")
    if args.batch_size < 1:
        problems.append(f"--batch-size must be >= 1 (got {args.batch_size})")
    if args.max_length < 8:
        problems.append(f"--max-length must be >= 8 tokens (got {args.max_length})")
    if not (_finite(args.warmup_ratio) and 0 <= args.warmup_ratio < 1):
        problems.append(f"--warmup-ratio must be in [0, 1) (got {args.warmup_ratio})")
    if not (_finite(args.weight_decay) and 0 <= args.weight_decay <= 1):
        problems.append(f"--weight-decay must be a finite number in [0, 1] (got {args.weight_decay}); usual values are 0 to 0.1")
    if not (_finite(args.max_grad_norm) and args.max_grad_norm > 0):
        problems.append(f"--max-grad-norm must be a finite number > 0 (got {args.max_grad_norm}); 1.0 is usual")
    if not (_finite(args.validation_share) and 0 <= args.validation_share <= 0.5):
        problems.append(f"--validation-share must be between 0 and 0.5 (got {args.validation_share}); 0.1 to 0.2 is usual")
    if not 0 <= args.seed < 2**32:
        problems.append(f"--seed must be between 0 and 2**32 - 1 (got {args.seed})")
    if args.k < 0:
        problems.append(f"--k must be >= 0 layers (got {args.k})")
    if args.lora_r < 1:
        problems.append(f"--lora-r must be >= 1 (got {args.lora_r}); the LoRA rank is the width of the adapters, e.g. 4, 8 or 16")
    if args.save_every < 0:
        problems.append(f"--save-every must be >= 0 (got {args.save_every})")
    if args.stop_after is not None and args.stop_after < 1:
        problems.append(f"--stop-after must be >= 1 (got {args.stop_after})")
    if args.overwrite and args.resume:
        problems.append("--overwrite and --resume contradict each other: --resume continues the run in --output, "
                        "--overwrite replaces it")
    if problems:
        raise TrainError("; ".join(problems))


@dataclass
class ModelInfo:
    """What the command needs to know about the encoder before loading its weights."""

    layers: int | None
    max_positions: int | None


def check_model(model: str | None, max_length: int, strategy: str, k: int) -> ModelInfo:
    """Read the encoder's config (no weights) and check --max-length and --k against it."""
    from transformers import AutoConfig

    from . import models

    try:
        source, _ = models.resolve(model, models.ENCODER, models.encoder_path)
    except (models.ModelPackageMissingError, models.UnknownModelError) as err:
        raise TrainError(str(err)) from None
    except TypeError as err:
        raise TrainError(f"--model: {err}") from None
    try:
        if isinstance(source, Path):  # a local folder: its own errors, not the hub's
            config = AutoConfig.from_pretrained(str(source))
        else:
            with models.hub_errors(source):
                config = AutoConfig.from_pretrained(str(source))
    except models.UnknownModelError as err:
        raise TrainError(str(err)) from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise TrainError(f"--model {model}: its config.json cannot be read as a model configuration "
                         f"({type(err).__name__}: {str(err)[:160]}); a model folder needs the config.json, weights and "
                         "tokenizer files that came with the model") from None
    info = ModelInfo(getattr(config, "num_hidden_layers", None), getattr(config, "max_position_embeddings", None))
    problems = []
    limit = info.max_positions
    if isinstance(limit, int) and max_length > limit:
        problems.append(f"--max-length {max_length} is more than the model's {limit} positions; "
                        f"use --max-length {limit} or less (longer texts are truncated)")
    if strategy == "last_k" and isinstance(info.layers, int) and k > info.layers:
        problems.append(f"--k {k} is more than the model's {info.layers} layers; use --k between 0 and {info.layers} "
                        f"(--k {info.layers} trains every layer but the embeddings, --strategy full trains everything)")
    if problems:
        raise TrainError("; ".join(problems))
    return info


# --------------------------------------------------------------------------- the output folder

_CHECKPOINT_FILE = re.compile(
    r"^checkpoints/(latest|\.latest\.tmp|(\.tmp-)?step-\d+/(trainable\.safetensors|best\.safetensors|training_state\.pt|state\.json|"
    + re.escape(CHECKSUMS) + r"))$")


_CHECKPOINT_NAME = re.compile(r"^(\.tmp-)?step-\d+$")
_UNFINISHED_OUTPUT = re.compile(r"^(labels\.json|metrics\.json|curve\.png|model/[^/]+)$")


def _real(path) -> Path:
    """``path`` made absolute with symbolic links resolved (also for a path that does not exist yet)."""
    return Path(os.path.abspath(os.path.expanduser(str(path)))).resolve()


def _within(inner: Path, outer: Path) -> bool:
    """True if ``inner`` is ``outer`` or lies inside it."""
    return inner == outer or outer in inner.parents


def read_mark(folder: Path) -> dict | None:
    """The run mark in ``folder`` (None if there is none, or it is not this command's)."""
    try:
        mark = json.loads((folder / RUN_MARK).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(mark, dict) or mark.get("written_by") != "finetune_utils.train":
        return None
    return mark


def foreign_files(folder: Path) -> list[str] | None:
    """Files and folders in ``folder`` that this command did not write; None if it has no run mark.

    Ours are: the mark; the files the mark lists, with their recorded sizes; the
    checkpoint layout under ``checkpoints/``; and, while the mark says the run has not
    finished, the outputs' names (``model/*``, ``labels.json``, ``metrics.json``,
    ``curve.png``) of a run that crashed while writing them. Anything else, symbolic
    links included, is foreign, and a folder holding it is never deleted.
    """
    mark = read_mark(folder)
    if mark is None:
        return None
    listed = mark.get("files") if isinstance(mark.get("files"), dict) else {}
    # a run that did not finish (a crash while writing its outputs) has not listed them yet
    unlisted = _UNFINISHED_OUTPUT if mark.get("finished") is not True else None
    own_dirs = {CHECKPOINT_DIR} | ({"model"} if unlisted else set())
    for rel in listed:
        own_dirs.update(str(p.as_posix()) for p in Path(rel).parents if str(p) != ".")
    foreign = []
    for root, dirs, files in os.walk(folder):
        base = Path(root).relative_to(folder)
        for name in sorted(dirs):
            rel = (base / name).as_posix()
            if (Path(root) / name).is_symlink() or not (rel in own_dirs or rel.startswith(CHECKPOINT_DIR + "/")):
                foreign.append(rel + "/")
        dirs[:] = [d for d in dirs if (base / d).as_posix() + "/" not in foreign]
        for name in sorted(files):
            rel = (base / name).as_posix()
            path = Path(root) / name
            if rel in (RUN_MARK, RUN_MARK + ".tmp") and not path.is_symlink():
                continue
            if path.is_symlink():
                foreign.append(rel)
            elif rel in listed:
                if path.stat().st_size != listed[rel]:
                    foreign.append(rel + " (changed since the run wrote it)")
            elif not _CHECKPOINT_FILE.match(rel) and not (unlisted and unlisted.match(rel)):
                foreign.append(rel)
    return foreign


def _write_mark(folder: Path, files: dict | None = None, finished: bool = False) -> None:
    mark = {"written_by": "finetune_utils.train", "format": 1, "finished": finished,
            "note": "this folder was written by python -m finetune_utils.train; --overwrite replaces it only while "
                    "it holds no other files", "files": files or {}}
    tmp = folder / (RUN_MARK + ".tmp")
    tmp.write_text(json.dumps(mark, indent=1), encoding="utf-8")
    os.replace(tmp, folder / RUN_MARK)


def _listing(items: list[str], n: int = 5) -> str:
    return ", ".join(items[:n]) + (f" and {len(items) - n} more" if len(items) > n else "")


@dataclass
class OutputPlan:
    """Where a run writes: ``work`` is ``output`` itself, or a sibling swapped in at the end."""

    output: Path
    work: Path
    replace: bool = False  # work is a staging folder that replaces output at the end
    resume: bool = False
    created: bool = False  # this run creates the folder (so a failed run may remove it again)
    foreign: list = field(default_factory=list)  # with --resume: files in it the command did not write (left alone)


def protected_paths(data: str) -> list[Path]:
    """The data the options name: an output must never be or contain them."""
    out = []
    if data in course_data.names():
        try:
            out.append(_real(course_data.folder(data)))
        except course_data.DataError:
            pass
    elif Path(data).exists():
        out.append(_real(data))
    return out


def plan_output(output: str, data: str, overwrite: bool = False, resume: bool = False) -> OutputPlan:
    """Decide where the run writes, refusing every unsafe --output; writes nothing."""
    given = output
    output = _real(given)
    shown = f"--output {given}" + (f" (a link to {output})" if Path(given).is_symlink() else "")
    for data_path in protected_paths(data):
        if _within(data_path, output):
            what = "is the data" if data_path == output else f"contains the data ({data_path})"
            raise TrainError(f"{shown} {what}; the command would write over your data. Choose a new folder for "
                             "--output, outside the data (e.g. runs/my-run)")
    if _within(_real(Path.cwd()), output):
        raise TrainError(f"{shown} is the current folder" + ("" if output == _real(Path.cwd()) else " or contains it")
                         + "; choose a new subfolder for the run, e.g. --output runs/my-run")
    home = _real(Path.home())
    if _within(home, output):
        raise TrainError(f"{shown} is your home folder" + ("" if output == home else " or contains it")
                         + "; choose a new subfolder for the run, e.g. --output runs/my-run")
    if output.exists() and not output.is_dir():
        raise TrainError(f"{shown} is a file, not a folder; name a folder")
    if not output.exists():
        if resume:
            raise TrainError(f"nothing to resume in {given}: the folder does not exist. Start the run without --resume.")
        ancestor = output.parent
        while not ancestor.exists():
            ancestor = ancestor.parent
        if not ancestor.is_dir():
            raise TrainError(f"{shown} cannot be created: {ancestor} is a file, not a folder; choose another --output")
        if not os.access(ancestor, os.W_OK | os.X_OK):
            raise TrainError(f"{shown} cannot be created: no permission to write in {ancestor}; choose another --output")
        return OutputPlan(output, output, created=True)
    foreign = foreign_files(output)
    if resume:
        if foreign is None:
            raise TrainError(f"nothing to resume in {given}: it was not written by this command (no {RUN_MARK}). "
                             "Start the run without --resume, in a new --output.")
        if not (output / CHECKPOINT_DIR / LATEST).is_file():
            if (output / "metrics.json").is_file():
                raise TrainError(f"the run in {given} has finished (its metrics.json is there): nothing to resume. "
                                 "Use --overwrite to train it again, or choose another --output.")
            raise TrainError(f"nothing to resume in {given}: it has no {CHECKPOINT_DIR}/{LATEST}. "
                             "Start the run without --resume (add --overwrite to replace it).")
        return OutputPlan(output, output, resume=True, foreign=foreign)
    if not any(output.iterdir()):
        return OutputPlan(output, output)
    if foreign is None or foreign:
        if foreign is None:  # no mark: nothing in it is ours
            foreign = sorted(p.name + ("/" if p.is_dir() and not p.is_symlink() else "") for p in output.iterdir())
        why = f"holds files this command did not write ({_listing(foreign)})"
        raise TrainError(f"the output folder {given} exists and is not empty: it {why}. Nothing was changed, and "
                         "--overwrite would not delete it either: choose a new --output (or move your files away).")
    if not overwrite:
        interrupted = (output / CHECKPOINT_DIR / LATEST).is_file()
        raise TrainError(f"the output folder {given} exists and is not empty: it holds "
                         + ("an interrupted run of this command" if interrupted else "a previous run of this command")
                         + "; nothing was changed. Pass --overwrite to replace it"
                         + (", --resume to continue it" if interrupted else "") + ", or choose another --output.")
    staging = output.parent / f".{output.name}.incoming"
    if staging.exists() and foreign_files(staging) != []:
        raise TrainError(f"{staging} is in the way (the command writes the new run there before swapping it in) and "
                         "holds files it did not write; move it away")
    if not os.access(output.parent, os.W_OK | os.X_OK):
        raise TrainError(f"{shown} cannot be replaced: no permission to write in {output.parent}")
    return OutputPlan(output, staging, replace=True)


def prepare_output(plan: OutputPlan) -> None:
    """Create the folder the run writes to and mark it first (main process only)."""
    if plan.resume:
        return
    try:
        if plan.replace and plan.work.exists():
            # a leftover of an earlier failed --overwrite; checked again here, right before deleting it
            if foreign_files(plan.work) != []:
                raise TrainError(f"{plan.work} is in the way (the command writes the new run there before swapping "
                                 "it in) and holds files it did not write; move it away")
            shutil.rmtree(plan.work)
        plan.work.mkdir(parents=True, exist_ok=True)
        _write_mark(plan.work)
    except OSError as err:
        raise TrainError(f"--output {plan.output} cannot be created: {err.strerror or err}; choose another --output") from None


def _our_files(folder: Path) -> dict:
    files = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_file() and not path.is_symlink() and _UNFINISHED_OUTPUT.match(rel):
            files[rel] = path.stat().st_size
    return files


def finish_output(plan: OutputPlan) -> None:
    """Record what the run wrote in its mark; with --overwrite, swap the new run in for the old one."""
    _write_mark(plan.work, _our_files(plan.work), finished=True)
    if not plan.replace:
        return
    foreign = foreign_files(plan.output)
    if foreign != []:  # None: its run mark is gone, so nothing in it can be known to be ours
        what = f"files were added to {plan.output} ({_listing(foreign)})" if foreign else \
            f"the run mark {RUN_MARK} of {plan.output} was removed"
        raise TrainError(f"while the run trained, {what}, so it was not replaced; the new run is in {plan.work}")
    old = plan.output.parent / f".{plan.output.name}.replaced"
    if old.exists() and foreign_files(old) == []:
        shutil.rmtree(old)
    os.rename(plan.output, old)
    os.rename(plan.work, plan.output)
    shutil.rmtree(old)


def discard_output(plan: OutputPlan) -> None:
    """After a failed run: remove what this run wrote, and only that."""
    if plan.resume or not plan.work.exists() or foreign_files(plan.work) != []:
        return
    if plan.replace or plan.created:
        shutil.rmtree(plan.work)
    else:  # an empty folder the user made: leave it empty
        for path in plan.work.iterdir():
            shutil.rmtree(path) if path.is_dir() else path.unlink()


# --------------------------------------------------------------------------- data


@dataclass
class Row:
    """One example as read: its values, and where it came from (for messages)."""

    values: dict
    file: Path
    line: int

    @property
    def where(self) -> str:
        return f"{self.file}, line {self.line}"


def _header_columns(header_line: str, delimiter: str) -> list[str]:
    try:
        return next(csv.reader([header_line], delimiter=delimiter), [])
    except csv.Error:
        return []


def choose_delimiter(text: str, wanted: list[str]) -> str:
    """The delimiter of a CSV text: the one whose header holds the ``wanted`` columns, else csv.Sniffer's guess."""
    header = text.split("\n", 1)[0].rstrip("\r")
    try:
        sniffed = csv.Sniffer().sniff(text[:65536], delimiters="".join(DELIMITERS)).delimiter
    except csv.Error:
        sniffed = None
    order = ([sniffed] if sniffed else []) + [d for d in DELIMITERS if d != sniffed]
    for delimiter in order:
        if set(wanted) <= set(_header_columns(header, delimiter)):
            return delimiter
    if sniffed:
        return sniffed
    counts = {d: header.count(d) for d in DELIMITERS}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def _read_csv(path: Path, wanted: list[str]) -> tuple[list[Row], str]:
    text = course_data.decode_utf8(path.read_bytes(), path)
    if not text.strip():
        raise TrainError(f"{path} is empty: a CSV file needs a header row and data rows")
    delimiter = choose_delimiter(text, wanted)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows, header, line = [], None, 1
    try:
        for record in reader:
            start, line = line, reader.line_num + 1
            if not record or all(not field.strip() for field in record):
                continue  # a blank line
            if header is None:
                header = [h.strip() for h in record]
                doubled = sorted({h for h in header if header.count(h) > 1})
                if doubled:
                    raise TrainError(f"{path}, line {start}: the header names the column(s) {doubled} more than once; "
                                     "give every column its own name")
                continue
            if len(record) != len(header):
                raise TrainError(f"{path}, line {start}: {len(record)} fields, but the header has {len(header)} "
                                 f"(read with the {DELIMITER_NAMES[delimiter]} {delimiter!r} as delimiter); a field "
                                 "that contains the delimiter or a line break must be in double quotes")
            rows.append(Row(dict(zip(header, record)), path, start))
    except csv.Error as err:
        raise TrainError(f"{path}, line {line}: not valid CSV ({err})") from None
    if header is None:
        raise TrainError(f"{path} is empty: a CSV file needs a header row and data rows")
    return rows, delimiter


def read_table(path: Path, wanted: list[str]) -> tuple[list[Row], str | None]:
    """Rows of one .jsonl or .csv file, each with its file and line; and the CSV delimiter (None for JSONL)."""
    if not path.is_file():
        raise TrainError(f"data file {path} not found; check the path (--data)")
    suffix = path.suffix.lower()
    try:
        if suffix == ".jsonl":
            raw = course_data.read_jsonl(path)
            return [Row(r, path, r.pop("_line")) for r in raw], None
        if suffix == ".csv":
            return _read_csv(path, wanted)
    except course_data.DataError as err:
        raise TrainError(str(err)) from None
    except OSError as err:
        raise TrainError(f"data file {path} cannot be read: {err.strerror or err}") from None
    raise TrainError(f"{path}: unsupported file type {path.suffix!r}; use .jsonl (one JSON object per line) or .csv")


#: Spellings of "no value" that spreadsheets, pandas and databases write into a label cell (compared
#: case-insensitively, after stripping): a row with one of them has no label, and is refused.
MISSING_LABELS = frozenset({"nan", "na", "n/a", "#n/a", "null", "none", "nil", "missing", "?", "-", "--"})

LABEL_RULE = (
    "Labels: every label becomes text. Surrounding whitespace is removed; a label that is a number (in a "
    "CSV cell or a JSON value) is written in one canonical form, so 1, 1.0, '1' and '1.0' are one class "
    "('1') and 2.50 is '2.5'; true/false become 'true'/'false'. Empty and missing labels (JSON null or NaN, "
    "or text such as NaN, NA, n/a, null, None, #N/A, -) are refused with their file and line."
)


NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")   # a decimal number as people write one


def _canonical_number(number: float) -> str:
    return str(int(number)) if float(number).is_integer() and abs(number) < 2**53 else repr(float(number))


def normalise_label(value, where: str, column: str) -> tuple[str, bool]:
    """The label as a class name, and whether its text form was changed (whitespace or number form).

    The one rule for every file type and split (:data:`LABEL_RULE`): a label becomes text, stripped of
    surrounding whitespace ("pos " is "pos"); a number, from JSON or written as text in a CSV cell, takes
    one canonical form (1, 1.0, "1" and "1.0" are all "1"; 2.50 is "2.5"); true/false from JSON become
    "true"/"false". Missing, empty, non-finite and structured (list, object) labels, and the spellings of
    a missing value in :data:`MISSING_LABELS`, are refused with the row's file and line.
    """
    if isinstance(value, str):
        name = unicodedata.normalize("NFC", value.strip())
        if not name:
            raise TrainError(f"{where}: the label ({column!r}) is empty; fill it in or remove the row")
        if name.lower() in MISSING_LABELS:
            raise TrainError(f"{where}: the label ({column!r}) is {name!r}, which spreadsheets and pandas write for a "
                             "missing value; fill it in or remove the row (if it is really a class, give it another name)")
        if NUMBER.fullmatch(name) and math.isfinite(float(name)):
            canonical = _canonical_number(float(name))
            return canonical, canonical != value
        return name, name != value
    if value is None:
        raise TrainError(f"{where}: the label ({column!r}) is missing (null); fill it in or remove the row")
    if isinstance(value, bool):
        return ("true" if value else "false"), False
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise TrainError(f"{where}: the label ({column!r}) is {value}, not a class name")
        canonical = _canonical_number(value)
        return canonical, canonical != json.dumps(value)
    raise TrainError(f"{where}: the label ({column!r}) must be text or a number, got a {type(value).__name__} "
                     f"({json.dumps(value)[:60]}); one label per row")


def _split_file(rows: list[Row], labels: list[str]) -> dict:
    from sklearn.model_selection import train_test_split

    counts = {lab: labels.count(lab) for lab in set(labels)}
    index = list(range(len(rows)))
    n_test = math.ceil(0.15 * len(rows))
    stratify = labels if min(counts.values()) >= 4 and n_test >= len(counts) else None
    try:
        rest, test = train_test_split(index, test_size=0.15, random_state=0, stratify=stratify)
        rest_labels = [labels[i] for i in rest] if stratify else None
        try:
            train, val = train_test_split(rest, test_size=0.15 / 0.85, random_state=0, stratify=rest_labels)
        except ValueError:  # too few per class for a stratified validation split
            train, val = train_test_split(rest, test_size=0.15 / 0.85, random_state=0)
    except ValueError as err:
        raise TrainError(f"{rows[0].file}: cannot split {len(rows)} rows 70/15/15 ({err}); give more rows, or a folder "
                         "with train.* and validation.* files") from None
    return {"train": [rows[i] for i in train], "validation": [rows[i] for i in val], "test": [rows[i] for i in test]}


def carve_validation(rows: list[Row], labels: list[str], share: float) -> tuple[list[Row], list[Row]] | str:
    """Split the training rows into (train, validation), stratified by label, with a fixed seed (0).

    Every class keeps at least one training row. Returns the reason instead when the rows
    are too few to carve a split that holds every class (fewer than ``MIN_CARVE_ROWS`` rows,
    a class with fewer than ``MIN_CARVE_PER_CLASS``, or a share too small for one row per class).
    """
    from sklearn.model_selection import train_test_split

    counts = {lab: labels.count(lab) for lab in set(labels)}
    n_val = math.ceil(share * len(rows))
    rare = min(counts, key=counts.get)
    if len(rows) < MIN_CARVE_ROWS:
        return f"the training data has {len(rows)} rows (a validation split is carved from {MIN_CARVE_ROWS} or more)"
    if counts[rare] < MIN_CARVE_PER_CLASS:
        return f"the class {rare!r} has {counts[rare]} training row (a stratified split needs {MIN_CARVE_PER_CLASS})"
    if n_val < len(counts) or len(rows) - n_val < len(counts):
        return f"{share:g} of {len(rows)} rows cannot hold one row of each of the {len(counts)} classes"
    train, val = train_test_split(list(range(len(rows))), test_size=n_val, random_state=0, stratify=labels)
    return [rows[i] for i in sorted(train)], [rows[i] for i in sorted(val)]


def fingerprint(splits: dict, names: list[str]) -> str:
    """A content hash of the data as the run sees it (texts, pairs, label ids per split, label names)."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(json.dumps(names).encode())
    for split in sorted(splits):
        texts, pairs, ids = splits[split]
        digest.update(json.dumps([split, texts, pairs, ids], ensure_ascii=False).encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


@dataclass
class Loaded:
    """The data the options name, ready for training."""

    splits: dict  # split -> (texts, pairs or None, label ids)
    names: list  # label names in id order
    pair_column: str | None
    fingerprint: str
    notes: list  # things the user should know (labels stripped, delimiter detected, validation carved)
    validation: str = "file"  # where the validation split comes from (metrics.json records it)


def load_splits(data: str, text_column: str = "text", pair_column: str | None = None,
                label_column: str = "label", validation_share: float = 0.15) -> Loaded:
    """Read the data the options name; every problem is a :class:`TrainError` naming the file and line.

    A folder without a validation file gets one carved from its training file
    (:func:`carve_validation`, ``validation_share`` of it); one file is split 70/15/15.
    ``Loaded.validation`` says which.
    """
    if data in course_data.names():
        schema = course_data.SCHEMAS[data]
        if schema.task not in ("sequence", "pair"):
            raise TrainError(f"{data} is a {schema.task} data set; this command trains sequence and sentence-pair "
                             "classifiers (token classification is in lesson 05, instruction tuning in lesson 07)")
        try:
            ds, names = course_data.load(data)
        except course_data.DataError as err:
            raise TrainError(str(err)) from None
        text_col, pair_col = (schema.text_fields + (None,))[:2]
        out = {s: (list(ds[s][text_col]), list(ds[s][pair_col]) if pair_col else None, list(ds[s]["label"])) for s in ds}
        return Loaded(out, list(names), pair_col, fingerprint(out, list(names)), [], "the course data set's validation split")

    wanted = [c for c in (text_column, pair_column, label_column) if c is not None]
    source = Path(data)
    notes, delimiters = [], {}
    if source.is_dir():
        raw = {}
        for split in course_data.SPLITS:
            files = [source / f"{split}{ext}" for ext in (".jsonl", ".csv") if (source / f"{split}{ext}").is_file()]
            if files:
                raw[split], delimiter = read_table(files[0], wanted)
                delimiters[files[0]] = delimiter
                if delimiter not in (None, ","):
                    notes.append(f"{files[0]}: read with the {DELIMITER_NAMES[delimiter]} {delimiter!r} as delimiter")
        if "train" not in raw:
            raise TrainError(f"the folder {source} has no train.jsonl or train.csv; put the training examples there "
                             "(and optionally validation.* and test.*)")
    elif source.exists() or source.suffix:
        rows, delimiter = read_table(source, wanted)
        delimiters[source] = delimiter
        if delimiter not in (None, ","):
            notes.append(f"{source}: read with the {DELIMITER_NAMES[delimiter]} {delimiter!r} as delimiter")
        raw = {"all": rows}
    else:
        raise TrainError(f"--data {data!r} is neither a course data set ({course_data.names()}) "
                         "nor an existing file or folder")

    stripped = []
    labels = {}
    for split, rows in raw.items():
        if not rows:
            raise TrainError(f"{split if split != 'all' else 'the'} data file of {data} has no rows")
        for row in rows:
            missing = [(option, column) for option, column in (("--text-column", text_column),
                                                               ("--pair-column", pair_column),
                                                               ("--label-column", label_column))
                       if column is not None and column not in row.values]
            if missing:
                option, column = missing[0]
                hint, delimiter = "", delimiters.get(row.file)
                if delimiter:
                    hint = (f" (read as CSV with the {DELIMITER_NAMES[delimiter]} {delimiter!r} as delimiter; "
                            "no other of , ; tab | gives a header with the columns the options name)")
                raise TrainError(f"{row.where}: no column {column!r} (its columns: {list(row.values)}){hint}; "
                                 f"name the right one with {option}")
            for column in (text_column, pair_column):
                if column is None:
                    continue
                value = row.values[column]
                if not isinstance(value, str):
                    raise TrainError(f"{row.where}: {column!r} must be text, got {type(value).__name__}")
                if not value.strip():
                    raise TrainError(f"{row.where}: {column!r} is empty; remove the row or fill in the text")
            name, was_stripped = normalise_label(row.values[label_column], row.where, label_column)
            if was_stripped:
                stripped.append(row)
            labels[id(row)] = name
    if stripped:
        notes.append(f"{len(stripped)} label(s) were rewritten by the label rule (surrounding whitespace removed, "
                     f"numbers in one form), e.g. {stripped[0].values[label_column]!r} ({stripped[0].where}); labels "
                     "that differ only in that are one class")
    auto_split = "all" in raw
    if auto_split:
        rows = raw["all"]
        if len(rows) < MIN_SPLIT_ROWS:
            raise TrainError(f"{source} has {len(rows)} rows; the automatic 70/15/15 split needs at least "
                             f"{MIN_SPLIT_ROWS} (or give a folder with train.* and validation.* files)")
        raw = _split_file(rows, [labels[id(r)] for r in rows])
        validation = "15% of the single data file (automatic 70/15/15 split, stratified where possible, seed 0)"
    elif "validation" in raw:
        validation = "the validation file"
    elif validation_share == 0:
        validation = "none (--validation-share 0)"
    else:
        carved = carve_validation(raw["train"], [labels[id(r)] for r in raw["train"]], validation_share)
        if isinstance(carved, str):
            validation = f"none: {carved}"
            notes.append(f"no validation file and no validation split: {carved}; the last epoch's model is kept")
        else:
            raw["train"], raw["validation"] = carved
            validation = (f"{validation_share:g} of the training file ({len(carved[1])} rows), carved out stratified by "
                          "label with seed 0 (no validation file was given)")
            notes.append(f"no validation file: {len(carved[1])} of the training rows ({validation_share:g}, stratified "
                         "by label) are held out as the validation split; the epoch with the best validation macro-F1 "
                         "is kept (--validation-share sets the share, 0 turns it off)")

    train_labels = {labels[id(r)] for r in raw["train"]}
    if len(train_labels) < 2:
        raise TrainError(f"the label column {label_column!r} has a single class ({next(iter(train_labels))!r}) in "
                         "the training data; a classifier needs examples of at least two classes")
    numeric = all(_is_number(v) for v in train_labels)
    names = sorted(train_labels, key=(lambda v: (float(v), v)) if numeric else str)
    index = {name: i for i, name in enumerate(names)}
    out = {}
    for split, rows in raw.items():
        ids = []
        for row in rows:
            label = labels[id(row)]
            if label not in index:
                raise TrainError(f"{row.where}: label {label!r} does not occur in the training data"
                                 + (f" (the automatic 70/15/15 split put this row in the {split} set: give every class at "
                                    "least 4 rows)" if auto_split else "")
                                 + f" (its labels: {names}); fix the label or add training examples of it")
            ids.append(index[label])
        texts = [row.values[text_column] for row in rows]
        pairs = [row.values[pair_column] for row in rows] if pair_column else None
        out[split] = (texts, pairs, ids)
    return Loaded(out, names, pair_column, fingerprint(out, names), notes, validation)


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _dataset(texts, pairs, labels):
    from datasets import Dataset

    columns = {"text": texts, "label": labels}
    if pairs is not None:
        columns["pair"] = pairs
    return Dataset.from_dict(columns)


# --------------------------------------------------------------------------- checkpoints


def _at_best_epoch_end(state: dict) -> bool:
    """Whether a checkpoint of this state is taken at the end of the best epoch (its weights are the best ones)."""
    best = state.get("best")
    return bool(best) and best["epoch"] == state["epoch"] - 1 and state["step_in_epoch"] == 0


def save_checkpoint(folder: Path, model, optimizer, scheduler, state: dict, scaler=None, best=None) -> Path:
    """Write a checkpoint atomically and point ``folder/latest`` at it.

    The checkpoint (trainable weights as safetensors, optimizer and schedule state,
    random state, progress, and ``checksums.json`` with the size and a fast hash of
    each file) is written to a temporary folder, renamed into place, and only then
    does ``latest`` (replaced with ``os.replace``) name it; older checkpoints are
    removed last. A crash at any point leaves ``latest`` naming a complete checkpoint.
    ``best`` (trainable weights of the best epoch so far) is saved beside them as ``best.safetensors``.
    """
    import torch
    from safetensors.torch import save_file

    from .models import file_digest

    folder.mkdir(parents=True, exist_ok=True)
    name = f"step-{state['step']:06d}"
    tmp = folder / f".tmp-{name}"
    _remove_checkpoint(tmp)
    tmp.mkdir()
    trainable = {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad}
    save_file(trainable, str(tmp / "trainable.safetensors"))
    files = CHECKPOINT_FILES
    if best is not None and not _at_best_epoch_end(state):  # there, the trainable weights are the best ones
        save_file({n: w.contiguous() for n, w in best.items()}, str(tmp / BEST_FILE))
        files += (BEST_FILE,)
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
    sums = {f: {"size": (tmp / f).stat().st_size, "digest": file_digest(tmp / f)} for f in files}
    (tmp / CHECKSUMS).write_text(json.dumps(sums, indent=1))
    final = folder / name
    _remove_checkpoint(final)
    os.replace(tmp, final)
    pointer = folder / f".{LATEST}.tmp"
    pointer.write_text(name)
    os.replace(pointer, folder / LATEST)
    remove_checkpoints(folder, keep=name)
    return final


def _remove_checkpoint(path: Path) -> None:
    """Delete the files a checkpoint folder holds, then the folder; a file the command did not write stays."""
    if not path.is_dir() or path.is_symlink():
        if path.exists() or path.is_symlink():
            raise TrainError(f"{path} is in the way of a checkpoint and was not written by this command; move it away")
        return
    for name in (*CHECKPOINT_FILES, BEST_FILE, CHECKSUMS):
        if (path / name).is_file() and not (path / name).is_symlink():
            (path / name).unlink()
    try:
        path.rmdir()
    except OSError:
        raise TrainError(f"{path} holds files this command did not write ({_listing(sorted(os.listdir(path)))}); "
                         "they were left as they are: move them away and run the command again") from None


def remove_checkpoints(folder: Path, keep: str | None = None) -> None:
    """Remove the command's checkpoints in ``folder`` except ``keep``; without ``keep`` also the pointer and the folder.

    Only what the command writes goes: its ``step-N`` (and unfinished ``.tmp-step-N``)
    folders' files and the ``latest`` pointer. Anything else, and a folder holding it, stays.
    """
    if not folder.is_dir() or folder.is_symlink():
        return
    for old in sorted(folder.iterdir()):
        if old.is_dir() and not old.is_symlink() and old.name != keep and _CHECKPOINT_NAME.match(old.name):
            try:
                _remove_checkpoint(old)
            except TrainError as err:
                print(f"note: {err}", file=sys.stderr)
    if keep is None:
        for name in (LATEST, f".{LATEST}.tmp"):
            if (folder / name).is_file() and not (folder / name).is_symlink():
                (folder / name).unlink()
        try:
            folder.rmdir()
        except OSError:
            print(f"note: {folder} holds files this command did not write; they were left as they are", file=sys.stderr)


def latest_checkpoint(folder: Path) -> Path:
    """The checkpoint ``folder/latest`` names, checked to be complete and undamaged (checksums)."""
    from .models import file_digest

    pointer = folder / LATEST
    if not pointer.is_file():
        raise TrainError(f"no checkpoint in {folder}: {LATEST} is missing; start the run without --resume")
    name = pointer.read_text(errors="replace").strip()
    fix = "it cannot be resumed: start the run again with --overwrite (the same options, without --resume)"
    if not re.fullmatch(r"step-\d+", name):
        raise TrainError(f"the checkpoint pointer {pointer} is damaged (it names {name[:40]!r}); {fix}")
    path = folder / name
    missing = [f for f in (*CHECKPOINT_FILES, CHECKSUMS) if not (path / f).is_file()]
    if missing:
        raise TrainError(f"the checkpoint {path} is incomplete (missing {missing}); {fix}")
    try:
        sums = json.loads((path / CHECKSUMS).read_text())
        expected = {f: (sums[f]["size"], sums[f]["digest"]) for f in (*CHECKPOINT_FILES, *({BEST_FILE} & set(sums)))}
    except (ValueError, KeyError, TypeError):
        raise TrainError(f"the checkpoint {path} is damaged ({CHECKSUMS} is unreadable); {fix}") from None
    for f, (size, digest) in expected.items():
        if not (path / f).is_file():
            raise TrainError(f"the checkpoint {path} is incomplete (missing {f}); {fix}")
        actual = (path / f).stat().st_size
        if actual != size:
            raise TrainError(f"the checkpoint {path} is damaged: {f} has {actual} bytes, {CHECKSUMS} says {size}; {fix}")
        if file_digest(path / f) != digest:
            raise TrainError(f"the checkpoint {path} is damaged: {f} does not match its checksum; {fix}")
    return path


def load_checkpoint(path: Path, model, optimizer, scheduler, scaler=None, best: dict | None = None) -> dict:
    """Restore what :func:`save_checkpoint` wrote; returns its progress state (``best["weights"]``: the best epoch's)."""
    import torch
    from safetensors.torch import load_file

    try:
        weights = load_file(str(path / "trainable.safetensors"))
        saved = torch.load(path / "training_state.pt", map_location="cpu", weights_only=True)
        state = json.loads((path / "state.json").read_text())
        if best is not None and (path / BEST_FILE).is_file():
            best["weights"] = load_file(str(path / BEST_FILE))
        elif best is not None and _at_best_epoch_end(state):
            best["weights"] = {n: w.clone() for n, w in weights.items()}  # saved at the end of the best epoch
    except Exception as err:  # safetensors, pickle and JSON errors of a file damaged before its checksum was taken
        raise TrainError(f"the checkpoint {path} cannot be read ({type(err).__name__}: {str(err)[:120]}); "
                         "start the run again with --overwrite") from None
    own = {n for n, p in model.named_parameters() if p.requires_grad}
    if set(weights) != own:
        raise TrainError(f"the checkpoint {path} holds other trainable parameters than this model "
                         f"({len(weights)} vs {len(own)} tensors); resume with the options the run started with")
    try:
        model.load_state_dict(weights, strict=False)
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
    except (RuntimeError, ValueError, KeyError) as err:  # shapes that differ, e.g. another number of classes
        raise TrainError(f"the checkpoint {path} does not fit this model ({str(err)[:160]}); resume with the data and "
                         "options the run started with, or start anew with --overwrite") from None
    torch.set_rng_state(saved["rng_cpu"])
    if saved["rng_cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(saved["rng_cuda"])
    if scaler is not None and saved["scaler"] is not None:
        scaler.load_state_dict(saved["scaler"])
    return state


def check_resumable(path: Path, options: dict, processes: int, data_fingerprint: str, names: list) -> None:
    """Refuse a resume with other options, other data or other labels than the checkpoint's."""
    try:
        saved = json.loads((path / "state.json").read_text())
        saved_options = saved["options"]
    except (ValueError, KeyError, TypeError, OSError):
        raise TrainError(f"the checkpoint {path} is damaged (state.json is unreadable); start again with --overwrite") from None
    # --data may name the same data at another place (a moved folder): its content is compared below instead
    changed = {k: (saved_options.get(k), v) for k, v in options.items() if k != "data" and saved_options.get(k) != v}
    if saved.get("processes") != processes:
        changed["processes"] = (saved.get("processes"), processes)
    if changed:
        listing = ", ".join(f"{k}: checkpoint {a!r}, now {b!r}" for k, (a, b) in changed.items())
        raise TrainError(f"the checkpoint in {path.parent} was made with other options ({listing}); "
                         "resume with the same options, or start anew with --overwrite")
    if saved.get("labels") != names:
        raise TrainError(f"the checkpoint in {path.parent} was trained with the labels {saved.get('labels')}, the data now has "
                         f"{names}; a resumed run must see the same data. Restore the data the run started with, or "
                         "start anew with --overwrite")
    if saved.get("data_fingerprint") != data_fingerprint:
        raise TrainError(f"the data changed since the checkpoint in {path.parent} was written (content fingerprint "
                         f"{saved.get('data_fingerprint')}, now {data_fingerprint}): resuming would mix two data sets. "
                         "Restore the data the run started with, or start anew with --overwrite")


# --------------------------------------------------------------------------- training


def choose_precision(requested: str, device_type: str, parameters: int) -> tuple[str, str]:
    """The precision to train in (``"no"``, ``"bf16"`` or ``"fp16"``) and why.

    Mixed precision on CUDA only. ``auto`` keeps fp32 (with TF32 matrix products) for a
    model under ``MIXED_PRECISION_FROM`` parameters: for a small encoder in small batches,
    autocast's casts cost more than half precision saves, so bf16 is slower than fp32
    there (``bench/gpu_check.sh`` prints the ratios); larger models, where half precision's
    cheaper matrix products dominate, take bf16 where the GPU supports it, else fp16.
    """
    if device_type != "cuda":
        if requested in ("bf16", "fp16"):
            raise TrainError(f"--precision {requested} needs a CUDA GPU; on {device_type} use --precision no (or auto)")
        return "no", f"fp32 on {device_type}"
    if requested != "auto":
        return requested, f"--precision {requested}"
    if parameters < MIXED_PRECISION_FROM:
        return "no", (f"auto: fp32 with TF32 matrix products, as the model has {parameters / 1e6:.1f}M parameters "
                      f"(mixed precision is used from {MIXED_PRECISION_FROM // 10**6}M)")
    import torch

    half = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return half, f"auto: {half} mixed precision for a model of {parameters / 1e6:.0f}M parameters"


def non_finite_message(err, lr: float, weight_decay: float, precision: str) -> str:
    """The command's message for :class:`training.NonFiniteLoss`: where, and the likely cause."""
    hint = (f"Likely cause: the learning rate is too high (--lr {lr}: try it 10 times smaller) or the weight decay "
            f"too large (--weight-decay {weight_decay}: 0.01 is usual)")
    if precision == "fp16":
        hint += "; or fp16 overflow: try --precision bf16 or no"
    return f"{err}, so the run was stopped and no model was written. {hint}."


class Phases:
    """Wall seconds per phase of a run (``with phases("name"):``), for metrics.json and ``bench/command_phases.py``."""

    def __init__(self):
        self.seconds = {}

    @contextlib.contextmanager
    def __call__(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


def _trainable(model) -> dict:
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def run(args) -> int:
    """Train as the options say; returns the exit status. Bad input raises :class:`TrainError`."""
    phases = Phases()
    with phases("imports"):
        import datasets
        import torch
        import transformers
        from accelerate import Accelerator
        from torch.utils.data import DataLoader

        from . import diagnostics, env, freezing, heads, models, training
    if args.quiet:
        datasets.disable_progress_bars()
        transformers.utils.logging.disable_progress_bar()

    # Everything is checked before anything is written: options, output folder, data, model.
    with phases("checks and data"):
        check_options(args)
        if args.lr is None:
            args.lr = DEFAULT_LR[args.strategy]
        plan = plan_output(args.output, args.data, args.overwrite, args.resume)
        loaded = load_splits(args.data, args.text_column, args.pair_column, args.label_column, args.validation_share)
        splits, label_names, pair_col = loaded.splits, loaded.names, loaded.pair_column
        check_model(args.model, args.max_length, args.strategy, args.k)

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    use_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    if args.device == "cuda" and not torch.cuda.is_available():
        raise TrainError("--device cuda: no CUDA GPU is visible; use --device cpu (or auto)")

    with phases("model"):
        try:
            tokenizer = models.load_encoder_tokenizer(args.model)
            env.seed_everything(args.seed)
            model = heads.classifier(label_names, task="pair" if pair_col else "sequence", name_or_path=args.model,
                                     seed=args.seed)
        except (models.ModelPackageMissingError, models.UnknownModelError) as err:
            raise TrainError(str(err)) from None
        except (OSError, ValueError) as err:
            raise TrainError(f"--model {args.model}: cannot be loaded ({type(err).__name__}: {str(err)[:200]})") from None
        precision, precision_reason = choose_precision(args.precision, "cuda" if use_cuda else "cpu",
                                                       sum(p.numel() for p in model.parameters()))
        if use_cuda and precision == "no":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        accelerator = Accelerator(cpu=not use_cuda, mixed_precision=precision)
        lora = {"r": args.lora_r} if args.strategy == "lora" else {}
        try:
            model = freezing.apply_strategy(model, args.strategy, k=args.k, **lora)
        except (ValueError, TypeError) as err:
            raise TrainError(f"--strategy {args.strategy}: {err}") from None
        n_trainable = freezing.trainable_summary(model)
    main = accelerator.is_main_process
    device = accelerator.device
    if main:
        notes = loaded.notes + ([f"{len(plan.foreign)} file(s) in {args.output} were not written by this command "
                                 f"({_listing(plan.foreign)}); they are left as they are"] if plan.foreign else [])
        if use_cuda:
            notes.append(f"precision: {precision_reason}")
        for note in notes:
            print(f"note: {note}", file=sys.stderr)

    with phases("tokenization"):
        tokenized = {
            s: training.tokenize(_dataset(*v), tokenizer, pair_field="pair" if pair_col else None,
                                 max_length=args.max_length)
            for s, v in splits.items()
        }
        train_ds = tokenized["train"].select_columns([c for c in tokenized["train"].column_names
                                                      if c in training.MODEL_INPUTS])
        # Batches of similar length, as in the lessons; the order of each epoch depends only on the seed and the
        # epoch (a resumed run draws the same batches), and each process takes its share.
        sampler = training.GroupedSampler([len(ids) for ids in train_ds["input_ids"]], args.batch_size, seed=args.seed,
                                          num_replicas=accelerator.num_processes, rank=accelerator.process_index)
        # The loader gets its own generator: iterating it must not draw from the global random state,
        # which the checkpoints save and restore for dropout.
        batches = DataLoader(train_ds, batch_size=args.batch_size, sampler=sampler,
                             collate_fn=training.collator(tokenizer), generator=torch.Generator().manual_seed(args.seed))
    total_steps = args.epochs * len(batches)
    optimizer, scheduler = training.optimizer_and_schedule(model, args.lr, args.weight_decay, args.warmup_ratio,
                                                           total_steps, device)
    weights = (diagnostics.balanced_class_weights(splits["train"][2], len(label_names))
               if args.class_weights == "balanced" else None)
    model, optimizer = accelerator.prepare(model, optimizer)
    inner = accelerator.unwrap_model(model)

    options = {k: getattr(args, k) for k in RESUME_KEYS}
    state = {**training.new_state(), "options": options, "processes": accelerator.num_processes,
             "data_fingerprint": loaded.fingerprint, "labels": label_names, "best": None}
    best = {"weights": None}  # the trainable weights of the best epoch so far (main process)
    ckpt_dir = plan.work / CHECKPOINT_DIR
    if args.resume:
        path = latest_checkpoint(ckpt_dir)
        check_resumable(path, options, accelerator.num_processes, loaded.fingerprint, label_names)
        state = load_checkpoint(path, inner, optimizer, scheduler, accelerator.scaler, best)
        if main:
            print(f"resuming from {path.name}: epoch {state['epoch']}, step {state['step']} of {total_steps}")

    def checkpoint(state, model=None):
        with phases("checkpoints"):
            accelerator.wait_for_everyone()
            if main:
                save_checkpoint(ckpt_dir, inner, optimizer, scheduler, state, accelerator.scaler, best["weights"])
            accelerator.wait_for_everyone()

    def on_step(state, model):
        at_stop = args.stop_after is not None and state["step"] >= args.stop_after
        if at_stop or (args.save_every and state["step"] % args.save_every == 0 and state["step_in_epoch"] < len(batches)):
            checkpoint(state)
        return at_stop

    def evaluate_epoch(model):
        if "validation" not in tokenized or not main:
            return {}
        with phases("validation"):
            return {f"val_{k}": v
                    for k, v in training.evaluate(inner, tokenized["validation"], tokenizer, device=device).items()}

    def on_epoch(state, model):
        scores = state["history"].get("val_macro_f1")
        if main and scores and (state["best"] is None or scores[-1] > state["best"]["val_macro_f1"]):
            state["best"] = {"epoch": state["epoch"] - 1, "val_macro_f1": scores[-1]}
            if state["epoch"] - 1 < args.epochs and args.keep_epoch == "best":  # the last epoch's model is at hand
                best["weights"] = _trainable(inner)
        if state["epoch"] <= args.epochs or args.keep_checkpoints:  # after the last epoch the run writes its model
            checkpoint(state)

    class_loss = training.classification_loss(weights)

    def loss_fn(model, batch):
        with accelerator.autocast():
            return class_loss(model, batch)

    # From here on the run writes; a failure removes what this run wrote (never anything else).
    try:
        accelerator.wait_for_everyone()  # every process has checked the output folder before the main one writes
        if main:
            prepare_output(plan)
        accelerator.wait_for_everyone()
        try:
            training.loop(model, batches, optimizer, scheduler, loss_fn, epochs=args.epochs,
                          max_grad_norm=args.max_grad_norm, device=device, state=state, accelerator=accelerator,
                          evaluate_epoch=evaluate_epoch, on_step=on_step, on_epoch=on_epoch,
                          progress=main and not args.quiet)
        except training.NonFiniteLoss as err:
            raise NonFiniteError(non_finite_message(err, args.lr, args.weight_decay, precision)) from None
        if state.get("stopped"):
            code = STOPPED_EXIT_CODE
            if main:
                if plan.replace:  # the interrupted new run takes the old one's place, so that --resume finds it
                    finish_output(plan)
                    _write_mark(plan.output, finished=False)
                print(f"stopped after step {state['step']} (--stop-after); continue with the same command plus --resume",
                      file=sys.stderr)
        else:
            code = 0
            if main:
                kept = args.epochs
                if args.keep_epoch == "best" and state["best"] is not None:
                    kept = state["best"]["epoch"]
                    if kept != args.epochs:
                        inner.load_state_dict({n: w.to(device) for n, w in best["weights"].items()}, strict=False)
                metrics = {"options": {**options, "keep_epoch": args.keep_epoch}, "processes": accelerator.num_processes,
                           "device": str(device), "precision": precision, "precision_reason": precision_reason,
                           "examples": {s: len(v[2]) for s, v in splits.items()},
                           "validation_split": loaded.validation, "epoch_kept": kept,
                           "epoch_kept_by": ("best validation macro-F1" if args.keep_epoch == "best" and state["best"]
                                             else "last epoch (--keep-epoch last)" if args.keep_epoch == "last"
                                             else "last epoch (no validation split)"),
                           "labels": label_names, "data_fingerprint": state["data_fingerprint"],
                           "parameters": n_trainable, "train_seconds": state["seconds"]}
                write_outputs(plan, inner, tokenizer, tokenized, metrics, state["history"],
                              title=f"{args.data}: {args.strategy}, {accelerator.num_processes} process(es)",
                              keep_checkpoints=args.keep_checkpoints, device=device, phases=phases)
    except BaseException as err:
        if main and (isinstance(err, NonFiniteError) or plan.replace):
            discard_output(plan)
        raise
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return code


def write_outputs(plan: OutputPlan, model, tokenizer, tokenized: dict, metrics: dict, history: dict, title: str,
                  keep_checkpoints: bool, device, phases: Phases) -> None:
    """Write the finished run (model, labels, metrics with test scores, curve), then mark and swap it in."""
    from . import training
    from .evaluation import scores

    work = plan.work
    with phases("saving"):
        final = model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
        final.save_pretrained(work / "model", safe_serialization=True)
        tokenizer.save_pretrained(work / "model")
        (work / "labels.json").write_text(json.dumps(metrics["labels"], indent=1))
    kept = metrics["epoch_kept"]
    metrics.update(history=history, test=None,
                   validation={k[4:]: v[kept - 1] for k, v in history.items() if k.startswith("val_")} or None)
    if "test" in tokenized:
        with phases("test"):
            logits = training.predict(final, tokenized["test"], tokenizer, device=device)
            metrics["test"] = scores(tokenized["test"]["labels"], logits.argmax(-1))
    with phases("plot"):
        _plot(history, work / "curve.png", title=title, kept=kept)
    if not keep_checkpoints:
        remove_checkpoints(work / CHECKPOINT_DIR)
    metrics["phase_seconds"] = {"training": metrics["train_seconds"], **phases.seconds}
    (work / "metrics.json").write_text(json.dumps(metrics, indent=1))
    finish_output(plan)
    summary = metrics["test"] or metrics["validation"] or {}
    which = "test" if metrics["test"] else "validation"
    print(f"done in {metrics['train_seconds']:.0f} s on {metrics['processes']} process(es); kept the model of epoch "
          f"{kept} of {len(history['epoch'])} ({metrics['epoch_kept_by']}); {which} "
          + ", ".join(f"{k} {v:.3f}" for k, v in summary.items()) + f"; written to {plan.output}")


def _plot(history, path: Path, title: str, kept: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .evaluation import plot_history

    fig, ax = plt.subplots(figsize=(6, 3.2))
    plot_history(history, ax=ax, title=title)
    ax.axvline(history["epoch_step"][kept - 1], color="0.5", linestyle=":", label=f"model kept (epoch {kept})")
    ax.legend(loc="upper right", fontsize=8)
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
