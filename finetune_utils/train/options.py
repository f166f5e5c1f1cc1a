"""The options, named as ``TrainingArguments`` names them (each also answers to its earlier name), and their checks."""

from __future__ import annotations

import argparse
import contextlib
import inspect
import math
import os
from pathlib import Path

from .. import freezing, training

DEFAULT_LR = training.DEFAULT_LR  # the learning rate of each strategy when --learning_rate is not given


def _default(function, name):
    """The default of ``function``'s argument ``name``: the command's defaults are the library's, defined once."""
    return inspect.signature(function).parameters[name].default


_TRAIN = {name: _default(training.train, name) for name in training.TRAINER_SETTINGS if name != "lr"}

#: Models below this many parameters train in fp32 (TF32) under ``--precision auto`` on CUDA (a rule of thumb:
#: bf16 was measured slower for the 22.7M-parameter encoder; ``bench/gpu_check.sh`` prints the ratios).
MIXED_PRECISION_FROM = 300_000_000
#: Epochs when ``--num_train_epochs`` is not given: DEFAULT_EPOCHS, or more (at most MAX_AUTO_EPOCHS) so that a small
#: training set still gets DEFAULT_MIN_STEPS optimizer steps (few-sample fine-tuning needs more steps, not a larger
#: rate: Mosbach et al. 2021, Zhang et al. 2021; the README's sweep measures it on the course's sets).
DEFAULT_EPOCHS, MAX_AUTO_EPOCHS, DEFAULT_MIN_STEPS = 3, 10, 150
STOPPED_EXIT_CODE = 3
LABEL_RULE = (
    "Labels: every label becomes text. Surrounding whitespace is removed; a label that is a number (in a "
    "CSV cell or a JSON value) is written in one canonical form, so 1, 1.0, '1' and '1.0' are one class "
    "('1') and 2.50 is '2.5'; true/false become 'true'/'false'. Empty and missing labels (JSON null or NaN, "
    "or text such as NaN, NA, n/a, null, None, #N/A, -) are refused with their file and line."
)


class TrainError(Exception):
    """Bad input to the training command; the message says what is wrong and what to do."""


