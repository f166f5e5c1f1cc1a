"""The course's data sets: schema, size, balance, duplicates, spans, splits, loader errors."""

import itertools
import json
import re
import shutil
from collections import Counter

import pytest

from finetune_utils import data

MIN_SIZE = {
    "support_sentiment": 900,
    "legal_topics": 300,
    "support_answers": 400,
    "support_entities": 300,
    "instructions": 400,
    "support_preferences": 300,
}


@pytest.fixture(scope="module", params=data.names())
def loaded(request):
    name = request.param
    ds, labels = data.load(name)
    return name, ds, labels


def all_rows(name):
    return {split: data.read_jsonl(data.folder(name) / f"{split}.jsonl") for split in data.SPLITS}


def test_size_splits_and_typed_features(loaded):
    name, ds, labels = loaded
    assert list(ds) == ["train", "validation", "test"]
    total = sum(len(ds[s]) for s in ds)
    assert total >= MIN_SIZE[name]
    assert 0.55 <= len(ds["train"]) / total <= 0.75 and len(ds["test"]) / total >= 0.15
    features = ds["train"].features
    if name == "support_entities":
        assert features["tags"].feature.names == labels and labels[0] == "O"
    elif name == "instructions":
        assert features["task"].names == labels
    elif name == "support_preferences":
        assert features["kind"].names == labels
    else:
        assert features["label"].names == labels


def test_data_card_exists(loaded):
    name, _, _ = loaded
    card = (data.folder(name) / "README.md").read_text()
    for heading in ("Purpose", "How it was written", "Labels", "Statistics", "Limitations", "Licence"):
        assert f"## {heading}" in card, f"{name} card lacks '{heading}'"


def assign_splits(rows: list[dict], schema, test: float = 0.2, validation: float = 0.15) -> dict[str, list]:
    """The rule the shipped splits were made with: deterministic, stratified (and grouped) by id.

    Within each stratum (the schema's ``stratify`` fields), units (groups, or single
    examples) are ordered by the SHA-1 of their id; the first ``test`` share goes to
    test, the next ``validation`` share to validation, the rest to train.
    """
    import hashlib

    units: dict = {}
    for row in rows:
        key = row[schema.group_field] if schema.group_field else row["id"]
        units.setdefault(key, []).append(row)
    strata: dict = {}
    for key, members in units.items():
        strata.setdefault(tuple(members[0][f] for f in schema.stratify), []).append(key)
    out = {s: [] for s in data.SPLITS}
    for stratum in sorted(strata, key=str):
        keys = sorted(strata[stratum], key=lambda k: hashlib.sha1(k.encode()).hexdigest())
        n_test, n_val = round(len(keys) * test), round(len(keys) * validation)
        for i, key in enumerate(keys):
            out["test" if i < n_test else "validation" if i < n_test + n_val else "train"].extend(units[key])
    for split in data.SPLITS:
        out[split].sort(key=lambda r: r["id"])
    return out


def test_splits_are_reproducible_from_ids(loaded):
    name, _, _ = loaded
    rows = all_rows(name)
    union = [r for split in data.SPLITS for r in rows[split]]
    again = assign_splits(union, data.SCHEMAS[name])
    for split in data.SPLITS:
        assert [r["id"] for r in again[split]] == sorted(r["id"] for r in rows[split])


def test_label_balance_is_stratified(loaded):
    name, ds, labels = loaded
    field = {"support_entities": None, "instructions": "task", "support_preferences": "kind"}.get(name, "label")
    if field is None:
        return
    overall = Counter(x for s in ds for x in ds[s][field])
    total = sum(overall.values())
    assert min(overall.values()) / total >= (0.1 if name == "legal_topics" else 0.15)
    for split in ds:
        counts = Counter(ds[split][field])
        for label, n in overall.items():
            assert abs(counts[label] / len(ds[split]) - n / total) < 0.06, (split, labels[label])


def normalize(text):
    return " ".join(re.findall(r"[a-z0-9']+", text.lower()))


def text_units(name, rows):
    """The texts that must not repeat: (id, text) per example."""
    if name == "support_answers":
        questions = {r["group"]: r["question"] for r in rows}  # one question per group
        return list(questions.items()) + [(r["id"], r["answer"]) for r in rows]
    if name == "instructions":
        return [(r["id"], r["messages"][0]["content"]) for r in rows]
    if name == "support_preferences":
        return [(r["id"], r["prompt"]) for r in rows]
    return [(r["id"], r["text"]) for r in rows]


def test_no_exact_or_near_duplicates_within_or_across_splits(loaded):
    name, _, _ = loaded
    rows = [r for split_rows in all_rows(name).values() for r in split_rows]
    units = text_units(name, rows)
    normalized = Counter(normalize(t) for _, t in units)
    assert not [t for t, n in normalized.items() if n > 1], "exact duplicates after normalization"
    # near duplicates: high word overlap (Jaccard of word sets), for texts of 5+ words
    threshold = 0.8 if name == "instructions" else 0.7  # instructions share their instruction wording
    sets = [(i, set(normalize(t).split())) for i, t in units]
    sets = [(i, s) for i, s in sets if len(s) >= 5]
    near = [
        (a, b)
        for (a, sa), (b, sb) in itertools.combinations(sets, 2)
        if len(sa & sb) / len(sa | sb) >= threshold
    ]
    assert not near, f"near-duplicates: {near[:5]}"


