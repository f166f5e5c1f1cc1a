"""The run on ``transformers.Trainer``: everything is checked before anything is written; ``CommandTrainer`` uses
the lessons' loss and evaluation, and the ``Guard`` callback stops on a non-finite loss or gradient, keeps the best
epoch's weights, seals each checkpoint and stops at ``--stop_after``."""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
from pathlib import Path

from .options import DEFAULT_EPOCHS, DEFAULT_LR, STOPPED_EXIT_CODE, NonFiniteError, TrainError, check_model, check_options, \
    check_report_to, choose_precision, parse_args, resolve_epochs, spelling
from .output import CHECKPOINT_DIR, LATEST, OutputLock, OutputPlan, SwapError, check_resumable, discard_output, finish_output, latest_checkpoint, \
    listing, plan_output, prepare_output, read_best, remove_checkpoints, seal_checkpoint, trainable_weights, write_mark
from .userdata import load_splits

#: Options that must match when a run is resumed.
RESUME_KEYS = ("data", "text_column", "pair_column", "label_column", "model_name_or_path", "strategy", "k", "lora_r",
               "num_train_epochs", "learning_rate", "per_device_train_batch_size", "gradient_accumulation_steps",
               "max_seq_length", "seed", "warmup_ratio", "weight_decay", "max_grad_norm", "class_weights",
               "validation_share", "min_train_steps")


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


def non_finite_message(err, args, precision: str) -> str:
    """The command's message for a non-finite loss or gradient: where, and the likely cause."""
    n = args.spelling
    hint = (f"Likely cause: the learning rate is too high ({n['learning_rate']} {args.learning_rate}: try it 10 times "
            f"smaller) or the weight decay too large ({n['weight_decay']} {args.weight_decay}: 0.01 is usual)")
    if precision == "fp16":
        hint += "; or fp16 overflow: try --precision bf16 or no"
    return f"{err}, so the run was stopped and no model was written. {hint}."


def make_trainer_class():
    """:class:`CommandTrainer`, defined on first use (importing transformers takes seconds)."""
    from transformers import Trainer

    from .. import training

    class CommandTrainer(Trainer):
        """Trainer with the lessons' loss and evaluation, stopping before a step on a non-finite loss."""

        def __init__(self, *a, class_weights=None, tokenizer=None, phases=None, **kw):
            super().__init__(*a, **kw)
            self.loss_is_scaled_for_ga = False  # the loss is a batch mean: Trainer divides it by the accumulation
            self.class_loss, self.tok, self.phases = training.classification_loss(class_weights), tokenizer, phases

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss = self.class_loss(model, dict(inputs))
            if model.training:  # every process sees the same value, so all stop together
                seen = self.accelerator.reduce(loss.detach().clone(), "mean") if self.args.world_size > 1 else loss
                if not math.isfinite(seen.item()):
                    raise training.NonFiniteLoss(self.state.global_step + 1, int(self.state.epoch or 0) + 1,
                                                 seen.item(), math.nan)
            return (loss, None) if return_outputs else loss

        def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval"):
            from accelerate.utils import broadcast_object_list

            with self.phases("validation"):
                result = [None]
                if self.is_world_process_zero():
                    result[0] = training.evaluate(self.accelerator.unwrap_model(self.model), self.eval_dataset, self.tok,
                                                  batch_size=self.args.per_device_eval_batch_size, device=self.args.device)
                if self.args.world_size > 1:
                    broadcast_object_list(result)
            metrics = {f"{metric_key_prefix}_{k}": v for k, v in result[0].items()}
            self.log(metrics)
            self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics=metrics)
            return metrics

    return CommandTrainer


