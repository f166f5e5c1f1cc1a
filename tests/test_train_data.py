"""The training command's data reading: CSV as spreadsheets write it, encodings, the label rule, and
messages that name the user's own file and line (also after the automatic 70/15/15 split). No training."""

import json

import pytest

from finetune_utils import data, train


def load(path, *extra):
    args = train.build_parser().parse_args(["--data", str(path), "--output", "unused", *extra])
    return train.load_splits(args.data, args.text_column, args.pair_column, args.label_column, args.validation_share)


def refused(path, *extra):
    with pytest.raises(train.TrainError) as err:
        load(path, *extra)
    return str(err.value)


def csv_rows(n=20, sep=",", labels=("neg", "pos")):
    return [f"message {i} is here{sep}{labels[i % len(labels)]}" for i in range(n)]


def write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


def test_csv_with_byte_order_mark(tmp_path):
    """Excel's 'CSV UTF-8' starts with a byte-order mark; the first column is still 'text'."""
    path = write(tmp_path / "bom.csv", "\ufefftext,label\n" + "\n".join(csv_rows()) + "\n")
    loaded = load(path)
    assert loaded.names == ["neg", "pos"] and sum(len(v[2]) for v in loaded.splits.values()) == 20


@pytest.mark.parametrize("sep, name", [(";", "semicolon"), ("\t", "tab"), ("|", "vertical bar")])
def test_delimiter_is_detected(tmp_path, sep, name):
    # texts with commas inside: a comma is not the delimiter even though it is frequent
    lines = [f"text{sep}label"] + [f"well, message {i}, ok{sep}{'ab'[i % 2]}" for i in range(20)]
    loaded = load(write(tmp_path / "data.csv", "\n".join(lines)))
    assert loaded.names == ["a", "b"]
    assert loaded.splits["train"][0][0].startswith("well, message")
    assert any(f"read with the {name}" in note for note in loaded.notes)


def test_wrong_column_names_the_delimiter_read(tmp_path):
    path = write(tmp_path / "data.csv", "message;mood\n" + "\n".join(csv_rows(sep=";")))
    message = refused(path)
    assert "no column 'text' (its columns: ['message', 'mood'])" in message
    assert "read as CSV with the semicolon ';' as delimiter" in message and "--text-column" in message


def test_latin1_csv_names_file_line_and_fix(tmp_path):
    path = write(tmp_path / "latin.csv", "text,label\nfine,a\ncafé au lait,b\n", encoding="latin-1")
    message = refused(path)
    assert f"{path}, line 3: the file is not UTF-8 text (byte 0xe9" in message
    assert "CSV UTF-8" in message and "iconv -f latin1 -t utf-8" in message


def test_latin1_jsonl_names_file_and_line(tmp_path):
    path = write(tmp_path / "latin.jsonl", '{"text": "ok", "label": "a"}\n{"text": "caf\xe9", "label": "b"}\n',
                 encoding="latin-1")
    assert f"{path}, line 2: the file is not UTF-8 text" in refused(path)


def test_field_count_mismatch_names_the_line(tmp_path):
    lines = ["text,label"] + csv_rows(5) + ["one, two, three,a"] + csv_rows(14)
    message = refused(write(tmp_path / "d.csv", "\n".join(lines)))
    assert "d.csv, line 7: 4 fields, but the header has 2" in message and "double quotes" in message


def test_multi_line_fields_keep_the_file_line(tmp_path):
    lines = ["text,label", '"a text\nover two lines",a'] + csv_rows(10) + [" ,b"] + csv_rows(8)
    message = refused(write(tmp_path / "d.csv", "\n".join(lines)))
    assert "d.csv, line 14: 'text' is empty" in message


def test_duplicate_header_column(tmp_path):
    message = refused(write(tmp_path / "d.csv", "text,label,text\n" + "\n".join(f"{r},x" for r in csv_rows())))
    assert "line 1: the header names the column(s) ['text'] more than once" in message


def jsonl(path, items):
    path.write_text("".join(json.dumps(r) + "\n" for r in items))
    return path


def labelled(labels):
    return [{"text": f"message {i}", "label": lab} for i, lab in enumerate(labels)]