def test_sentiment_is_realistic_and_has_hard_cases():
    ds, labels = data.load("support_sentiment")
    rows = [r for s in ds for r in ds[s]]
    assert labels == ["negative", "neutral", "positive"]
    assert len({r["domain"] for r in rows}) >= 6
    assert {r["channel"] for r in rows} == {"chat", "email"}
    hard = [r for r in rows if r["hard"]]
    assert len(hard) / len(rows) >= 0.15
    assert all(r["hard_type"] for r in hard) and not any(r["hard_type"] for r in rows if not r["hard"])
    lengths = [len(r["text"].split()) for r in rows]
    assert min(lengths) <= 4 and 60 <= max(lengths) <= 90


def test_startup_subset_is_small_balanced_and_from_train():
    full, _ = data.load("support_sentiment")
    small, _ = data.load("support_sentiment", subset="startup")
    assert len(small["train"]) < 500
    assert set(small["train"]["id"]) <= set(full["train"]["id"])
    counts = Counter(small["train"]["label"])
    assert max(counts.values()) - min(counts.values()) <= 2
    assert len(small["test"]) == len(full["test"])


def test_legal_excerpts_are_long_enough_for_truncation():
    ds, labels = data.load("legal_topics")
    assert {"contract", "litigation", "intellectual_property"} <= set(labels) and len(labels) >= 4
    lengths = [len(t.split()) for s in ds for t in ds[s]["text"]]
    assert min(lengths) >= 60 and max(lengths) <= 250
    assert sum(n > 170 for n in lengths) / len(lengths) > 0.2


def test_pairs_have_one_positive_and_one_plausible_negative_per_question():
    ds, labels = data.load("support_answers")
    groups = {}
    for split in ds:
        for r in ds[split]:
            groups.setdefault(r["group"], []).append((split, r))
    for group, members in groups.items():
        assert len({split for split, _ in members}) == 1, f"{group} crosses splits"
        assert sorted(labels[r["label"]] for _, r in members) == ["does_not_resolve", "resolves"]
        (_, a), (_, b) = members
        assert a["question"] == b["question"] and a["topic"] == b["topic"]
        negative = a if labels[a["label"]] == "does_not_resolve" else b
        assert negative["negative_type"] in {"related_but_wrong", "generic_deflection", "wrong_detail", "partial"}


def test_entity_spans_match_the_text_and_bio_round_trips():
    ds, tag_names = data.load("support_entities")
    entity_labels = data.SCHEMAS["support_entities"].label_names
    aligned = total = 0
    for split in ds:
        for r in ds[split]:
            assert r["entities"], r["id"]
            units = data.words_with_offsets(r["text"])
            starts, ends = {s for _, s, _ in units}, {e for _, _, e in units}
            for ent in r["entities"]:
                surface = r["text"][ent["start"] : ent["end"]]
                assert surface and surface == surface.strip()
                total += 1
                aligned += ent["start"] in starts and ent["end"] in ends
            tags = [tag_names[t] for t in r["tags"]]
            assert sum(t.startswith("B-") for t in tags) == len(r["entities"])
            assert all(not t.startswith("I-") or tags[k - 1] != "O" for k, t in enumerate(tags))
    assert aligned / total > 0.97  # entities start and end on word boundaries
    assert len(entity_labels) == 4


def test_spans_to_bio_with_word_pieces_and_specials():
    entities = [{"start": 9, "end": 17, "label": "ORDER_ID"}]  # "BC-48213"
    offsets = [(0, 0), (0, 2), (3, 8), (9, 11), (11, 12), (12, 17), (17, 18), (0, 0)]
    names = data.bio_names(["PRODUCT", "ORDER_ID"])
    tags = data.spans_to_bio(entities, offsets, ["PRODUCT", "ORDER_ID"])
    assert [names[t] if t >= 0 else -100 for t in tags] == [
        -100, "O", "O", "B-ORDER_ID", "I-ORDER_ID", "I-ORDER_ID", "O", -100
    ]


def test_instructions_are_half_checkable_and_valid():
    ds, tasks = data.load("instructions")
    rows = [r for s in ds for r in ds[s]]
    checkable = [r for r in rows if r["check"] in ("json", "label")]
    assert len(checkable) / len(rows) >= 0.5
    assert set(tasks) == {"extract_json", "classify", "summarize_clause", "rewrite_polite"}
    for r in rows:
        answer = r["messages"][-1]["content"]
        if r["check"] == "json":
            assert data.json_answer_problem(answer) is None
            assert answer == json.dumps(json.loads(answer))
        if r["check"] == "label":
            assert answer in data.DEPARTMENTS
    for split in ds:  # every task in every split, including the held-out test split
        assert set(ds[split]["task"]) == set(range(len(tasks)))


