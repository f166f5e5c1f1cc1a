"""Issue 32's rules for the training command, checked before anything is trained or written: no silent choice
between inputs, options checked for their meaning, encodings named by their byte-order mark, Excel's ``sep=``
line, ``~`` in every path option, a missing local model folder; and the warning for a diverging loss."""

import csv
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finetune_utils import data, train
from finetune_utils.train.run import divergence


def write_csv(path, n=20, sep=","):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter=sep)
        w.writerow(["text", "label"])
        w.writerows([(f"message {i}", "ab"[i % 2]) for i in range(n)])
    return path


def snapshot(folder):
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def refused(capsys, tmp_path, *argv):
    """Run the command; it must exit 2 with one error line, and leave every file as it was."""
    before = snapshot(tmp_path)
    assert train.main([*argv]) == 2
    assert snapshot(tmp_path) == before, "a refused run changed or added a file"
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    return err


def test_a_folder_with_two_training_files_is_refused(tmp_path, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    write_csv(folder / "train.csv")
    (folder / "train.jsonl").write_text('{"text": "a", "label": "x"}\n')
    err = refused(capsys, tmp_path, "--data", str(folder), "--output_dir", str(tmp_path / "out"))
    assert "train.jsonl" in err and "train.csv" in err and "keep one" in err


def test_a_local_folder_named_like_a_course_set_is_refused_with_both_choices(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "support_sentiment").mkdir()
    err = refused(capsys, tmp_path, "--data", "support_sentiment", "--output_dir", "out")
    assert "--data ./support_sentiment" in err and "--data course:support_sentiment" in err
    assert "no data set 'nope'" in refused(capsys, tmp_path, "--data", "course:nope", "--output_dir", "out")


@pytest.mark.parametrize("argv, words", [
    (["--k", "3"], "--k applies only to --strategy last_k"),
    (["--lora_r", "4"], "--lora_r applies only to --strategy lora"),
    (["--lora-r", "4", "--strategy", "last_k"], "--lora-r applies only to --strategy lora"),
    (["--label_column", "text"], "the column 'text' is given two roles"),
    (["--pair_column", "label"], "the column 'label' is given two roles"),
    (["--strategy", "lora", "--lora_r", "100000"], "more than the model's hidden size 384"),
    (["--model_name_or_path", "./no_such_model"], "no such folder"),
])
def test_options_are_checked_for_their_meaning(tmp_path, capsys, argv, words):
    path = write_csv(tmp_path / "d.csv")
    assert words in refused(capsys, tmp_path, "--data", str(path), "--output_dir", str(tmp_path / "out"), *argv)


def test_options_that_apply_are_accepted():
    for argv in (["--strategy", "last_k", "--k", "3"], ["--strategy", "lora", "--lora_r", "4"]):
        train.check_options(train.parse_args(["--data", "x", "--output_dir", "o", *argv]))


def test_tilde_is_expanded_in_every_path_option(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    args = train.parse_args(["--data", "~/d.csv", "--output_dir", "~/out", "--model_name_or_path", "~/m"])
    assert (args.data, args.output_dir, args.model_name_or_path) == (
        str(tmp_path / "d.csv"), str(tmp_path / "out"), str(tmp_path / "m"))


@pytest.mark.parametrize("encoding, name", [("utf-16", "UTF-16-"), ("utf-32", "UTF-32-")])
def test_a_utf16_or_utf32_file_is_named_as_such(tmp_path, encoding, name):
    path = tmp_path / "d.csv"
    path.write_bytes("text,label\nhello,a\n".encode(encoding))
    with pytest.raises(data.DataError, match=f"is {name}.. text.*iconv -f {name[:6]} -t UTF-8"):
        data.decode_utf8(path.read_bytes(), path)


def test_a_byte_order_mark_starting_a_later_line_names_that_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"text": "a", "label": "x"}\n\xef\xbb\xbf{"text": "b", "label": "y"}\n')
    with pytest.raises(data.DataError, match="line 2: a UTF-8 byte-order mark"):
        data.read_jsonl(path)
    assert data.decode_utf8("a\ufeffb".encode(), path) == "a\ufeffb"  # inside a text it is a character


def test_excels_sep_line_names_the_delimiter(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_text("sep=;\n" + write_csv(tmp_path / "plain.csv", sep=";").read_text())
    args = train.parse_args(["--data", str(path), "--output_dir", "o"])
    loaded = train.load_splits(args.data, args.text_column, args.pair_column, args.label_column, args.validation_share)
    assert loaded.names == ["a", "b"] and sum(len(s[0]) for s in loaded.splits.values()) == 20
    bad = tmp_path / "bad.csv"
    bad.write_text("sep=;\ntext;label\nx;a;extra\n")
    with pytest.raises(train.TrainError, match=r"bad.csv, line 3: 3 fields"):
        train.load_splits(str(bad))


def test_a_diverging_loss_is_warned_about():
    assert "diverged" in divergence([0.69, 0.68, 19.0, 158.0, 150.0, 99.5], {"learning_rate": 1.0})
    assert "try 10 times less" in divergence([0.7] * 4 + [5.0] * 4, {"learning_rate": 0.1})
    assert divergence([0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.1], {}) is None
    assert divergence([0.7, 50.0], {}) is None  # too few steps to tell


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0.01, 10), min_size=8, max_size=80))
def test_a_falling_loss_never_warns(losses):
    assert divergence(sorted(losses, reverse=True), {}) is None