def test_surrounding_whitespace_is_stripped_and_said(tmp_path):
    loaded = load(jsonl(tmp_path / "d.jsonl", labelled(["pos", "neg ", " pos", "neg"] * 5)))
    assert loaded.names == ["neg", "pos"]
    assert any("10 label(s) were rewritten by the label rule" in n and "'neg '" in n for n in loaded.notes)


def test_number_and_text_forms_of_one_label_are_one_class(tmp_path):
    loaded = load(jsonl(tmp_path / "d.jsonl", labelled([1, "1", 2, "2", 10] * 4)))
    assert loaded.names == ["1", "2", "10"]  # all labels are strings; numeric names sort as numbers
    loaded = load(jsonl(tmp_path / "e.jsonl", labelled([1, 1.0, "1.0", " 1 ", 2.5, "2.50", "+2.5", 3e0] * 3)))
    assert loaded.names == ["1", "2.5", "3"]
    csv = write(tmp_path / "d.csv", "text,label\n" + "\n".join(f"message {i},{lab}" for i, lab in
                                                                 enumerate(["1", "1.0", "2", "2.00", "01"] * 4)))
    assert load(csv).names == ["1", "2"]


@pytest.mark.parametrize("missing", ["NaN", "nan", "NA", "n/a", "N/A", "#N/A", "null", "None", "NULL", " none ", "-", "?"])
@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_spellings_of_a_missing_label_are_refused_with_the_line(tmp_path, missing, kind):
    labels = ["pos", "neg"] * 10
    labels[4] = missing
    if kind == "jsonl":
        path = jsonl(tmp_path / "d.jsonl", labelled(labels))
    else:
        path = write(tmp_path / "d.csv", "text,label\n" + "\n".join(f"message {i},{lab}" for i, lab in enumerate(labels)))
    message = refused(path)
    assert f"line {5 if kind == 'jsonl' else 6}: the label ('label') is {missing.strip()!r}" in message
    assert "missing value" in message and "fill it in or remove the row" in message


def test_the_label_rule_is_one_function_of_the_value():
    """hypothesis: any finite number, as a JSON number or as text in any usual form, gives the same class name,
    and that name reads back as the same number."""
    from hypothesis import given, strategies as st

    @given(st.one_of(st.integers(-10**6, 10**6), st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)))
    def one_class(number):
        name, _ = train.normalise_label(number, "f, line 1", "label")
        for text in (repr(number), str(number), f" {number} ", json.dumps(number)):
            assert train.normalise_label(text, "f, line 1", "label")[0] == name
        assert float(name) == float(number)

    one_class()


@pytest.mark.parametrize("bad, message", [
    (["a", "b"], "the label ('label') must be text or a number, got a list"),
    ({"x": 1}, "the label ('label') must be text or a number, got a dict"),
    (None, "the label ('label') is missing (null)"),
    ("   ", "the label ('label') is empty"),
])
def test_bad_labels_name_file_and_line(tmp_path, bad, message):
    items = labelled(["a", "b"] * 10)
    items[6]["label"] = bad
    path = jsonl(tmp_path / "d.jsonl", items)
    assert f"{path}, line 7: {message}" in refused(path)


def test_unseen_label_after_the_automatic_split_names_the_original_line(tmp_path):
    items = labelled(["a", "b"] * 10)
    items[2]["label"] = "c"  # a single 'c': the split puts it in validation
    path = jsonl(tmp_path / "one.jsonl", items)
    message = refused(path)
    assert f"{path}, line 3: label 'c' does not occur in the training data" in message
    assert "the automatic 70/15/15 split put this row in the validation set" in message


def test_too_few_rows_to_split(tmp_path):
    message = refused(jsonl(tmp_path / "d.jsonl", labelled(["a", "b"] * 3)))
    assert "has 6 rows; the automatic 70/15/15 split needs at least 10" in message


def test_text_that_is_not_text_names_the_line(tmp_path):
    items = labelled(["a", "b"] * 10)
    items[4]["text"] = 12
    path = jsonl(tmp_path / "d.jsonl", items)
    assert f"{path}, line 5: 'text' must be text, got int" in refused(path)