def test_json_answer_problem_explains():
    assert data.json_answer_problem("{not json") == "not valid JSON"
    assert "keys" in data.json_answer_problem('{"product": null}')
    good = '{"product": null, "order_id": "A1", "issue": "refund", "urgent": false}'
    assert data.json_answer_problem(good) is None
    assert "issue" in data.json_answer_problem(good.replace("refund", "money"))
    assert "urgent" in data.json_answer_problem(good.replace("false", '"no"'))


# --------------------------------------------------------------------------- bad input


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """A copy of support_sentiment in a scratch data folder that tests may break."""
    shutil.copytree(data.folder("support_sentiment"), tmp_path / "support_sentiment")
    monkeypatch.setenv("FINETUNE_UTILS_DATA", str(tmp_path))
    return tmp_path / "support_sentiment"


def corrupt(path, lineno, new_line):
    lines = path.read_text().splitlines()
    lines[lineno - 1] = new_line
    path.write_text("\n".join(lines) + "\n")


def good_line(path, lineno=3):
    return json.loads(path.read_text().splitlines()[lineno - 1])


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda r: "{'id': 1,", "line 3: not valid JSON"),
        (lambda r: json.dumps([r]), "line 3: expected a JSON object, got list"),
        (lambda r: json.dumps({k: v for k, v in r.items() if k != "label"}), "line 3: missing field(s) ['label']"),
        (lambda r: json.dumps({**r, "label": "postive"}), "line 3: unknown label 'postive'; expected one of"),
        (lambda r: json.dumps({**r, "text": "   "}), "line 3: text is empty"),
        (lambda r: json.dumps({**r, "text": 42}), "line 3: text must be a string, got int"),
        (lambda r: json.dumps({**r, "hard": "yes"}), "line 3: hard must be bool, got str"),
    ],
)
def test_bad_lines_name_file_line_and_problem(scratch, mutate, message):
    path = scratch / "validation.jsonl"
    corrupt(path, 3, mutate(good_line(path)))
    with pytest.raises(data.DataError) as err:
        data.load("support_sentiment")
    assert str(path) in str(err.value) and message in str(err.value)


def test_duplicate_id_and_missing_file(scratch):
    path = scratch / "test.jsonl"
    first = path.read_text().splitlines()[0]
    path.write_text(path.read_text() + first + "\n")
    with pytest.raises(data.DataError, match="already used on line 1"):
        data.load("support_sentiment")
    path.unlink()
    with pytest.raises(data.DataError, match="test.jsonl: file not found"):
        data.load("support_sentiment")


def test_unknown_names_and_subsets():
    with pytest.raises(data.DataError, match="Unknown data set 'imdb'"):
        data.load("imdb")
    with pytest.raises(data.DataError, match="your own files.*finetune_utils.train --data.*load_dataset"):
        data.load("my_data/train.csv")
    with pytest.raises(data.DataError, match="no subset 'tiny'"):
        data.load("support_sentiment", subset="tiny")


def test_bad_entity_spans_are_rejected(tmp_path, monkeypatch):
    shutil.copytree(data.folder("support_entities"), tmp_path / "support_entities")
    monkeypatch.setenv("FINETUNE_UTILS_DATA", str(tmp_path))
    path = tmp_path / "support_entities" / "train.jsonl"
    row = good_line(path, 1)
    row["entities"][0]["end"] = len(row["text"]) + 5
    corrupt(path, 1, json.dumps(row))
    with pytest.raises(data.DataError, match="line 1: entity 0 offsets .* outside the text"):
        data.load("support_entities")


def test_data_cards_figures_are_current():
    import subprocess
    import sys
    from pathlib import Path

    tool = Path(__file__).resolve().parent.parent / "tools" / "sync_data_cards.py"
    out = subprocess.run([sys.executable, str(tool), "--check"], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


# --------------------------------------------------------------------------- files as people have them


@pytest.mark.parametrize("raw, message", [
    (b'{"a": 1}\n{"t": "caf\xe9"}\n', "line 2: the file is not UTF-8 text (byte 0xe9 cannot be decoded). Re-save it as UTF-8"),
    (b'{"a": 1}\n\n{"t": "\\ud800"}\n', "line 3: a string holds a lone surrogate escape"),
    (b'{"a": ' + b"1" * 5000 + b"}\n", "line 1: not valid JSON"),
    (b"[" * 100000 + b"\n", "line 1: not valid JSON"),
])
def test_read_jsonl_bad_bytes_name_the_line(tmp_path, raw, message):
    path = tmp_path / "f.jsonl"
    path.write_bytes(raw)
    with pytest.raises(data.DataError, match=re.escape(f"{path}, {message}")):
        data.read_jsonl(path)


def test_read_jsonl_accepts_a_byte_order_mark(tmp_path):
    path = tmp_path / "f.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}\r\n{"a": 2}\r\n')
    assert data.read_jsonl(path) == [{"a": 1, "_line": 1}, {"a": 2, "_line": 2}]