class NonFiniteError(TrainError):
    """The training loss or gradient became NaN or infinite."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m finetune_utils.train",
        description="Fine-tune the packaged encoder (all-MiniLM-L6-v2) as a text classifier on a course data set or "
        "your own JSONL/CSV data with transformers.Trainer; write the model, labels, metrics and a training curve to "
        "--output_dir. Options follow transformers' examples (run_classification.py); each also answers to the "
        "dashed name after it.",
        epilog="Several processes: accelerate launch [--multi_gpu] --num_processes N -m finetune_utils.train ... (or "
        "torchrun); batch sizes are per process. Exit status: 0 done, 2 bad input or a non-finite loss, 3 stopped by "
        "--stop_after.")
    d = p.add_argument_group("data arguments")
    d.add_argument("--data", required=True, help="a course data set (support_sentiment, legal_topics, support_answers), "
                   "a folder with train.jsonl|csv and optionally validation.* and test.*, or one .jsonl/.csv file "
                   "(then split 70/15/15, stratified, seed 0)")
    d.add_argument("--text_column", "--text-column", default="text", help="column holding the text (default: text)")
    d.add_argument("--pair_column", "--pair-column", help="second text column for sentence-pair tasks (default: none)")
    d.add_argument("--label_column", "--label-column", default="label", help="column holding the label (default: "
                   "label). " + LABEL_RULE)
    d.add_argument("--validation_share", "--validation-share", type=float, default=0.15, help="share of the training "
                   "file carved out, stratified, as validation split when there is no validation.* file (default: "
                   "0.15; 0: none)")
    d.add_argument("--max_seq_length", "--max-length", type=int, default=128,
                   help="tokens per text; longer texts are truncated (default: 128)")
    m = p.add_argument_group("model arguments")
    m.add_argument("--model_name_or_path", "--model", help="encoder folder or hub name (hub names need internet; "
                   "default: the packaged all-MiniLM-L6-v2)")
    m.add_argument("--strategy", default="full", choices=("full", "head_only", "last_k", "lora"), help="what trains: "
                   "everything, the new head, the last k layers + head, or LoRA adapters + head (default: full)")
    m.add_argument("--k", type=int, default=_default(freezing.apply_strategy, "k"),
                   help="layers to train with --strategy last_k (default: %(default)s)")
    m.add_argument("--lora_r", "--lora-r", type=int, default=_default(freezing.apply_lora, "r"),
                   help="LoRA rank with --strategy lora (default: %(default)s)")
    t = p.add_argument_group("training arguments (as in transformers.TrainingArguments)")
    t.add_argument("--output_dir", "--output", required=True, help="folder for the model, labels, metrics and curve")
    t.add_argument("--overwrite_output_dir", "--overwrite", action="store_true", help="replace a previous run of this "
                   "command (only a folder holding its mark and no other files), swapped in when the new one is done")
    t.add_argument("--num_train_epochs", "--epochs", type=int, help=f"passes over the training set (default: "
                   f"{DEFAULT_EPOCHS}, more on a small training set: see --min_train_steps)")
    t.add_argument("--min_train_steps", "--min-train-steps", type=int, default=DEFAULT_MIN_STEPS,
                   help=f"without --num_train_epochs: train at least this many optimizer steps, raising the epochs above "
                   f"{DEFAULT_EPOCHS} (at most {MAX_AUTO_EPOCHS}) when the training set is small (default: {DEFAULT_MIN_STEPS}; "
                   "0: always {DEFAULT_EPOCHS} epochs)".replace("{DEFAULT_EPOCHS}", str(DEFAULT_EPOCHS)))
    t.add_argument("--learning_rate", "--lr", type=float, help="peak learning rate of AdamW (default: per strategy: "
                   + ", ".join(f"{k} {v:g}" for k, v in DEFAULT_LR.items()) + "; see the README's sweep)")
    t.add_argument("--per_device_train_batch_size", "--batch-size", type=int, default=_TRAIN["batch_size"],
                   help="examples per batch per process (default: %(default)s)")
    t.add_argument("--per_device_eval_batch_size", "--eval-batch-size", type=int, default=64,
                   help="examples per batch for validation and test (default: 64)")
    t.add_argument("--gradient_accumulation_steps", "--gradient-accumulation-steps", type=int, default=1,
                   help="batches whose gradients are summed into one optimizer step (default: 1)")
    t.add_argument("--warmup_ratio", "--warmup-ratio", type=float, default=_TRAIN["warmup_ratio"],
                   help="share of steps for linear warm-up (default: %(default)s)")
    t.add_argument("--weight_decay", "--weight-decay", type=float, default=_TRAIN["weight_decay"],
                   help="AdamW weight decay (default: %(default)s)")
    t.add_argument("--max_grad_norm", "--max-grad-norm", type=float, default=_TRAIN["max_grad_norm"],
                   help="clip the gradient norm to this before each step (default: %(default)s)")
    t.add_argument("--class_weights", "--class-weights", default="none", choices=("none", "balanced"),
                   help="balanced: weigh each class's loss by n / (classes x n_class) (default: none)")
    t.add_argument("--seed", type=int, default=_TRAIN["seed"], help="seed for the head's initial values, shuffling "
                   "and dropout (default: %(default)s)")
    t.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="auto: CUDA when available")
    t.add_argument("--use_cpu", "--use-cpu", dest="device", action="store_const", const="cpu", help="--device cpu")
    t.add_argument("--precision", default="auto", choices=("auto", "no", "bf16", "fp16"), help="mixed precision on "
                   f"CUDA; auto: fp32 with TF32 for models under {MIXED_PRECISION_FROM // 10**6}M parameters (faster "
                   "there), else bf16 (or fp16); always fp32 on CPU (default: auto)")
    t.add_argument("--bf16", dest="precision", action="store_const", const="bf16", help="--precision bf16")
    t.add_argument("--fp16", dest="precision", action="store_const", const="fp16", help="--precision fp16")
    t.add_argument("--keep_epoch", "--keep-epoch", default="best", choices=("best", "last"), help="the epoch whose "
                   "model is written: best validation macro-F1, or the last (default: best; the last without validation)")
    t.add_argument("--report_to", "--report-to", default="none",
                   help="integrations that get the logs: none, all, tensorboard, wandb, ... comma-separated (default: none)")
    t.add_argument("--logging_steps", "--logging-steps", type=int, default=1,
                   help="log the training loss every N optimizer steps (default: 1)")
    t.add_argument("--save_steps", "--save-every", type=int, default=0,
                   help="checkpoint every N optimizer steps instead of each epoch's end (default: 0, each epoch)")
    t.add_argument("--resume", action="store_true", help="continue an interrupted run from its last checkpoint")
    t.add_argument("--keep_checkpoints", "--keep-checkpoints", action="store_true",
                   help="keep checkpoints/ after a finished run")
    t.add_argument("--stop_after", "--stop-after", type=int, metavar="STEPS", help="checkpoint and stop after this "
                   "many optimizer steps, as if interrupted (exit status 3), to try out --resume")
    t.add_argument("--disable_tqdm", "--quiet", action="store_true", help="no progress bar")
    return p


def spelling(argv=(), parser=None) -> dict:
    """Each option's name as typed in ``argv``, else its earlier, short name (the one error messages use)."""
    typed = {a.split("=", 1)[0] for a in argv if a.startswith("--")}
    names = {}
    for action in (parser or build_parser())._actions:
        if action.option_strings:
            given = [s for s in action.option_strings if s in typed]
            names.setdefault(action.dest, given[0] if given else action.option_strings[-1])
    return names