def test_fingerprint_follows_the_content(tmp_path):
    path = jsonl(tmp_path / "d.jsonl", labelled(["a", "b"] * 10))
    first = load(path).fingerprint
    assert load(path).fingerprint == first
    items = labelled(["b", "a"] * 10)
    jsonl(path, items)
    assert load(path).fingerprint != first


def test_data_load_names_a_non_utf8_line(tmp_path, monkeypatch):
    """data.load promises file and line for every bad line; a Latin-1 byte is one."""
    folder = tmp_path / "support_sentiment"
    folder.mkdir()
    for split in data.SPLITS:
        (folder / f"{split}.jsonl").write_bytes(b'{"id": "1"}\n{"id": "caf\xe9"}\n')
    monkeypatch.setenv("FINETUNE_UTILS_DATA", str(tmp_path))
    with pytest.raises(data.DataError, match=r"train.jsonl, line 2: the file is not UTF-8 text"):
        data.load("support_sentiment")


def test_course_data_set_is_read_with_a_fingerprint():
    loaded = load("support_answers")
    assert loaded.pair_column == "answer" and loaded.names == ["does_not_resolve", "resolves"]
    texts, pairs, ids = loaded.splits["train"]
    assert isinstance(texts, list) and isinstance(pairs, list) and len(texts) == len(ids)
    assert len(loaded.fingerprint) == 32


# --------------------------------------------------------------------------- a validation split when none is given


def folder(tmp_path, counts, splits=("train", "test")):
    """A folder with the given files; ``counts`` = rows per label in the training file."""
    tmp_path.mkdir(exist_ok=True)
    for split in splits:
        lines = ["text,label"]
        for label, n in counts.items():
            n = n if split == "train" else 3
            lines += [f"{split} message {i} about {label},{label}" for i in range(n)]
        write(tmp_path / f"{split}.csv", "\n".join(lines) + "\n")
    return tmp_path


def test_validation_is_carved_from_train_stratified_and_said(tmp_path):
    counts = {"a": 60, "b": 20, "c": 20}
    loaded = load(folder(tmp_path, counts))
    texts, _, ids = loaded.splits["validation"]
    train_texts, _, train_ids = loaded.splits["train"]
    assert len(ids) == 15 and len(train_ids) == 85 and not set(texts) & set(train_texts)
    # stratified: each class keeps its share (60/20/20 of 15 rows), and every class stays in training
    assert sorted(ids.count(i) for i in range(3)) == [3, 3, 9] and set(train_ids) == {0, 1, 2}
    assert "carved" in loaded.validation and any("held out as the validation split" in n for n in loaded.notes)
    assert load(folder(tmp_path, counts)).splits == loaded.splits  # the same rows every time (seed 0)
    assert len(load(tmp_path, "--validation-share", "0.3").splits["validation"][2]) == 30


def test_no_split_is_carved_when_a_validation_file_exists_or_it_is_turned_off(tmp_path):
    given = load(folder(tmp_path / "given", {"a": 20, "b": 20}, splits=("train", "validation", "test")))
    assert given.validation == "the validation file" and len(given.splits["train"][2]) == 40
    off = load(folder(tmp_path / "off", {"a": 20, "b": 20}), "--validation-share", "0")
    assert "validation" not in off.splits and off.validation.startswith("none")


@pytest.mark.parametrize("counts, reason", [({"a": 8, "b": 8}, "16 rows"), ({"a": 30, "b": 1}, "'b' has 1 training row")])
def test_too_little_training_data_is_not_carved_and_said(tmp_path, counts, reason):
    loaded = load(folder(tmp_path, counts))
    assert "validation" not in loaded.splits and sum(loaded.splits["train"][2]) == counts["b"]
    assert reason in loaded.validation and any("last epoch" in n for n in loaded.notes)


def test_validation_share_is_checked():
    args = train.build_parser().parse_args(["--data", "x", "--output", "y", "--validation-share", "0.9"])
    with pytest.raises(train.TrainError, match="--validation-share must be between 0 and 0.5"):
        train.check_options(args)
