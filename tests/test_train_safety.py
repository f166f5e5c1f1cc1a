"""The training command under hostile input: it never deletes what it did not write, stops on a
non-finite loss, resumes only what can be resumed, and answers bad options with `error:` lines.

Runs are in-process (train.main) on 24 tiny rows, 1 epoch, 16 tokens: a few seconds each.
"""

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import pytest

from finetune_utils import train

TINY = ["--epochs", "1", "--max-length", "16", "--batch-size", "8", "--quiet"]


def rows(n=24, labels=("neg", "pos")):
    return [{"text": f"message number {i} sounds {'great' if i % 2 else 'awful'}", "label": labels[i % len(labels)]}
            for i in range(n)]


def write_jsonl(path, items):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in items))
    return path


def make_data(folder):
    items = rows()
    write_jsonl(folder / "train.jsonl", items[:16])
    write_jsonl(folder / "validation.jsonl", items[16:])
    (folder / "notes.txt").write_text("my notes about the data")
    return folder


def fake_run(folder):
    """A folder laid out as a finished run of the command (mark listing its files)."""
    (folder / "model").mkdir(parents=True)
    files = {"model/config.json": "{}", "labels.json": '["neg", "pos"]', "metrics.json": "{}"}
    for rel, text in files.items():
        (folder / rel).write_text(text)
    train.write_mark(folder, {rel: len(text) for rel, text in files.items()}, finished=True)
    return folder


def tree(root: Path) -> dict:
    """Every file, folder and link under root, with the content hash of files (links not followed)."""
    out = {}
    for base, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(base) / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                out[rel] = "link -> " + os.readlink(path)
            elif path.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def cli(args, capsys):
    code = train.main([str(a) for a in args])
    return code, capsys.readouterr().err


@pytest.fixture
def ws(tmp_path, monkeypatch):
    """A user's workspace: data, a previous run, a foreign folder, a run with a user file added, links."""
    make_data(tmp_path / "data")
    fake_run(tmp_path / "prev")
    (tmp_path / "foreign" / "sub").mkdir(parents=True)
    (tmp_path / "foreign" / "notes.txt").write_text("mine")
    (tmp_path / "foreign" / "sub" / "draft.txt").write_text("mine too")
    fake_run(tmp_path / "mixed")
    (tmp_path / "mixed" / "my-notes.txt").write_text("added by the user")
    (tmp_path / "link_data").symlink_to(tmp_path / "data")
    (tmp_path / "link_prev").symlink_to(tmp_path / "prev")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "todo.txt").write_text("mine")
    monkeypatch.chdir(tmp_path / "elsewhere")
    return tmp_path


# --output -> (refusal without --overwrite, refusal with --overwrite); None: the run replaces a previous run
COMBOS = {
    "data": ("is the data;", "is the data;"),
    ".": ("is the current folder;", "is the current folder;"),  # cwd: elsewhere/, which holds a user file
    "PARENT": ("contains the data", "contains the data"),  # the workspace, a parent of the data
    "link_data": ("(a link to", "(a link to"),
    "prev": ("holds a previous run of this command; nothing was changed. Pass --overwrite", None),
    "link_prev": ("holds a previous run of this command", None),
    "foreign": ("holds files this command did not write (notes.txt, sub/)", "--overwrite would not delete it"),
    "mixed": ("holds files this command did not write (my-notes.txt)", "holds files this command did not write"),
}


@pytest.mark.parametrize("overwrite", [False, True], ids=["plain", "overwrite"])
@pytest.mark.parametrize("target", list(COMBOS))
def test_no_file_the_command_did_not_write_is_touched(ws, target, overwrite, capsys):
    output = {"PARENT": ws, ".": "."}.get(target, ws / target)
    before = tree(ws)
    code, err = cli(["--data", ws / "data", "--output", output, *TINY] + (["--overwrite"] if overwrite else []), capsys)
    expected = COMBOS[target][overwrite]
    after = tree(ws)
    if expected is not None:
        assert code == 2 and err.startswith("error: ") and expected in err, err
        assert after == before  # nothing at all changed
        return
    # a previous run (directly or through a link) is replaced by the new run, and nothing else changes
    assert code == 0, err
    untouched = {k: v for k, v in before.items() if not k.startswith("prev/") and k != "prev"}
    assert {k: v for k, v in after.items() if not k.startswith("prev/") and k != "prev"} == untouched
    assert (ws / "link_prev").is_symlink() and (ws / "prev").is_dir() and not (ws / "prev").is_symlink()
    assert json.loads((ws / "prev" / "labels.json").read_text()) == ["neg", "pos"]
    assert (ws / "prev" / "model" / "model.safetensors").is_file()
    assert train.read_mark(ws / "prev")["finished"] and train.foreign_files(ws / "prev") == []
    assert not list(ws.glob(".prev.*"))  # no staging or replaced folder left behind