def make_guard(args, base_state: dict, best_state, best, phases: Phases, fp16: bool):
    """The callback that keeps the command's guarantees while Trainer trains (see the module's docstring)."""
    from transformers import TrainerCallback

    from .. import training

    class Guard(TrainerCallback):
        def __init__(self):
            self.trainer, self.stopped, self.best_state, self.best = None, False, best_state, best

        def on_train_begin(self, args_, state, control, model=None, **kw):
            # resumed from a checkpoint taken at the best epoch's end: its weights are the best ones
            if self.best_state and self.best is None and self.best_state["step"] == state.global_step > 0:
                self.best = trainable_weights(model)

        def _last_step(self, state, control):
            if not args.keep_checkpoints and state.global_step >= state.max_steps:
                control.should_save = False  # the run writes its model instead

        def on_step_end(self, args_, state, control, **kw):
            if args.stop_after is not None and state.global_step >= args.stop_after:
                self.stopped = control.should_save = control.should_training_stop = True
            else:
                self._last_step(state, control)

        def on_epoch_end(self, args_, state, control, **kw):
            if self.stopped:
                control.should_evaluate = control.should_save = False
            else:
                self._last_step(state, control)

        def on_log(self, args_, state, control, logs=None, **kw):
            norm = (logs or {}).get("grad_norm")
            if norm is not None and not fp16 and not math.isfinite(norm):  # fp16's scaler skips such steps
                raise training.NonFiniteLoss(state.global_step, math.ceil(state.epoch), logs.get("loss", 0.0), norm)

        def on_evaluate(self, args_, state, control, metrics=None, model=None, **kw):
            score = (metrics or {}).get("eval_macro_f1")
            if score is not None and (self.best_state is None or score > self.best_state["val_macro_f1"]):
                self.best_state = {"epoch": round(state.epoch), "step": state.global_step, "val_macro_f1": score}
                if args.keep_epoch == "best" and state.global_step < state.max_steps and state.is_world_process_zero:
                    self.best = trainable_weights(model)

        def on_save(self, args_, state, control, **kw):
            with phases("checkpoints"):
                self.trainer.accelerator.wait_for_everyone()
                if state.is_world_process_zero:
                    seal_checkpoint(Path(args_.output_dir) / f"checkpoint-{state.global_step}",
                                    {**base_state, "step": state.global_step, "best": self.best_state}, self.best)
                self.trainer.accelerator.wait_for_everyone()

    return Guard()