def parse_args(argv=None):
    """The options, with ``args.spelling`` (:func:`spelling`)."""
    import sys

    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args.spelling = spelling(argv, parser)
    typed = {a.split("=", 1)[0] for a in argv if a.startswith("--")}
    args.given = {a.dest for a in parser._actions if typed & set(a.option_strings)}
    for dest in ("data", "output_dir", "model_name_or_path"):  # "~" works in every path option, quoted or not
        value = getattr(args, dest)
        if isinstance(value, str) and value.startswith("~"):
            setattr(args, dest, os.path.expanduser(value))
    return args


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def check_options(args) -> None:
    """Reject impossible option values before anything is loaded (every problem at once)."""
    n = getattr(args, "spelling", None) or spelling()
    problems = []

    def need(ok, dest, what, hint=""):
        if not ok:
            problems.append(f"{n[dest]} {what} (got {getattr(args, dest)})" + (f"; {hint}" if hint else ""))

    need(args.num_train_epochs is None or 1 <= args.num_train_epochs <= 1000, "num_train_epochs",
         "must be between 1 and 1000")
    need(0 <= args.min_train_steps <= 1_000_000, "min_train_steps", "must be between 0 and 1000000")
    if args.learning_rate is not None:
        need(_finite(args.learning_rate) and 0 < args.learning_rate <= 1, "learning_rate",
             "must be a finite number > 0 and <= 1", "fine-tuning uses about 1e-5 to 1e-3")
    need(args.per_device_train_batch_size >= 1, "per_device_train_batch_size", "must be >= 1")
    need(args.per_device_eval_batch_size >= 1, "per_device_eval_batch_size", "must be >= 1")
    need(1 <= args.gradient_accumulation_steps <= 10_000, "gradient_accumulation_steps", "must be between 1 and 10000")
    need(args.max_seq_length >= 8, "max_seq_length", "must be >= 8 tokens")
    need(_finite(args.warmup_ratio) and 0 <= args.warmup_ratio < 1, "warmup_ratio", "must be in [0, 1)")
    need(_finite(args.weight_decay) and 0 <= args.weight_decay <= 1, "weight_decay", "must be a finite number in [0, 1]",
         "usual values are 0 to 0.1")
    need(_finite(args.max_grad_norm) and args.max_grad_norm > 0, "max_grad_norm", "must be a finite number > 0", f"{training.MAX_GRAD_NORM:g} is usual")
    need(_finite(args.validation_share) and 0 <= args.validation_share <= 0.5, "validation_share",
         "must be between 0 and 0.5", "0.1 to 0.2 is usual")
    need(0 <= args.seed < 2**32, "seed", "must be between 0 and 2**32 - 1")
    need(args.k >= 0, "k", "must be >= 0 layers")
    need(args.lora_r >= 1, "lora_r", "must be >= 1", "the LoRA rank is the width of the adapters, e.g. 4, 8 or 16")
    need(args.save_steps >= 0, "save_steps", "must be >= 0")
    need(args.logging_steps >= 1, "logging_steps", "must be >= 1")
    need(args.stop_after is None or args.stop_after >= 1, "stop_after", "must be >= 1")
    given = getattr(args, "given", set())
    if "min_train_steps" in given and args.num_train_epochs is not None:
        problems.append(f"{n['min_train_steps']} applies only when {n['num_train_epochs']} is not given (the epochs are "
                        f"then chosen from it); give one of the two")
    for dest, strategy in (("k", "last_k"), ("lora_r", "lora")):
        if dest in given and args.strategy != strategy:
            problems.append(f"{n[dest]} applies only to --strategy {strategy} (the run trains --strategy {args.strategy}); "
                            f"add --strategy {strategy} or leave {n[dest]} out")
    roles = [(c, d) for c, d in ((args.text_column, "text_column"), (args.pair_column, "pair_column"),
                                (args.label_column, "label_column")) if c is not None]
    for column in {c for c, _ in roles if [c2 for c2, _ in roles].count(c) > 1}:
        problems.append(f"the column {column!r} is given two roles ({' and '.join(n[d] for c, d in roles if c == column)}); "
                        "each option names its own column")
    if args.overwrite_output_dir and args.resume:
        problems.append(f"{n['overwrite_output_dir']} and {n['resume']} contradict each other: {n['resume']} continues "
                        f"the run in {n['output_dir']}, {n['overwrite_output_dir']} replaces it")
    if problems:
        raise TrainError("; ".join(problems))


