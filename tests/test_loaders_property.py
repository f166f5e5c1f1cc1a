"""Property-based tests (hypothesis) of the loaders and the training command's data reading.

Whatever rows or bytes a file holds, the answer is a valid data set or the project's own error
(data.DataError, train.TrainError) with a message; never another exception.
"""

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from finetune_utils import data, train

SETTINGS = settings(max_examples=150, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
WORK = Path(tempfile.mkdtemp(prefix="loaders-property-"))

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=6)
# Mostly plausible values (so that many drawn data sets are valid), sometimes anything at all.
good_labels = st.sampled_from(["pos", "neg", " pos", "neg ", "1", 1, "2", 2.0, True])
labels = st.one_of(good_labels, good_labels, good_labels, st.sampled_from(["", "  ", None]), json_values)
good_texts = st.sampled_from(["a fine text", "another text", "déjà vu ✓", "x"]) | st.text(min_size=1, max_size=20).filter(str.strip)
texts = st.one_of(good_texts, good_texts, good_texts, st.sampled_from(["", "  "]), json_values)
keys = st.sampled_from(["text", "label", "answer", "other", "_line"]) | st.text(max_size=4)
# rows that usually have text and label, sometimes miss them or carry other keys
rows = st.lists(st.one_of(
    st.fixed_dictionaries({"text": texts, "label": labels}, optional={"answer": texts, "other": json_values}),
    st.fixed_dictionaries({"text": texts, "label": labels}),
    st.dictionaries(keys, json_values, max_size=4),
), max_size=30)


@st.composite
def mostly_valid_rows(draw):
    """10-30 plausible rows; half of the time one of them gets an arbitrary value somewhere."""
    out = [{"text": draw(good_texts), "label": draw(good_labels)} for _ in range(draw(st.integers(10, 30)))]
    if draw(st.booleans()):
        row = out[draw(st.integers(0, len(out) - 1))]
        row[draw(keys)] = draw(json_values | texts | labels)
    return out


# CSV fields: plain words, or text with delimiters, quotes, line breaks, a byte-order mark, odd characters
odd_field = st.text(alphabet=st.sampled_from(list('ab ,;\t|"\n\r\ufeff\x00é')) | st.characters(), max_size=10)
text_field = st.one_of(st.sampled_from(["a fine text", "another one", "déjà vu"]), st.text(min_size=1, max_size=12), odd_field)
label_field = st.one_of(st.sampled_from(["pos", "neg", " pos", "1", "1.0"]), st.sampled_from(["pos", "neg"]), odd_field)
record = st.one_of(st.tuples(text_field, label_field).map(list), st.tuples(text_field, label_field).map(list),
                   st.lists(odd_field, min_size=1, max_size=4))


def _file(name: str, raw: bytes) -> Path:
    path = WORK / name
    path.write_bytes(raw)
    return path


def _check_command(path: Path, *extra: str) -> None:
    args = train.build_parser().parse_args(["--data", str(path), "--output", str(WORK / "out"), *extra])
    try:
        loaded = train.load_splits(args.data, args.text_column, args.pair_column, args.label_column)
    except train.TrainError as err:
        assert str(err), "an error without a message"
        event("refused: " + str(err).split(": ")[-1][:30])
        return
    event("a valid data set")
    names = loaded.names
    assert len(names) >= 2 and len(set(names)) == len(names) and all(isinstance(n, str) and n == n.strip() for n in names)
    assert "train" in loaded.splits
    for texts_, pairs, ids in loaded.splits.values():
        assert len(texts_) == len(ids) and all(0 <= i < len(names) for i in ids)
        assert all(isinstance(t, str) and t.strip() for t in texts_)
        assert pairs is None or all(isinstance(t, str) and t.strip() for t in pairs)
    assert isinstance(loaded.fingerprint, str)


@SETTINGS
@given(raw=st.binary(max_size=400))
def test_read_jsonl_any_bytes(raw):
    try:
        out = data.read_jsonl(_file("any.jsonl", raw))
    except data.DataError as err:
        assert str(err)
        return
    assert out and all(isinstance(r, dict) and isinstance(r["_line"], int) for r in out)


@SETTINGS
@given(raw=st.binary(max_size=400))
def test_command_reads_any_bytes_as_csv_and_jsonl(raw):
    _check_command(_file("any.csv", raw))
    _check_command(_file("any.jsonl", raw))


@SETTINGS
@given(items=mostly_valid_rows() | rows, pair=st.booleans())
def test_command_reads_any_jsonl_rows(items, pair):
    path = _file("rows.jsonl", "".join(json.dumps(r) + "\n" for r in items).encode("utf-8", "surrogatepass"))
    _check_command(path, *(["--pair-column", "answer"] if pair else []))


@st.composite
def mostly_valid_records(draw):
    good = st.tuples(st.sampled_from(["a fine text", "another one", "déjà vu"]) | st.text(min_size=1, max_size=12),
                     st.sampled_from(["pos", "neg", " pos", "1"])).map(list)
    out = draw(st.lists(good, min_size=10, max_size=25))
    if draw(st.booleans()):
        out[draw(st.integers(0, len(out) - 1))] = draw(record)
    return out


@SETTINGS
@given(records=mostly_valid_records() | st.lists(record, max_size=25), sep=st.sampled_from([",", ";", "\t", "|"]), bom=st.booleans())
def test_command_reads_any_csv_records(records, sep, bom):
    def quote(value):
        return '"' + value.replace('"', '""') + '"' if any(c in value for c in (sep, '"', "\n", "\r")) else value

    lines = [sep.join(["text", "label"])] + [sep.join(quote(v) for v in r) for r in records]
    text = ("\ufeff" if bom else "") + "\n".join(lines)
    _check_command(_file("records.csv", text.encode("utf-8", "surrogatepass")))


@st.composite
def course_rows(draw):
    """support_sentiment rows: usually valid, with unique ids; sometimes a field is anything."""
    out = []
    for i in range(draw(st.integers(0, 6))):
        row = {"id": f"r{i}", "text": "fine text", "label": draw(st.sampled_from(["negative", "neutral", "positive"])),
               "domain": "retail", "channel": "email", "hard": False, "hard_type": None}
        for name in draw(st.lists(st.sampled_from(sorted(row)), max_size=2)):
            row[name] = draw(json_values | texts)
        if draw(st.integers(0, 9)) == 0:
            del row[draw(st.sampled_from(sorted(row)))]
        out.append(row)
    return out


@SETTINGS
@given(train_rows=course_rows())
def test_data_load_any_rows(train_rows):
    folder = WORK / "course" / "support_sentiment"
    folder.mkdir(parents=True, exist_ok=True)
    valid = {"id": "v1", "text": "fine", "label": "neutral", "domain": "retail", "channel": "email", "hard": False,
             "hard_type": None}
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train_rows))
    for split in ("validation", "test"):
        (folder / f"{split}.jsonl").write_text(json.dumps(valid) + "\n")
    import os

    old = os.environ.get("FINETUNE_UTILS_DATA")
    os.environ["FINETUNE_UTILS_DATA"] = str(WORK / "course")
    try:
        ds, names = data.load("support_sentiment")
        event("a valid data set")
        assert names == ["negative", "neutral", "positive"] and len(ds["train"]) == len(train_rows)
    except data.DataError as err:
        assert str(err)
    finally:
        if old is None:
            del os.environ["FINETUNE_UTILS_DATA"]
        else:
            os.environ["FINETUNE_UTILS_DATA"] = old
