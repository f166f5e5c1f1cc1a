"""The training command: options, bad input, outputs, checkpoints, resume, reproducibility, 2 processes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from finetune_utils import data, train

ROOT = Path(__file__).resolve().parent.parent

# Settings small enough for a test (a few seconds per run), large enough to learn something.
SMALL = ["--max-length", "32", "--epochs", "2", "--batch-size", "16", "--quiet"]


def run_cli(*args, env=None, launcher=None):
    cmd = (launcher or [sys.executable, "-m", "finetune_utils.train"]) + [str(a) for a in args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={**os.environ, **(env or {})}, timeout=900)


@pytest.fixture(scope="module")
def small_csv(tmp_path_factory):
    """A 150-row CSV of support messages with the labels as words (a user's file, not a course folder)."""
    ds, names = data.load("support_sentiment")
    path = tmp_path_factory.mktemp("csv") / "reviews.csv"
    rows = ds["train"].select(range(150))
    import csv

    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["message", "mood"])
        for row in rows:
            writer.writerow([row["text"], names[row["label"]]])
    return path


# --------------------------------------------------------------------------- options and bad input


def test_help_documents_every_option():
    out = run_cli("--help")
    assert out.returncode == 0
    parser = train.build_parser()
    for action in parser._actions:
        for flag in action.option_strings:
            assert flag in out.stdout
        if action.option_strings and action.dest != "help":
            assert action.help, f"{action.option_strings} has no help text"


def test_console_script_is_declared():
    text = (ROOT / "pyproject.toml").read_text()
    assert 'finetune-train = "finetune_utils.train:main"' in text


def _error(args, capsys):
    code = train.main([str(a) for a in args])
    return code, capsys.readouterr().err


def test_missing_file(tmp_path, capsys):
    code, err = _error(["--data", tmp_path / "nope.csv", "--output", tmp_path / "out"], capsys)
    assert code == 2 and "nope.csv not found" in err
    assert not (tmp_path / "out").exists()


def test_unknown_data_name(tmp_path, capsys):
    code, err = _error(["--data", "support_sentimnet", "--output", tmp_path / "out"], capsys)
    assert code == 2 and "neither a course data set" in err


def test_missing_column(small_csv, tmp_path, capsys):
    code, err = _error(["--data", small_csv, "--output", tmp_path / "out"], capsys)
    assert code == 2 and "no column 'text'" in err and "['message', 'mood']" in err and "--text-column" in err


def test_single_class_label(tmp_path, capsys):
    path = tmp_path / "one.jsonl"
    path.write_text("".join(json.dumps({"text": f"message {i}", "label": "ok"}) + "\n" for i in range(30)))
    code, err = _error(["--data", path, "--output", tmp_path / "out"], capsys)
    assert code == 2 and "single class ('ok')" in err


def test_empty_text_names_the_row(tmp_path, capsys):
    folder = tmp_path / "set"
    folder.mkdir()
    rows = [{"text": "fine", "label": "a"}, {"text": "  ", "label": "b"}]
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, err = _error(["--data", folder, "--output", tmp_path / "out"], capsys)
    assert code == 2 and f"{folder / 'train.jsonl'}, line 2: 'text' is empty" in err


def test_label_unseen_in_training(tmp_path, capsys):
    folder = tmp_path / "set"
    folder.mkdir()
    (folder / "train.jsonl").write_text('{"text": "x", "label": "a"}\n{"text": "y", "label": "b"}\n')
    (folder / "validation.jsonl").write_text('{"text": "z", "label": "c"}\n')
    code, err = _error(["--data", folder, "--output", tmp_path / "out"], capsys)
    assert code == 2 and f"{folder / 'validation.jsonl'}, line 1: label 'c' does not occur in the training data" in err


def test_token_data_set_is_refused(tmp_path, capsys):
    code, err = _error(["--data", "support_entities", "--output", tmp_path / "out"], capsys)
    assert code == 2 and "token data set" in err