def test_saved_files_are_readable_like_the_others(tmp_path):
    from finetune_utils import env
    (tmp_path / "weights").write_bytes(b"x")
    os.chmod(tmp_path / "weights", 0o600)
    old = os.umask(0o022)
    try:
        env.make_readable(tmp_path)
    finally:
        os.umask(old)
    assert oct((tmp_path / "weights").stat().st_mode & 0o777) == oct(0o644)


def test_one_writer_per_output_folder(tmp_path, capsys):
    from finetune_utils.train.output import OutputLock

    out = tmp_path / "run"
    with OutputLock(out) as lock:
        assert lock.path.exists()
        path = write_csv(tmp_path / "d.csv")
        err = refused(capsys, tmp_path, "--data", str(path), "--output_dir", str(out))
        assert f"pid {os.getpid()}" in err and "is writing to" in err and "choose another --output_dir" in err
    assert not lock.path.exists(), "the lock must be released when the run ends"


def test_a_stale_lock_is_replaced_with_a_note(tmp_path, capsys):
    import json
    import socket
    import subprocess
    import sys

    from finetune_utils.train.output import OutputLock

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock_file = tmp_path / ".run.lock"
    lock_file.write_text(json.dumps({"pid": int(gone.stdout), "host": socket.gethostname(), "started": "then"}))
    with OutputLock(tmp_path / "run"):
        assert json.loads(lock_file.read_text())["pid"] == os.getpid()
    assert "no longer exists" in capsys.readouterr().err and not lock_file.exists()


# --------------------------------------------------------------------------- epochs from --min_train_steps (issue 28)


def epochs_for(n_train, *argv):
    args = train.parse_args(["--data", "x", "--output", "o", *argv])
    train.check_options(args)
    how = train.options.resolve_epochs(args, n_train, processes=1)
    return args.num_train_epochs, how


def test_epochs_rise_on_a_small_training_set_up_to_the_cap():
    from finetune_utils.train.options import DEFAULT_EPOCHS, DEFAULT_MIN_STEPS, MAX_AUTO_EPOCHS

    large = 16 * DEFAULT_MIN_STEPS  # enough examples for the minimum number of steps in one epoch
    assert epochs_for(large) == (DEFAULT_EPOCHS, f"{DEFAULT_EPOCHS} epochs (the default; enough steps)")
    epochs, how = epochs_for(320, "--min_train_steps", "100")  # 20 steps per epoch of 16
    assert epochs == 5 and "20 optimizer steps per epoch" in how and "100" in how
    assert epochs_for(10, "--min_train_steps", "100000")[0] == MAX_AUTO_EPOCHS  # a tiny set: capped
    assert epochs_for(320, "--min_train_steps", "0")[0] == DEFAULT_EPOCHS  # 0: always the default
    # a larger effective batch (accumulation) means fewer steps per epoch, so more epochs
    assert epochs_for(320, "--min_train_steps", "100", "--gradient_accumulation_steps", "2")[0] == 10
    assert epochs_for(10, "--epochs", "7") == (7, "given")  # given epochs are taken as given


def test_min_train_steps_with_epochs_is_refused(tmp_path, capsys):
    err = refused(capsys, tmp_path, "--data", "support_sentiment", "--output_dir", str(tmp_path / "o"),
                  "--num_train_epochs", "2", "--min_train_steps", "50")
    assert "--min_train_steps applies only when --num_train_epochs is not given" in err