def test_home_folder_is_refused(tmp_path, monkeypatch, capsys):
    make_data(tmp_path / "d")
    home = tmp_path / "home"
    (home / "Documents").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    before = tree(tmp_path)
    for output, message in ((home, "is your home folder;"), ("~", "is your home folder;"),
                            (tmp_path / "x" / ".." / "home", "is your home folder;")):
        code, err = cli(["--data", tmp_path / "d", "--output", output, "--overwrite", *TINY], capsys)
        assert code == 2 and message in err, err
    assert tree(tmp_path) == before


def test_output_that_cannot_be_created(ws, capsys):
    (ws / "afile.txt").write_text("mine")
    code, err = cli(["--data", ws / "data", "--output", ws / "afile.txt" / "run", *TINY], capsys)
    assert code == 2 and "cannot be created:" in err and "afile.txt is a file, not a folder" in err
    code, err = cli(["--data", ws / "data", "--output", ws / "afile.txt", *TINY], capsys)
    assert code == 2 and "is a file, not a folder" in err
    assert (ws / "afile.txt").read_text() == "mine"


@pytest.mark.parametrize("bad, message", [
    (["--strategy", "lora", "--lora-r", "0"], "--lora-r must be >= 1 (got 0)"),
    (["--strategy", "last_k", "--k", "100"], "--k 100 is more than the model's 6 layers"),
    (["--max-length", "600"], "--max-length 600 is more than the model's 512 positions"),
    (["--lr", "inf"], "--lr must be a finite number > 0 and <= 1 (got inf)"),
    (["--lr", "nan"], "--lr must be a finite number > 0 and <= 1 (got nan)"),
    (["--weight-decay", "nan"], "--weight-decay must be a finite number in [0, 1] (got nan)"),
    (["--weight-decay", "-0.1"], "--weight-decay must be a finite number in [0, 1] (got -0.1)"),
    (["--warmup-ratio", "nan"], "--warmup-ratio must be in [0, 1) (got nan)"),
    (["--seed", "-1"], "--seed must be between 0 and 2**32 - 1 (got -1)"),
    (["--epochs", "0"], "--epochs must be between 1 and 1000 (got 0)"),
    (["--batch-size", "0"], "--batch-size must be >= 1 (got 0)"),
    (["--report_to", "nonsense"], "--report_to nonsense: nonsense is not supported"),
    (["--gradient_accumulation_steps", "0"], "--gradient_accumulation_steps must be between 1 and 10000 (got 0)"),
], ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_bad_options_leave_the_previous_run_intact(ws, bad, message, capsys):
    """Checked before anything is deleted: the previous run survives a bad option with --overwrite."""
    before = tree(ws)
    code, err = cli(["--data", ws / "data", "--output", ws / "prev", "--overwrite", *TINY, *bad], capsys)
    assert code == 2 and err.startswith("error: ") and message in err, err
    assert tree(ws) == before


def test_report_to_an_integration_that_is_not_installed(ws, capsys):
    pytest.importorskip("transformers.integrations")
    try:
        import tensorboard  # noqa: F401
        pytest.skip("tensorboard is installed here")
    except ImportError:
        pass
    before = tree(ws)
    code, err = cli(["--data", ws / "data", "--output", ws / "prev", "--overwrite", *TINY, "--report-to", "tensorboard"],
                    capsys)
    assert code == 2 and err.startswith("error: --report-to tensorboard: ") and "tensorboard" in err[30:], err
    assert tree(ws) == before


def test_model_folder_with_an_empty_config(ws, capsys):
    (ws / "model").mkdir()
    (ws / "model" / "config.json").write_text("")
    code, err = cli(["--data", ws / "data", "--output", ws / "out", "--model", ws / "model", *TINY], capsys)
    assert code == 2 and "its config.json cannot be read as a model configuration" in err, err
    (ws / "model" / "config.json").write_text("{}")
    code, err = cli(["--data", ws / "data", "--output", ws / "out", "--model", ws / "model", *TINY], capsys)
    assert code == 2 and "its config.json cannot be read as a model configuration" in err, err
    assert not (ws / "out").exists()


# --------------------------------------------------------------------------- non-finite training


def _nan_on_call(monkeypatch, n=2):
    """Make the n-th training loss NaN (as a diverging run would)."""
    import torch
    import torch.nn.functional as F

    real, calls = F.cross_entropy, []

    def fake(*args, **kwargs):
        calls.append(1)
        loss = real(*args, **kwargs)
        return loss * torch.tensor(float("nan")) if len(calls) == n else loss

    monkeypatch.setattr(F, "cross_entropy", fake)


def test_nan_loss_stops_with_no_model(ws, monkeypatch, capsys):
    _nan_on_call(monkeypatch)
    code, err = cli(["--data", ws / "data", "--output", ws / "out", *TINY], capsys)
    assert code == 2
    assert "error: step 2 (epoch 1): the training loss is nan, so the run was stopped and no model was written" in err
    assert f"the learning rate is too high (--lr {train.DEFAULT_LR['full']}:" in err and "--weight-decay 0.01" in err
    assert not (ws / "out").exists()  # the folder this run created is removed again


def test_nan_loss_with_overwrite_keeps_the_previous_run(ws, monkeypatch, capsys):
    _nan_on_call(monkeypatch)
    before = tree(ws)
    code, err = cli(["--data", ws / "data", "--output", ws / "prev", "--overwrite", *TINY], capsys)
    assert code == 2 and "the training loss is nan" in err
    assert tree(ws) == before and not list(ws.glob(".prev.*"))


def test_infinite_gradient_stops(ws, monkeypatch, capsys):
    import torch
    from accelerate import Accelerator

    monkeypatch.setattr(Accelerator, "clip_grad_norm_", lambda self, *a, **k: torch.tensor(float("inf")))
    code, err = cli(["--data", ws / "data", "--output", ws / "out", *TINY], capsys)
    assert code == 2 and "step 1 (epoch 1): the gradient norm is inf" in err
    assert not (ws / "out").exists()


# --------------------------------------------------------------------------- resume


@pytest.fixture(scope="module")
def stopped(tmp_path_factory):
    """A run stopped after step 1 (of 2), resumable."""
    base = tmp_path_factory.mktemp("stopped")
    make_data(base / "data")
    code = train.main(["--data", str(base / "data"), "--output", str(base / "run"), *TINY, "--stop-after", "1"])
    assert code == train.STOPPED_EXIT_CODE
    return base


@pytest.fixture
def resumable(stopped, tmp_path):
    shutil.copytree(stopped, tmp_path / "copy", symlinks=True)
    return tmp_path / "copy"


def _resume(base, capsys):
    return cli(["--data", base / "data", "--output", base / "run", *TINY, "--resume"], capsys)


def test_resume_refuses_changed_data(resumable, capsys):
    items = rows()
    for item in items:  # the same file, the labels swapped
        item["label"] = {"neg": "pos", "pos": "neg"}[item["label"]]
    write_jsonl(resumable / "data" / "train.jsonl", items[:16])
    code, err = _resume(resumable, capsys)
    assert code == 2 and "the data changed since the checkpoint" in err and "resuming would mix two data sets" in err
    assert "start anew with --overwrite" in err


def test_resume_of_a_checkpoint_from_an_earlier_version_says_so(resumable, capsys):
    """A checkpoint written before an option existed (here --min_train_steps) cannot say what it was."""
    ckpt = resumable / "run" / "checkpoints" / "checkpoint-1"
    state = json.loads((ckpt / train.STATE_FILE).read_text())
    del state["options"]["min_train_steps"]
    train.seal_checkpoint(ckpt, state)   # sealed as that earlier version sealed it: the checksums hold
    code, err = _resume(resumable, capsys)
    assert code == 2 and "earlier version of this command" in err and re.search(r"min.train.steps", err), err
    assert "--overwrite" in err


def test_resume_refuses_an_added_class(resumable, capsys):
    items = rows(labels=("neg", "pos", "meh"))
    write_jsonl(resumable / "data" / "train.jsonl", items[:16])
    write_jsonl(resumable / "data" / "validation.jsonl", items[16:])
    code, err = _resume(resumable, capsys)
    assert code == 2 and "was trained with the labels ['neg', 'pos'], the data now has ['meh', 'neg', 'pos']" in err


@pytest.mark.parametrize("damage, message", [
    ("flip", "model.safetensors does not match its checksum"),
    ("truncate", "model.safetensors has"),
    ("pointer", "the checkpoint pointer"),
    ("checksums", "checksums.json is unreadable"),
])
def test_resume_refuses_a_damaged_checkpoint(resumable, damage, message, capsys):
    ckpt = resumable / "run" / "checkpoints"
    weights = ckpt / "checkpoint-1" / "model.safetensors"
    if damage == "flip":  # one byte inside a tensor, size unchanged
        raw = bytearray(weights.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        weights.write_bytes(bytes(raw))
    elif damage == "truncate":
        weights.write_bytes(weights.read_bytes()[:100])
    elif damage == "pointer":
        (ckpt / "latest").write_text("../../elsewhere")
    else:
        (ckpt / "checkpoint-1" / "checksums.json").write_text("{")
    code, err = _resume(resumable, capsys)
    assert code == 2 and message in err and "is damaged" in err and "--overwrite" in err, err


def test_resume_of_the_same_data_finishes(resumable, capsys):
    code, err = _resume(resumable, capsys)
    assert code == 0, err
    run = resumable / "run"
    assert (run / "metrics.json").is_file() and not (run / "checkpoints").exists()
    assert train.foreign_files(run) == []


def test_stopped_run_is_refused_without_resume(resumable, capsys):
    code, err = cli(["--data", resumable / "data", "--output", resumable / "run", *TINY], capsys)
    assert code == 2 and "holds an interrupted run of this command" in err and "--resume to continue it" in err


def test_half_written_run_can_be_replaced(ws, capsys):
    """A run that crashed while writing its outputs (mark not finished) is still the command's own."""
    half = ws / "half"
    (half / "model").mkdir(parents=True)
    train.write_mark(half)  # written first, never completed
    (half / "model" / "model.safetensors").write_bytes(b"partial")
    (half / "labels.json").write_text("[]")
    assert train.foreign_files(half) == []
    args = train.build_parser().parse_args(["--data", str(ws / "data"), "--output", str(half), "--overwrite"])
    plan = train.plan_output(args.output_dir, args.data, args.overwrite_output_dir, args.resume)
    assert plan.replace and plan.work == half.parent / ".half.incoming"
    (half / "model" / "sub").mkdir()  # but not what the command never writes
    assert train.foreign_files(half) == ["model/sub/"]
    train.write_mark(half, {"labels.json": 2}, finished=True)  # once finished, only listed files are its own
    (half / "model" / "sub").rmdir()
    assert train.foreign_files(half) == ["model/"]


def test_the_swap_and_the_staging_cleanup_check_again_right_before_deleting(tmp_path):
    """Between the checks at the start and the deletions at the end, the folders may change: each
    deletion checks again that it removes only what the command wrote."""
    output, staging = tmp_path / "run", tmp_path / ".run.incoming"
    output.mkdir()
    (output / "notes.txt").write_text("mine")  # the previous run's mark was removed while training
    staging.mkdir()
    train.write_mark(staging)
    plan = train.OutputPlan(output, staging, replace=True)
    with pytest.raises(train.TrainError, match="was removed, so it was not replaced"):
        train.finish_output(plan)
    assert (output / "notes.txt").read_text() == "mine" and staging.is_dir()

    leftover = tmp_path / ".other.incoming"
    leftover.mkdir()
    (leftover / "notes.txt").write_text("mine")  # appeared after plan_output checked the staging folder
    with pytest.raises(train.TrainError, match="holds files it did not write"):
        train.prepare_output(train.OutputPlan(tmp_path / "other", leftover, replace=True))
    assert (leftover / "notes.txt").read_text() == "mine"


def test_resume_and_cleanup_leave_foreign_files_under_checkpoints(resumable, capsys):
    """At the end of a run the command removes only its own checkpoint files: a user's files stay, with their folders."""
    ckpt = resumable / "run" / "checkpoints"
    step = next(p for p in ckpt.iterdir() if p.name.startswith("checkpoint-"))
    (ckpt / "my-notes.txt").write_text("mine")
    (ckpt / "mine").mkdir()
    (ckpt / "mine" / "draft.txt").write_text("mine too")
    (step / "comment.txt").write_text("inside the command's checkpoint folder")
    before = {rel: h for rel, h in tree(resumable / "run").items() if "mine" in rel or "notes" in rel or "comment" in rel}
    code, err = _resume(resumable, capsys)
    assert code == 0, err
    assert "note: 3 file(s) in" in err and "were not written by this command" in err
    after = tree(resumable / "run")
    assert all(after.get(rel) == h for rel, h in before.items())  # every user file is still there, unchanged
    assert not (step / "model.safetensors").exists() and not (ckpt / "latest").exists()  # ours are gone
    assert (resumable / "run" / "metrics.json").is_file()
    mark = train.read_mark(resumable / "run")
    assert mark["finished"] and not any("mine" in f or "notes" in f or "comment" in f for f in mark["files"])
    # the run now holds user files: --overwrite refuses it, naming them
    code, err = cli(["--data", resumable / "data", "--output", resumable / "run", *TINY, "--overwrite"], capsys)
    assert code == 2 and "holds files this command did not write" in err and "checkpoints/my-notes.txt" in err


def test_remove_checkpoints_removes_only_the_commands_files(tmp_path):
    ckpt = tmp_path / "checkpoints"
    for name in ("checkpoint-1", "checkpoint-2", "checkpoint-3"):
        (ckpt / name).mkdir(parents=True)
        for f in ("model.safetensors", "optimizer.pt", "scheduler.pt", "rng_state.pth", "trainer_state.json",
                  train.STATE_FILE, train.CHECKSUMS):
            (ckpt / name / f).write_text("x")
    (ckpt / "latest").write_text("checkpoint-3")
    (ckpt / "checkpoint-1" / "user.txt").write_text("mine")
    (ckpt / "checkpoint-9-notes").mkdir()
    train.remove_checkpoints(ckpt, keep="checkpoint-3")
    assert sorted(p.name for p in ckpt.iterdir()) == ["checkpoint-1", "checkpoint-3", "checkpoint-9-notes", "latest"]
    assert [p.name for p in (ckpt / "checkpoint-1").iterdir()] == ["user.txt"]
    train.remove_checkpoints(ckpt)
    assert sorted(p.relative_to(ckpt).as_posix() for p in ckpt.rglob("*")) == ["checkpoint-1", "checkpoint-1/user.txt",
                                                                                "checkpoint-9-notes"]


# --------------------------------------------------------------------------- Ctrl-C and the final swap (issue 32)

def _ctrl_c_at_step(monkeypatch, step):
    """Make the run's second optimizer step raise KeyboardInterrupt, as Ctrl-C would."""
    import transformers

    real = transformers.Trainer.training_step
    calls = {"n": 0}

    def training_step(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == step:
            raise KeyboardInterrupt
        return real(self, *a, **k)

    monkeypatch.setattr(transformers.Trainer, "training_step", training_step)


def test_ctrl_c_during_overwrite_keeps_the_checkpoint_and_resume_finds_it(tmp_path, monkeypatch, capsys):
    data = make_data(tmp_path / "data")
    out = fake_run(tmp_path / "run")
    _ctrl_c_at_step(monkeypatch, 2)
    code, err = cli(["--data", data, "--output", out, *TINY, "--save-every", "1", "--overwrite"], capsys)
    assert code == 130 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("interrupted: the new run, at its last checkpoint, took")
    assert "--resume instead of --overwrite" in err
    monkeypatch.undo()
    code, err = cli(["--data", data, "--output", out, *TINY, "--save-every", "1", "--resume"], capsys)
    assert code == 0, err
    assert json.loads((out / "metrics.json").read_text())["epoch_kept"] == 1
    assert not (tmp_path / ".run.lock").exists()


def test_ctrl_c_before_any_checkpoint_leaves_the_previous_run(tmp_path, monkeypatch, capsys):
    data = make_data(tmp_path / "data")
    out = fake_run(tmp_path / "run")
    before = tree(tmp_path)
    _ctrl_c_at_step(monkeypatch, 1)
    code, err = cli(["--data", data, "--output", out, *TINY, "--overwrite"], capsys)
    assert code == 130 and "Traceback" not in err
    assert "had no checkpoint yet and was discarded" in err and "unchanged" in err
    assert tree(tmp_path) == before


def test_a_folder_in_the_way_of_the_swap_is_refused_before_training(tmp_path, capsys):
    data = make_data(tmp_path / "data")
    out = fake_run(tmp_path / "run")
    (tmp_path / ".run.replaced").mkdir()
    (tmp_path / ".run.replaced" / "mine.txt").write_text("a user's file")
    before = tree(tmp_path)
    code, err = cli(["--data", data, "--output", out, *TINY, "--overwrite"], capsys)
    assert code == 2 and ".run.replaced is in the way" in err
    assert tree(tmp_path) == before