def test_existing_output_is_not_touched(small_csv, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    code, err = _error(["--data", small_csv, "--text-column", "message", "--label-column", "mood", "--output", out], capsys)
    assert code == 2 and "exists and is not empty" in err and "did not write (notes.txt)" in err
    assert "--overwrite would not delete it either" in err
    assert (out / "notes.txt").read_text() == "mine"
    code, err = _error(["--data", small_csv, "--text-column", "message", "--label-column", "mood", "--output", out,
                        "--overwrite"], capsys)
    assert code == 2 and "did not write (notes.txt)" in err
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_resume_without_checkpoint(tmp_path, capsys):
    code, err = _error(["--data", "support_sentiment", "--output", tmp_path / "out", "--resume"], capsys)
    assert code == 2 and "nothing to resume" in err


def test_bad_option_values(tmp_path, capsys):
    code, err = _error(["--data", "support_sentiment", "--output", tmp_path / "o", "--epochs", "0", "--lr", "-1"], capsys)
    assert code == 2 and "--epochs must be between 1 and 1000" in err and "--lr must be a finite number > 0" in err
    code, err = _error(["--data", "support_sentiment", "--output", tmp_path / "o", "--overwrite", "--resume"], capsys)
    assert code == 2 and "contradict" in err


def test_mixed_precision_is_off_on_cpu_and_for_small_models_on_cuda(monkeypatch):
    assert train.choose_precision("auto", "cpu", 22_000_000)[0] == "no"
    with pytest.raises(train.TrainError, match="needs a CUDA GPU"):
        train.choose_precision("bf16", "cpu", 22_000_000)
    # On CUDA, auto keeps fp32 (TF32) below the threshold and says why; an explicit choice is taken as given.
    precision, reason = train.choose_precision("auto", "cuda", 22_700_000)
    assert precision == "no" and "22.7M parameters" in reason and "TF32" in reason
    assert train.choose_precision("fp16", "cuda", 22_700_000)[0] == "fp16"
    monkeypatch.setattr("torch.cuda.is_bf16_supported", lambda: False)
    assert train.choose_precision("auto", "cuda", train.MIXED_PRECISION_FROM)[0] == "fp16"
    monkeypatch.setattr("torch.cuda.is_bf16_supported", lambda: True)
    assert train.choose_precision("auto", "cuda", 10 * train.MIXED_PRECISION_FROM)[0] == "bf16"


# --------------------------------------------------------------------------- a run, its outputs, resume


@pytest.fixture(scope="module")
def finished(small_csv, tmp_path_factory):
    """One uninterrupted run on the user CSV (split 70/15/15 by the command)."""
    out = tmp_path_factory.mktemp("runs") / "a"
    result = run_cli("--data", small_csv, "--text-column", "message", "--label-column", "mood",
                     "--output", out, "--seed", "3", *SMALL)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


def test_outputs_and_reload(finished):
    import numpy as np
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out, result = finished
    assert {p.name for p in out.iterdir()} == {"model", "labels.json", "metrics.json", "curve.png", train.RUN_MARK}
    assert train.foreign_files(out) == []  # the mark lists every file the run wrote
    assert (out / "model" / "model.safetensors").is_file()
    assert not list(out.rglob("*.bin")) and not list(out.rglob("*.pt"))
    labels = json.loads((out / "labels.json").read_text())
    assert labels == ["negative", "neutral", "positive"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["examples"] == {"train": 104, "validation": 23, "test": 23}
    assert metrics["processes"] == 1 and metrics["precision"] == "no"
    assert metrics["epochs"] == 2 and metrics["epochs_chosen_by"] == "given"  # --epochs 2: no --min_train_steps rule
    assert "trained on 104 examples (validated on 23, not trained on)" in result.stdout
    assert metrics["final_model"].startswith("trained on the 104 training examples only; the 23 validation examples")
    assert len(metrics["history"]["val_macro_f1"]) == 2 and len(metrics["history"]["loss"]) == 2 * 7
    assert "done in" in result.stdout
    # the saved model reproduces the reported validation accuracy
    model = AutoModelForSequenceClassification.from_pretrained(out / "model")
    tok = AutoTokenizer.from_pretrained(out / "model")
    assert model.config.id2label == dict(enumerate(labels))
    assert np.isfinite(metrics["test"]["macro_f1"])


def test_same_seed_same_result(finished, small_csv, tmp_path):
    """Reproducibility: the same CPU run twice (one in a fresh process) gives identical losses and scores."""
    out, _ = finished
    again = tmp_path / "b"  # (in this process: no fresh interpreter needed, and it must not matter)
    assert train.main([str(a) for a in ("--data", small_csv, "--text-column", "message", "--label-column", "mood",
                                         "--output", again, "--seed", "3", *SMALL)]) == 0
    first, second = (json.loads((p / "metrics.json").read_text()) for p in (out, again))
    assert first["history"]["loss"] == second["history"]["loss"]
    assert first["test"] == second["test"] and first["validation"] == second["validation"]


def test_interrupted_run_resumes_to_the_same_result(finished, small_csv, tmp_path, capsys):
    out, _ = finished
    resumed = tmp_path / "c"
    common = ["--data", small_csv, "--text-column", "message", "--label-column", "mood",
              "--output", resumed, "--seed", "3", *SMALL]
    # stopped in this process, in the middle of epoch 1 (7 steps per epoch); resumed below in a fresh one,
    # which has only what the checkpoint holds
    assert train.main([str(a) for a in (*common, "--stop-after", "4")]) == train.STOPPED_EXIT_CODE
    assert "--resume" in capsys.readouterr().err
    assert (resumed / "checkpoints" / "latest").read_text() == "checkpoint-4"
    assert not (resumed / "metrics.json").exists()
    # (refusals run in this process: they need no fresh interpreter)
    assert train.main([str(a) for a in common]) == 2  # forgetting --resume does not wipe the interrupted run
    assert "--resume" in capsys.readouterr().err
    assert train.main([str(a) for a in (*common, "--lr", "3e-4", "--resume")]) == 2
    err = capsys.readouterr().err
    assert "other options" in err and "lr: checkpoint" in err
    done = run_cli(*common, "--resume")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resuming from checkpoint-4" in done.stdout
    first, second = (json.loads((p / "metrics.json").read_text()) for p in (out, resumed))
    assert second["history"]["loss"] == pytest.approx(first["history"]["loss"], abs=1e-6)
    assert second["test"] == first["test"] and second["validation"] == first["validation"]
    assert not (resumed / "checkpoints").exists()
    assert train.main([str(a) for a in (*common, "--resume")]) == 2
    assert "has finished" in capsys.readouterr().err


def _trainer_checkpoint(folder, step, weights):
    """A checkpoint folder as transformers.Trainer writes it (the files the command seals)."""
    from safetensors.torch import save_file

    path = folder / f"checkpoint-{step}"
    path.mkdir(parents=True)
    save_file(weights, str(path / "model.safetensors"))
    (path / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    (path / "optimizer.pt").write_bytes(b"optimizer state")
    return path


def test_crash_while_saving_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    import torch
    from safetensors.torch import load_file

    folder = tmp_path / "checkpoints"
    before = {"classifier.weight": torch.ones(2, 4)}
    train.seal_checkpoint(_trainer_checkpoint(folder, 1, before), {"step": 1})
    real_replace = os.replace

    def crash(src, dst):
        if Path(dst).name == "latest":
            raise OSError("simulated crash while saving")
        return real_replace(src, dst)

    monkeypatch.setattr(train.output.os, "replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        train.seal_checkpoint(_trainer_checkpoint(folder, 2, {"classifier.weight": torch.zeros(2, 4)}), {"step": 2})
    monkeypatch.setattr(train.output.os, "replace", real_replace)

    path = train.latest_checkpoint(folder)
    assert path.name == "checkpoint-1"
    assert json.loads((path / train.STATE_FILE).read_text())["step"] == 1
    assert torch.equal(load_file(str(path / "model.safetensors"))["classifier.weight"], before["classifier.weight"])


def test_incomplete_checkpoint_is_reported(tmp_path):
    folder = tmp_path / "checkpoints"
    (folder / "checkpoint-3").mkdir(parents=True)
    (folder / "latest").write_text("checkpoint-3")
    with pytest.raises(train.TrainError, match="incomplete"):
        train.latest_checkpoint(folder)


# --------------------------------------------------------------------------- several processes

#: 2 processes x 8 must be the 1 x 16 run, step for step. training.GroupedSampler gives each process every other
#: text of each global batch of 16, both start from the same weights, and DDP averages the two halves' gradients,
#: which is the gradient of the whole batch. With dropout switched off (a copy of the encoder's folder whose
#: config sets both dropout rates to 0) only the float summation order differs: measured (2026-12-05, 2 cores) the
#: per-step losses of torchrun and accelerate agree with the single process's to 1.2e-7, and the test scores are
#: identical. A sampler that gave a process the wrong texts, or a missing or doubled gradient average, changes the
#: losses in the second decimal. 128 training texts: 8 full global batches per epoch, none padded.
TWO_PROC = ["--max-length", "32", "--epochs", "2", "--seed", "0", "--quiet"]


@pytest.fixture(scope="module")
def no_dropout(tmp_path_factory):
    """A small data folder and the packaged encoder without dropout (its files linked, its config changed)."""
    from finetune_utils import models

    root = tmp_path_factory.mktemp("two_proc")
    ds, names = data.load("support_sentiment")
    folder = root / "data"
    folder.mkdir()
    for split, n in [("train", 128), ("validation", 48), ("test", 96)]:
        rows = ds[split].select(range(n))
        (folder / f"{split}.jsonl").write_text(
            "".join(json.dumps({"text": r["text"], "label": names[r["label"]]}) + "\n" for r in rows))
    source, model = models.encoder_path(), root / "model"
    model.mkdir()
    for path in source.iterdir():
        if path.name != "config.json":
            (model / path.name).symlink_to(path)
    config = json.loads((source / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (model / "config.json").write_text(json.dumps(config))
    return ["--data", folder, "--model", model, *TWO_PROC]


@pytest.fixture(scope="module")
def two_proc_reference(tmp_path_factory, no_dropout):
    out = tmp_path_factory.mktemp("ref") / "one"
    result = run_cli(*no_dropout, "--batch-size", "16", "--output", out)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((out / "metrics.json").read_text())


@pytest.mark.parametrize("launcher", ["torchrun", "accelerate"])
def test_two_processes(launcher, tmp_path, no_dropout, two_proc_reference):
    out = tmp_path / launcher
    bin_dir = Path(sys.executable).parent
    cmd = {
        "torchrun": [str(bin_dir / "torchrun"), "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
                     "--master_port", "29531", "-m", "finetune_utils.train"],
        "accelerate": [str(bin_dir / "accelerate"), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                       "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29532",
                       "-m", "finetune_utils.train"],
    }[launcher]
    result = run_cli(*no_dropout, "--batch-size", "8", "--output", out, launcher=cmd,
                     env={"GLOO_SOCKET_IFNAME": "lo", "MASTER_ADDR": "127.0.0.1", "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-4000:]
    assert result.stdout.count("done in") == 1  # only the main process reports and writes
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["processes"] == 2
    reference = two_proc_reference["history"]["loss"]
    assert len(metrics["history"]["loss"]) == len(reference) == 16  # 2 x 8 per step: the steps of 1 x 16
    assert metrics["history"]["loss"] == pytest.approx(reference, abs=1e-4), "2 x 8 did not train as 1 x 16"
    assert metrics["test"] == pytest.approx(two_proc_reference["test"], abs=0.011), (metrics["test"], two_proc_reference["test"])
    assert {p.name for p in out.iterdir()} == {"model", "labels.json", "metrics.json", "curve.png", train.RUN_MARK}


def test_gradient_accumulation(tmp_path, no_dropout, two_proc_reference):
    """8 per batch x 2 accumulated batches is the 1 x 16 run, step for step (Trainer's accumulation)."""
    out = tmp_path / "accumulated"
    result = run_cli(*no_dropout, "--per_device_train_batch_size", "8", "--gradient_accumulation_steps", "2",
                     "--output_dir", out)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["options"]["gradient_accumulation_steps"] == 2
    reference = two_proc_reference["history"]["loss"]
    assert len(metrics["history"]["loss"]) == len(reference) == 16  # optimizer steps, not batches
    assert metrics["history"]["loss"] == pytest.approx(reference, abs=1e-4), "8 x 2 accumulated did not train as 1 x 16"
    assert metrics["test"] == pytest.approx(two_proc_reference["test"], abs=0.011)


# --------------------------------------------------------------------------- the epoch kept


def test_the_best_validation_epoch_is_kept_also_after_a_resume(tmp_path, monkeypatch):
    """Validation macro-F1 that falls after epoch 1 (set by a stand-in evaluate): the written model is epoch 1's,
    in an uninterrupted run and in one stopped in epoch 2 and resumed (the best weights travel in the checkpoint)."""
    import torch
    from safetensors.torch import load_file

    from finetune_utils import training

    items = [{"text": f"message number {i} sounds {'great' if i % 2 else 'awful'}", "label": ["neg", "pos"][i % 2]}
             for i in range(32)]
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in items[:24]))
    (folder / "validation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in items[24:]))
    seen, scores = [], []

    def evaluate(model, ds, tokenizer, **kwargs):
        seen.append({n: p.detach().clone() for n, p in model.named_parameters()})
        return {"macro_f1": scores.pop(0), "micro_f1": 0.0, "accuracy": 0.0}

    monkeypatch.setattr(training, "evaluate", evaluate)
    tiny = ["--data", folder, "--epochs", "3", "--max-length", "16", "--batch-size", "8", "--quiet"]  # 3 steps/epoch

    def written(out):
        metrics = json.loads((out / "metrics.json").read_text())
        weights = load_file(str(out / "model" / "model.safetensors"))
        return metrics, weights

    scores[:] = [0.9, 0.5, 0.4]
    assert train.main([str(a) for a in (*tiny, "--output", tmp_path / "whole")]) == 0
    metrics, weights = written(tmp_path / "whole")
    assert metrics["epoch_kept"] == 1 and metrics["epoch_kept_by"] == "best validation macro-F1"
    assert metrics["validation"]["macro_f1"] == 0.9 and metrics["history"]["val_macro_f1"] == [0.9, 0.5, 0.4]
    epoch1, last = seen[0], seen[2]
    common = [n for n in weights if n in epoch1]
    assert len(common) > 50
    assert all(torch.equal(weights[n], epoch1[n]) for n in common)
    assert not all(torch.equal(weights[n], last[n]) for n in common)

    seen.clear()
    scores[:] = [0.9]
    out = tmp_path / "resumed"
    assert train.main([str(a) for a in (*tiny, "--output", out, "--stop-after", "4")]) == train.STOPPED_EXIT_CODE
    scores[:] = [0.5, 0.4]
    assert train.main([str(a) for a in (*tiny, "--output", out, "--resume")]) == 0
    metrics, resumed = written(out)
    assert metrics["epoch_kept"] == 1 and all(torch.equal(resumed[n], weights[n]) for n in common)
    assert not (out / train.CHECKPOINT_DIR).exists()

    seen.clear()
    scores[:] = [0.9, 0.5, 0.4]
    assert train.main([str(a) for a in (*tiny, "--output", tmp_path / "last", "--keep-epoch", "last")]) == 0
    metrics, kept_last = written(tmp_path / "last")
    assert metrics["epoch_kept"] == 3 and all(torch.equal(kept_last[n], seen[2][n]) for n in common)


def test_best_weights_are_saved_only_when_they_are_not_the_current_ones(tmp_path):
    import torch

    current = {"classifier.weight": torch.randn(2, 4), "classifier.bias": torch.zeros(2)}
    older = {n: w + 1 for n, w in current.items()}
    # the end of epoch 1, the best so far: its weights are the checkpoint's own, no second copy
    at_best = {"step": 3, "best": {"epoch": 1, "step": 3, "val_macro_f1": 0.8}}
    path = _trainer_checkpoint(tmp_path / "a", 3, current)
    train.seal_checkpoint(path, at_best, best=current)
    assert not (path / train.BEST_FILE).exists()
    assert train.read_best(train.latest_checkpoint(tmp_path / "a")) is None  # the checkpoint's weights are the best
    # later (epoch 2 was worse): the best epoch's weights travel beside the current ones, checksummed
    later = {"step": 6, "best": {"epoch": 1, "step": 3, "val_macro_f1": 0.8}}
    path = _trainer_checkpoint(tmp_path / "b", 6, current)
    train.seal_checkpoint(path, later, best=older)
    assert train.BEST_FILE in json.loads((path / train.CHECKSUMS).read_text())
    restored = train.read_best(train.latest_checkpoint(tmp_path / "b"))
    assert all(torch.equal(restored[n], older[n]) for n in older)
    (path / train.BEST_FILE).write_bytes(b"damaged")
    with pytest.raises(train.TrainError, match="best.safetensors has"):
        train.latest_checkpoint(tmp_path / "b")