def history_of(log_history: list, epochs: int, max_steps: int) -> dict:
    """Loss per logged step and validation scores per epoch, from Trainer's log."""
    history = {"step": [], "loss": [], "lr": [], "epoch": [],
               "epoch_step": [max_steps * (e + 1) // epochs for e in range(epochs)]}
    for entry in log_history:
        if "loss" in entry:
            for key, name in (("step", "step"), ("loss", "loss"), ("lr", "learning_rate"), ("epoch", "epoch")):
                history[key].append(entry.get(name))
        for key, value in entry.items():
            if key.startswith("eval_"):
                history.setdefault("val_" + key[5:], []).append(value)
    return history


def run(args) -> int:
    """Train as the options say; returns the exit status. Bad input raises :class:`TrainError`."""
    with contextlib.ExitStack() as stack:
        return _run(args, stack)


def _run(args, stack: contextlib.ExitStack) -> int:
    phases = Phases()
    with phases("imports"):
        import datasets
        import torch
        import transformers
        from accelerate import PartialState
        from transformers import TrainingArguments

        from .. import diagnostics, env, freezing, heads, models, training
    if not getattr(args, "spelling", None):
        args.spelling = spelling()
    if args.disable_tqdm:
        datasets.disable_progress_bars()
        transformers.utils.logging.disable_progress_bar()

    # Everything is checked before anything is written: options, output folder, data, model.
    with phases("checks and data"):
        check_options(args)
        if args.learning_rate is None:
            args.learning_rate = DEFAULT_LR[args.strategy]
        target = Path(str(args.output_dir)).expanduser().resolve()
        if os.environ.get("RANK", "0") == "0" and target.parent.is_dir():  # one writer per folder (main process)
            stack.enter_context(OutputLock(target))
        plan = plan_output(args.output_dir, args.data, args.overwrite_output_dir, args.resume)
        loaded = load_splits(args.data, args.text_column, args.pair_column, args.label_column, args.validation_share)
        splits, label_names, pair_col = loaded.splits, loaded.names, loaded.pair_column
        check_model(args.model_name_or_path, args.max_seq_length, args.strategy, args.k, args.spelling, lora_r=args.lora_r)
        report_to = check_report_to(args.report_to, args.spelling["report_to"])

    world = int(os.environ.get("WORLD_SIZE", "1"))
    epochs_by = resolve_epochs(args, len(splits["train"][0]), world)
    if world > 1 and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    use_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    if args.device == "cuda" and not torch.cuda.is_available():
        raise TrainError("--device cuda: no CUDA GPU is visible; use --device cpu (or auto)")

    with phases("model"):
        try:
            tokenizer = models.load_encoder_tokenizer(args.model_name_or_path)
            env.seed_everything(args.seed)
            model = heads.classifier(label_names, task="pair" if pair_col else "sequence",
                                     name_or_path=args.model_name_or_path, seed=args.seed)
        except (models.ModelPackageMissingError, models.UnknownModelError) as err:
            raise TrainError(str(err)) from None
        except (OSError, ValueError) as err:
            raise TrainError(f"{args.spelling['model_name_or_path']} {args.model_name_or_path}: cannot be loaded "
                             f"({type(err).__name__}: {str(err)[:200]})") from None
        precision, precision_reason = choose_precision(args.precision, "cuda" if use_cuda else "cpu",
                                                       models.count_parameters(model))
        if use_cuda and precision == "no":
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        try:
            model = freezing.apply_strategy(model, args.strategy, k=args.k,
                                            **({"r": args.lora_r} if args.strategy == "lora" else {}))
        except (ValueError, TypeError) as err:
            raise TrainError(f"--strategy {args.strategy}: {err}") from None
        n_trainable = freezing.trainable_summary(model)
    if any(r in report_to for r in ("tensorboard", "all")):
        os.environ.setdefault("TENSORBOARD_LOGGING_DIR", str(plan.work / "logs"))  # inside the run, listed as its own
    targs = TrainingArguments(
        output_dir=str(plan.work / CHECKPOINT_DIR), num_train_epochs=args.num_train_epochs,
        learning_rate=args.learning_rate, per_device_train_batch_size=args.per_device_train_batch_size,
        per_device_eval_batch_size=args.per_device_eval_batch_size,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        warmup_steps=args.warmup_ratio,  # a float below 1 is a ratio of the total steps
        weight_decay=args.weight_decay, max_grad_norm=args.max_grad_norm, lr_scheduler_type="linear",
        seed=args.seed, eval_strategy="epoch" if "validation" in splits else "no",
        save_strategy="steps" if args.save_steps else "epoch", save_steps=args.save_steps or 500,
        logging_steps=args.logging_steps, logging_nan_inf_filter=False, disable_tqdm=args.disable_tqdm,
        report_to=report_to, use_cpu=not use_cuda,
        bf16=precision == "bf16", fp16=precision == "fp16", train_sampling_strategy="group_by_length",
        dataloader_num_workers=0)
    main, processes = targs.process_index == 0, targs.world_size
    if main:
        raised = epochs_by != "given" and args.num_train_epochs != DEFAULT_EPOCHS  # --min_train_steps raised them
        notes = loaded.notes + ([f"training {epochs_by}"] if raised else []) + ([f"{len(plan.foreign)} file(s) in {args.output_dir} were not written by this command "
                                 f"({listing(plan.foreign)}); they are left as they are"] if plan.foreign else [])
        for note in notes + ([f"precision: {precision_reason}"] if use_cuda else []):
            print(f"note: {note}", file=sys.stderr)

    with phases("tokenization"):
        tokenized = {s: training.tokenize(datasets.Dataset.from_dict({"text": t, "label": y, **({"pair": p} if p else {})}),
                                          tokenizer, pair_field="pair" if pair_col else None,
                                          max_length=args.max_seq_length) for s, (t, p, y) in splits.items()}
        inputs = {s: ds.select_columns([c for c in ds.column_names if c in training.MODEL_INPUTS])
                  for s, ds in tokenized.items()}

    options = {k: getattr(args, k) for k in RESUME_KEYS}
    base_state = {"options": options, "processes": processes, "data_fingerprint": loaded.fingerprint,
                  "labels": label_names}
    checkpoint, best_state, best = None, None, None
    if args.resume:
        checkpoint = latest_checkpoint(plan.work / CHECKPOINT_DIR)
        best_state = check_resumable(checkpoint, options, processes, loaded.fingerprint, label_names,
                                     args.spelling).get("best")
        best = read_best(checkpoint) if main else None
    # From here on the run writes; a failure removes what this run wrote (never anything else).
    try:
        PartialState().wait_for_everyone()  # every process has checked the output folder before the main one writes
        if main:
            prepare_output(plan)
        PartialState().wait_for_everyone()
        guard = make_guard(args, base_state, best_state, best, phases, precision == "fp16")
        weights = (diagnostics.balanced_class_weights(splits["train"][2], len(label_names))
                   if args.class_weights == "balanced" else None)
        trainer = make_trainer_class()(
            model=model, args=targs, train_dataset=inputs["train"], eval_dataset=inputs.get("validation"),
            data_collator=training.collator(tokenizer), callbacks=[guard], class_weights=weights, tokenizer=tokenizer,
            phases=phases)
        guard.trainer = trainer
        if args.disable_tqdm:
            from transformers import PrinterCallback

            trainer.remove_callback(PrinterCallback)  # without a progress bar, Trainer prints every log line
        else:  # the progress bar, without its printing of every log line
            from transformers import ProgressCallback

            trainer.pop_callback(ProgressCallback)
            trainer.add_callback(type("Progress", (ProgressCallback,), {"on_log": lambda *a, **k: None}))
        if main and checkpoint is not None:
            state = json.loads((checkpoint / "trainer_state.json").read_text())
            print(f"resuming from {checkpoint.name}: epoch {state['epoch']:.2f}, step {state['global_step']} "
                  f"of {state['max_steps']}")

        start = time.perf_counter()
        try:
            trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        except training.NonFiniteLoss as err:
            raise NonFiniteError(non_finite_message(err, args, precision)) from None
        seconds = time.perf_counter() - start - phases.seconds.get("validation", 0) - phases.seconds.get("checkpoints", 0)
        if guard.stopped:
            code = STOPPED_EXIT_CODE
            if main:
                if plan.replace:  # the interrupted new run takes the old one's place, so that --resume finds it
                    finish_output(plan)
                    write_mark(plan.output, finished=False)
                print(f"stopped after step {trainer.state.global_step} (--stop_after); continue with the same command "
                      "plus --resume", file=sys.stderr)
        else:
            code = 0
            if main:
                inner = trainer.accelerator.unwrap_model(trainer.model)
                kept, best_state = args.num_train_epochs, guard.best_state
                if args.keep_epoch == "best" and best_state is not None:
                    kept = best_state["epoch"]
                    if best_state["step"] != trainer.state.global_step:
                        inner.load_state_dict({n: w.to(targs.device) for n, w in guard.best.items()}, strict=False)
                by = ("best validation macro-F1" if args.keep_epoch == "best" and best_state
                      else "last epoch (--keep-epoch last)" if args.keep_epoch == "last" else "last epoch (no validation split)")
                metrics = {"options": {**options, "keep_epoch": args.keep_epoch}, "processes": processes,
                           "device": str(targs.device), "precision": precision, "precision_reason": precision_reason,
                           "examples": {s: len(v[2]) for s, v in splits.items()}, "validation_split": loaded.validation,
                           "final_model": f"trained on the {len(splits['train'][2])} training examples only"
                           + (f"; the {len(splits['validation'][2])} validation examples chose the epoch and were not "
                              "trained on (no refit on all rows)" if "validation" in splits else ""),
                           "epochs": args.num_train_epochs, "epochs_chosen_by": epochs_by,
                           "epoch_kept": kept, "epoch_kept_by": by, "labels": label_names,
                           "data_fingerprint": loaded.fingerprint, "parameters": n_trainable, "train_seconds": seconds}
                history = history_of(trainer.state.log_history, args.num_train_epochs, trainer.state.max_steps)
                write_outputs(plan, inner, tokenizer, tokenized, metrics, history,
                              title=f"{args.data}: {args.strategy}, {processes} process(es)",
                              keep_checkpoints=args.keep_checkpoints, device=targs.device, phases=phases,
                              batch_size=args.per_device_eval_batch_size)
    except BaseException as err:
        args.outcome = "failed"
        if main and isinstance(err, KeyboardInterrupt):
            args.outcome = "checkpoint" if (plan.work / CHECKPOINT_DIR / LATEST).is_file() else "no checkpoint"
            if plan.replace and args.outcome == "checkpoint":  # as after --stop_after: the new run takes the old
                try:                                             # one's place, so that --resume finds it
                    finish_output(plan)
                    write_mark(plan.output, finished=False)
                    args.outcome = "swapped"
                except (OSError, TrainError):
                    discard_output(plan)
                    args.outcome = "discarded"
            elif plan.replace:
                discard_output(plan)
                args.outcome = "discarded"
        elif main and not isinstance(err, SwapError) and (isinstance(err, NonFiniteError) or plan.replace):
            discard_output(plan)
        raise
    trainer.accelerator.wait_for_everyone()
    trainer.accelerator.end_training()
    return code


def write_outputs(plan: OutputPlan, model, tokenizer, tokenized: dict, metrics: dict, history: dict, title: str,
                  keep_checkpoints: bool, device, phases: Phases, batch_size: int = 64) -> None:
    """Write the finished run (model, labels, metrics with test scores, curve), then mark and swap it in."""
    from .. import env, evaluation, training

    work = plan.work
    with phases("saving"):
        final = model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
        final.save_pretrained(work / "model", safe_serialization=True)
        tokenizer.save_pretrained(work / "model")
        (work / "labels.json").write_text(json.dumps(metrics["labels"], indent=1))
        env.make_readable(work / "model")
    kept = metrics["epoch_kept"]
    metrics.update(history=history, test=None,
                   validation={k[4:]: v[kept - 1] for k, v in history.items() if k.startswith("val_")} or None)
    if "test" in tokenized:
        with phases("test"):
            logits = training.predict(final, tokenized["test"], tokenizer, batch_size=batch_size, device=device)
            metrics["test"] = evaluation.scores(tokenized["test"]["labels"], logits.argmax(-1))
    with phases("plot"):
        _plot(history, work / "curve.png", title=title, kept=kept)
    if not keep_checkpoints:
        remove_checkpoints(work / CHECKPOINT_DIR)
    metrics["phase_seconds"] = {"training": metrics["train_seconds"], **phases.seconds}
    metrics["warnings"] = [w for w in (divergence(history.get("loss", []), metrics.get("options", {})),) if w]
    (work / "metrics.json").write_text(json.dumps(metrics, indent=1))
    finish_output(plan)
    for warning in metrics["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    summary = metrics["test"] or metrics["validation"] or {}
    which = "test" if metrics["test"] else "validation"
    ex = metrics["examples"]
    print(f"done in {metrics['train_seconds']:.0f} s on {metrics['processes']} process(es); trained on {ex['train']} "
          "examples" + (f" (validated on {ex['validation']}, not trained on)" if ex.get("validation") else "")
          + f"; kept the model of epoch "
          f"{kept} of {len(history['epoch_step'])} ({metrics['epoch_kept_by']}); {which} "
          + ", ".join(f"{k} {v:.3f}" for k, v in summary.items()) + f"; written to {plan.output}")


def divergence(losses: list, options: dict) -> str | None:
    """A warning when the training loss rose instead of falling: the mean of the last quarter of the logged
    losses is more than 1.5 times the mean of the first quarter (a learning rate far too large, lesson 08)."""
    losses = [x for x in losses if isinstance(x, (int, float)) and math.isfinite(x)]
    if len(losses) < 4:
        return None
    quarter = len(losses) // 4
    first, last = sum(losses[:quarter]) / quarter, sum(losses[-quarter:]) / quarter
    if last <= 1.5 * first:
        return None
    lr = options.get("learning_rate")
    return (f"the training loss diverged: it rose from {first:.3g} (mean of the first quarter of the steps) to "
            f"{last:.3g} (last quarter); the model is unlikely to be useful. Lower --learning_rate"
            + (f" (it was {lr:g}; try 10 times less)" if isinstance(lr, (int, float)) else "") + " and run again")


def _plot(history, path: Path, title: str, kept: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .. import evaluation

    fig, ax = plt.subplots(figsize=(6, 3.2))
    evaluation.plot_history(history, ax=ax, title=title)
    ax.axvline(history["epoch_step"][kept - 1], color="0.5", linestyle=":", label=f"model kept (epoch {kept})")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    args = None
    try:
        args = parse_args(argv)
        return run(args)
    except TrainError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: one line, not a traceback
        outcome = getattr(args, "outcome", None)
        out = getattr(args, "output_dir", "")
        what = {
            "swapped": f"the new run, at its last checkpoint, took the previous run's place in {out}; continue it with "
                       "the same command, --resume instead of --overwrite",
            "checkpoint": f"the run's last checkpoint is kept in {out}; continue with the same command plus --resume",
            "discarded": f"the new run had no checkpoint yet and was discarded; {out} still holds the previous run, "
                         "unchanged",
            "no checkpoint": f"before the first checkpoint; nothing to resume in {out}: start the run again "
                             "(with --overwrite)",
        }.get(outcome, "before training started; nothing was written")
        print(f"interrupted {what}" if outcome in ("no checkpoint", None) else f"interrupted: {what}", file=sys.stderr)
        return 130