def resolve_epochs(args, n_train: int, processes: int) -> str:
    """Set ``args.num_train_epochs`` when it was not given (see DEFAULT_MIN_STEPS); returns how it was chosen."""
    if args.num_train_epochs is not None:
        return "given"
    per_step = args.per_device_train_batch_size * processes * args.gradient_accumulation_steps
    steps_per_epoch = max(1, math.ceil(n_train / per_step))
    wanted = math.ceil(args.min_train_steps / steps_per_epoch)
    args.num_train_epochs = min(max(DEFAULT_EPOCHS, wanted), MAX_AUTO_EPOCHS)
    if args.num_train_epochs == DEFAULT_EPOCHS:
        return f"{DEFAULT_EPOCHS} epochs (the default; enough steps)"
    return (f"{args.num_train_epochs} epochs instead of {DEFAULT_EPOCHS}: {n_train} training examples make {steps_per_epoch} "
            f"optimizer steps per epoch, and at least {args.min_train_steps} steps are wanted (--min_train_steps"
            + (f"; capped at {MAX_AUTO_EPOCHS} epochs" if wanted > MAX_AUTO_EPOCHS else "") + ")")


def check_report_to(value: str, name: str = "--report_to") -> list[str]:
    """The integrations ``--report_to`` names, each known to transformers and installed (checked before any write)."""
    from transformers.integrations import get_reporting_integration_callbacks

    names = [v.strip() for v in value.split(",") if v.strip()] or ["none"]
    try:
        for callback in get_reporting_integration_callbacks(names[0] if names in (["none"], ["all"]) else names):
            callback()  # an integration that is not installed refuses here
    except (ValueError, RuntimeError, ImportError) as err:
        raise TrainError(f"{name} {value}: {err}") from None
    return names


def check_model(model: str | None, max_length: int, strategy: str, k: int, names: dict | None = None,
                lora_r: int = 0) -> None:
    """Read the encoder's config (no weights) and check --max_seq_length, --k and --lora_r against it."""
    from transformers import AutoConfig

    from .. import models

    n = {"max_seq_length": "--max-length", "model_name_or_path": "--model", **(names or {})}
    if isinstance(model, str) and model.startswith((".", "/", "~")) and not Path(model).expanduser().exists():
        raise TrainError(f"{n['model_name_or_path']} {model}: no such folder ({Path(model).expanduser().resolve()}); "
                         "give the folder that holds the model's config.json, weights and tokenizer files, or leave "
                         "the option out for the packaged model")
    try:
        source, _ = models.resolve(model, models.ENCODER, models.encoder_path)
    except (models.ModelPackageMissingError, models.UnknownModelError) as err:
        raise TrainError(str(err)) from None
    except TypeError as err:
        raise TrainError(f"{n['model_name_or_path']}: {err}") from None
    try:  # a local folder has its own errors, not the hub's
        with contextlib.nullcontext() if isinstance(source, Path) else models.hub_errors(source):
            config = AutoConfig.from_pretrained(str(source))
    except models.UnknownModelError as err:
        raise TrainError(str(err)) from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise TrainError(f"{n['model_name_or_path']} {model}: its config.json cannot be read as a model configuration "
                         f"({type(err).__name__}: {str(err)[:160]}); a model folder needs the config.json, weights and "
                         "tokenizer files that came with the model") from None
    layers, limit = getattr(config, "num_hidden_layers", None), getattr(config, "max_position_embeddings", None)
    hidden = getattr(config, "hidden_size", None)
    problems, opt = [], n["max_seq_length"]
    if isinstance(limit, int) and max_length > limit:
        problems.append(f"{opt} {max_length} is more than the model's {limit} positions; use {opt} {limit} or less "
                        "(longer texts are truncated)")
    if strategy == "last_k" and isinstance(layers, int) and k > layers:
        problems.append(f"--k {k} is more than the model's {layers} layers; use --k between 0 and {layers} "
                        f"(--k {layers} trains every layer but the embeddings, --strategy full trains everything)")
    if strategy == "lora" and isinstance(hidden, int) and lora_r > hidden:
        problems.append(f"{n.get('lora_r', '--lora-r')} {lora_r} is more than the model's hidden size {hidden}: a rank "
                        f"that large adds more parameters than it adapts; use a small rank, e.g. 4, 8 or 16 "
                        f"(at most {hidden})")
    if problems:
        raise TrainError("; ".join(problems))


def choose_precision(requested: str, device_type: str, parameters: int) -> tuple[str, str]:
    """The precision to train in (``"no"``, ``"bf16"`` or ``"fp16"``) and why: mixed precision on CUDA only, and
    under ``auto`` only from ``MIXED_PRECISION_FROM`` parameters (bf16 where the GPU has it, else fp16)."""
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
