"""The course's data sets: load, validate and describe them.

Every data set lives in ``data/<name>/`` as ``train.jsonl``, ``validation.jsonl`` and
``test.jsonl`` (one JSON object per line) with a data card, ``README.md``.
:func:`load` reads the three files, checks every line, and returns a
``datasets.DatasetDict`` with typed features (``ClassLabel`` with names, sequences
for tags) together with the label names::

    from finetune_utils import data
    ds, labels = data.load("support_sentiment")
    ds["train"][0]   # {'id': ..., 'text': ..., 'label': 2, ...};  labels[2] == 'positive'

A bad line fails loudly, naming the file, the line and the problem::

    DataError: data/support_sentiment/train.jsonl, line 12: unknown label 'postive';
    expected one of ['negative', 'neutral', 'positive']
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from . import env

SPLITS = ("train", "validation", "test")
#: The label of a position without one (special tokens, padding, an SFT prompt): PyTorch's cross-entropy skips it.
IGNORE_INDEX = -100


class DataError(ValueError):
    """A data file is missing, malformed or inconsistent with its schema."""


@dataclass(frozen=True)
class Schema:
    """What one data set's lines must look like."""

    task: str  # "sequence", "pair", "token", "chat" or "preference"
    label_names: tuple[str, ...]
    text_fields: tuple[str, ...]  # must be non-empty strings
    label_field: str | None = "label"
    # other fields: name -> allowed Python type(s); None values are allowed where noted
    fields: dict = field(default_factory=dict)
    nullable: tuple[str, ...] = ()
    stratify: tuple[str, ...] = ("label",)  # fields that define split strata
    group_field: str | None = None  # examples sharing it stay in one split


SCHEMAS: dict[str, Schema] = {
    "support_sentiment": Schema(
        task="sequence",
        label_names=("negative", "neutral", "positive"),
        text_fields=("text",),
        fields={"domain": str, "channel": str, "hard": bool, "hard_type": str},
        nullable=("hard_type",),
        stratify=("label", "domain"),
    ),
    "legal_topics": Schema(
        task="sequence",
        label_names=("contract", "litigation", "intellectual_property", "employment", "data_privacy"),
        text_fields=("text",),
        fields={"doc_type": str},
    ),
    "support_answers": Schema(
        task="pair",
        label_names=("does_not_resolve", "resolves"),
        text_fields=("question", "answer"),
        fields={"group": str, "topic": str, "negative_type": str},
        nullable=("negative_type",),
        stratify=("topic",),
        group_field="group",
    ),
    "support_entities": Schema(
        task="token",
        label_names=("PRODUCT", "ORDER_ID", "DATE", "AMOUNT"),
        text_fields=("text",),
        label_field=None,
        fields={"entities": list},
        stratify=(),
    ),
    "instructions": Schema(
        task="chat",
        label_names=("extract_json", "classify", "summarize_clause", "rewrite_polite"),
        text_fields=(),
        label_field="task",
        fields={"messages": list, "check": str},
        nullable=("check",),
        stratify=("task",),
    ),
    "support_preferences": Schema(
        task="preference",
        label_names=("curt", "wrong_detail", "wrong_format", "padded", "over_promising"),
        text_fields=("prompt", "chosen", "rejected"),
        label_field="kind",
        fields={"topic": str},
        stratify=("kind",),
    ),
}

#: The fixed answer formats of the checkable instruction tasks.
EXTRACT_KEYS = ("product", "order_id", "issue", "urgent")
EXTRACT_ISSUES = ("delivery", "refund", "damaged", "billing", "account", "technical", "other")
DEPARTMENTS = ("billing", "shipping", "technical", "account", "returns")

#: Named subsets (documented in the data cards): data set -> subset -> ids file.
SUBSETS = {"support_sentiment": {"startup": "subset_startup_ids.txt"}}


# --------------------------------------------------------------------------- reading


def names() -> list[str]:
    """The data sets the course ships. Taught in lesson 00."""
    return list(SCHEMAS)


def folder(name: str) -> Path:
    if name not in SCHEMAS:
        looks_like_a_path = any(c in str(name) for c in "/\\.~") or Path(str(name)).expanduser().exists()
        advice = (" It looks like a path to your own files: `load` reads only the course's data sets. Train on your "
                  "own CSV/JSONL with the command (`python -m finetune_utils.train --data PATH`), or read them with "
                  "`datasets.load_dataset('csv', data_files=PATH)` (or 'json' for JSONL).") if looks_like_a_path else ""
        raise DataError(f"Unknown data set {name!r}; the course has {names()}.{advice}")
    return env.data_dir() / name


def not_utf8_message(path, lineno: int, err: UnicodeDecodeError) -> str:
    """What to tell a user whose file is not UTF-8: the file, the line, how to re-save it."""
    bad = err.object[err.start:err.start + 1].hex() if isinstance(err.object, (bytes, bytearray)) else "?"
    return (f"{path}, line {lineno}: the file is not UTF-8 text (byte 0x{bad} cannot be decoded). "
            "Re-save it as UTF-8: in a spreadsheet choose 'CSV UTF-8', in an editor 'Save with encoding: UTF-8', "
            f"or convert it with `iconv -f latin1 -t utf-8 {Path(path).name} > fixed{Path(path).suffix}` "
            "(latin1 if it came from an older Windows/Excel export)")


#: Byte-order marks of encodings that are not UTF-8, checked longest first (UTF-32 LE starts like UTF-16 LE).
OTHER_BOMS = ((b"\xff\xfe\x00\x00", "UTF-32-LE"), (b"\x00\x00\xfe\xff", "UTF-32-BE"),
              (b"\xff\xfe", "UTF-16-LE"), (b"\xfe\xff", "UTF-16-BE"))


def decode_utf8(raw: bytes, path) -> str:
    """``raw`` as text (a UTF-8 byte-order mark at the start dropped); :class:`DataError` naming the line if not
    UTF-8, the encoding if the file starts with another byte-order mark, and the line of a mark in the middle."""
    name = Path(path).name
    for bom, encoding in OTHER_BOMS:
        if raw.startswith(bom):
            raise DataError(f"{path}: the file is {encoding} text (it starts with that encoding's byte-order mark), "
                            f"not UTF-8. Re-save it as UTF-8 (in a spreadsheet 'CSV UTF-8'), or convert it with "
                            f"`iconv -f {encoding[:6]} -t UTF-8 {name} > fixed{Path(path).suffix}`")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        start = 3 if raw.startswith(b"\xef\xbb\xbf") else 0
        lineno = raw.count(b"\n", 0, err.start + start) + 1
        raise DataError(not_utf8_message(path, lineno, err)) from None
    if "\n\ufeff" in text:  # a mark at the start of a later line: two files joined, the second saved with a mark
        lineno = text.count("\n", 0, text.index("\n\ufeff")) + 2
        raise DataError(f"{path}, line {lineno}: a UTF-8 byte-order mark (U+FEFF) starts this line, in the middle of the file, "
                        "usually where two files were joined; delete it (e.g. `sed -i 's/\\xEF\\xBB\\xBF//g' "
                        f"{name}`) and check that line")
    return text


def _has_lone_surrogate(value) -> bool:
    """True if a JSON value holds a string that cannot be written as UTF-8 (a lone ``\\ud800`` escape)."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
        return False
    except UnicodeEncodeError:
        return True
    except RecursionError:
        return False


def read_jsonl(path: Path) -> list[dict]:
    """Read a JSONL file; a line that is not a JSON object fails with its number.

    The file must be UTF-8 (a byte-order mark is accepted); other bytes fail with the
    line and how to re-save the file. Each row gets its line number as ``_line``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"{path}: file not found. The course's data sets are in the repository's data/ folder; "
            f"set FINETUNE_UTILS_DATA if you keep them elsewhere."
        )
    text = decode_utf8(path.read_bytes(), path)
    rows = []
    # split on \n only (not on the other characters str.splitlines treats as line ends), like `wc -l`
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}, line {lineno}: not valid JSON ({err.msg} at column {err.colno})") from None
        except (ValueError, RecursionError) as err:  # e.g. a 5000-digit number, or [[[[... nested too deep
            raise DataError(f"{path}, line {lineno}: not valid JSON ({str(err)[:120] or type(err).__name__})") from None
        if not isinstance(row, dict):
            raise DataError(f"{path}, line {lineno}: expected a JSON object, got {type(row).__name__}")
        if "\\u" in line and _has_lone_surrogate(row):
            raise DataError(f"{path}, line {lineno}: a string holds a lone surrogate escape (like \\ud800), "
                            "which is not a character; fix or remove it")
        row["_line"] = lineno
        rows.append(row)
    if not rows:
        raise DataError(f"{path}: the file is empty")
    return rows


def _check_entities(row: dict, where: str, schema: Schema) -> None:
    text, previous_end = row["text"], 0
    for k, ent in enumerate(row["entities"]):
        if not isinstance(ent, dict) or set(ent) != {"start", "end", "label"}:
            raise DataError(f"{where}: entity {k} must be an object with start, end and label")
        start, end, label = ent["start"], ent["end"], ent["label"]
        if label not in schema.label_names:
            raise DataError(f"{where}: entity {k} has unknown label {label!r}; expected one of {list(schema.label_names)}")
        if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(text)):
            raise DataError(f"{where}: entity {k} offsets ({start}, {end}) are outside the text (length {len(text)})")
        surface = text[start:end]
        if surface != surface.strip():
            raise DataError(f"{where}: entity {k} {surface!r} has surrounding whitespace")
        if start < previous_end:
            raise DataError(f"{where}: entity {k} overlaps the previous one or is out of order")
        previous_end = end


def check_messages(messages, where: str = "the conversation") -> None:
    """Raise :class:`DataError` (a ``ValueError``) unless ``messages`` can train a chat model (taught in lesson 07).

    A list of ``{role, content}`` objects (role system, user or assistant; no empty content), at least
    a user message, and the assistant's response last: the training target. :func:`load` checks every
    conversation of the chat set with it, ``sft.build_example`` every example it builds.
    """
    if not isinstance(messages, (list, tuple)) or len(messages) < 2 or not all(isinstance(m, dict) for m in messages):
        raise DataError(f"{where}: messages must be a list of {{role, content}} objects, at least a user message "
                        "and the assistant's response")
    if messages[-1].get("role") != "assistant":
        raise DataError(f"{where}: the last message must be the assistant's response (the training target), "
                        f"got role {messages[-1].get('role')!r}")
    for k, m in enumerate(messages):
        if m.get("role") not in ("system", "user", "assistant"):
            raise DataError(f"{where}: message {k} has role {m.get('role')!r}; use system, user or assistant")
        if not isinstance(m.get("content"), str) or not m["content"].strip():
            raise DataError(f"{where}: " + ("the assistant's response is empty: there would be nothing to train on"
                                            if k == len(messages) - 1 else f"message {k} has empty content"))


def _check_chat_row(row: dict, where: str) -> None:
    messages = row["messages"]
    check_messages(messages, where)
    check, response = row["check"], messages[-1]["content"]
    if check == "json":
        problem = json_answer_problem(response)
        if problem:
            raise DataError(f"{where}: the response is not a valid extraction: {problem}")
    elif check == "label" and response not in DEPARTMENTS:
        raise DataError(f"{where}: the response {response!r} is not one of {list(DEPARTMENTS)}")
    elif check not in (None, "json", "label"):
        raise DataError(f"{where}: check must be 'json', 'label' or null, got {check!r}")


def json_answer_problem(text: str) -> str | None:
    """Why ``text`` is not a valid extraction answer (None if it is).

    Valid means: a JSON object with exactly the keys product, order_id, issue, urgent
    (in that order); product/order_id strings or null, issue from the fixed set,
    urgent a boolean. Used to validate the data and to score model outputs.
    """
    try:
        obj = json.loads(text)
    except (json.JSONDecodeError, TypeError):
        return "not valid JSON"
    if not isinstance(obj, dict):
        return "not a JSON object"
    if tuple(obj) != EXTRACT_KEYS:
        return f"keys {list(obj)} instead of {list(EXTRACT_KEYS)}"
    for key in ("product", "order_id"):
        if obj[key] is not None and not (isinstance(obj[key], str) and obj[key].strip()):
            return f"{key} must be a non-empty string or null"
    if obj["issue"] not in EXTRACT_ISSUES:
        return f"issue {obj['issue']!r} is not one of {list(EXTRACT_ISSUES)}"
    if not isinstance(obj["urgent"], bool):
        return "urgent must be true or false"
    return None


def validate_rows(rows: list[dict], schema: Schema, path: Path) -> None:
    """Check every row against ``schema``; raise :class:`DataError` at the first problem."""
    seen: dict[str, int] = {}
    for row in rows:
        where = f"{path}, line {row.get('_line', '?')}"
        required = ["id", *schema.text_fields, *([schema.label_field] if schema.label_field else []), *schema.fields]
        missing = [f for f in required if f not in row]
        if missing:
            raise DataError(f"{where}: missing field(s) {missing}")
        if not isinstance(row["id"], str) or not row["id"]:
            raise DataError(f"{where}: id must be a non-empty string")
        if row["id"] in seen:
            raise DataError(f"{where}: id {row['id']!r} already used on line {seen[row['id']]}")
        seen[row["id"]] = row.get("_line", 0)
        for name in schema.text_fields:
            if not isinstance(row[name], str):
                raise DataError(f"{where}: {name} must be a string, got {type(row[name]).__name__}")
            if not row[name].strip():
                raise DataError(f"{where}: {name} is empty")
        if schema.label_field and row[schema.label_field] not in schema.label_names:
            raise DataError(
                f"{where}: unknown label {row[schema.label_field]!r}; expected one of {list(schema.label_names)}"
            )
        for name, kind in schema.fields.items():
            value = row[name]
            if value is None and name in schema.nullable:
                continue
            if not isinstance(value, kind):
                raise DataError(f"{where}: {name} must be {kind.__name__}, got {type(value).__name__}")
        if schema.task == "token":
            _check_entities(row, where, schema)
        if schema.task == "chat":
            _check_chat_row(row, where)


# --------------------------------------------------------------------------- features


def bio_names(entity_labels) -> list[str]:
    """BIO tag names: 'O', then 'B-X' and 'I-X' for each entity label X."""
    return ["O"] + [f"{p}-{label}" for label in entity_labels for p in ("B", "I")]


_WORD = re.compile(r"\w+(?:[-'’.,/]\w+)*|[^\w\s]", flags=re.UNICODE)


def words_with_offsets(text: str) -> list[tuple[str, int, int]]:
    """Split text into words and punctuation marks, with character offsets."""
    return [(m.group(), m.start(), m.end()) for m in _WORD.finditer(text)]


def spans_to_bio(entities, offsets, entity_labels, special=None) -> list[int]:
    """BIO tag ids for units (words or word pieces) given by character ``offsets``.

    ``entities`` are dicts with start/end/label (character offsets, end exclusive).
    A unit gets B-X if it is the first unit inside an entity of label X, I-X for the
    following units of that entity, O otherwise. Units listed in ``special`` (or with
    an empty (0, 0) span, as tokenizers give special tokens) get :data:`IGNORE_INDEX`. Works with any fast tokenizer's offset mapping.
    """
    names = bio_names(entity_labels)
    index = {n: i for i, n in enumerate(names)}
    tags = []
    current = None  # the entity the previous unit was in
    for k, (start, end) in enumerate(offsets):
        if (special is not None and special[k]) or start == end:
            tags.append(IGNORE_INDEX)
            continue
        inside = next((e for e in entities if e["start"] <= start < e["end"]), None)
        if inside is None:
            tags.append(index["O"])
        elif inside is current:
            tags.append(index[f"I-{inside['label']}"])
        else:
            tags.append(index[f"B-{inside['label']}"])
        current = inside
    return tags


def _features(schema: Schema, extra: dict):
    from datasets import ClassLabel, Features, Sequence, Value

    spec: dict = {"id": Value("string")}
    for name in schema.text_fields:
        spec[name] = Value("string")
    if schema.task == "token":
        spec["entities"] = [
            {"start": Value("int32"), "end": Value("int32"), "label": ClassLabel(names=list(schema.label_names))}
        ]
        spec["tokens"] = Sequence(Value("string"))
        spec["tags"] = Sequence(ClassLabel(names=bio_names(schema.label_names)))
    elif schema.task == "preference":   # a prompt, the chosen and the rejected reply; kind: how the rejected one fails
        spec["kind"] = ClassLabel(names=list(schema.label_names))
    elif schema.task == "chat":
        spec["task"] = ClassLabel(names=list(schema.label_names))
        spec["messages"] = [{"role": Value("string"), "content": Value("string")}]
        spec["check"] = Value("string")
    else:
        spec["label"] = ClassLabel(names=list(schema.label_names))
    for name, kind in extra.items():
        if name not in spec:
            spec[name] = Value({str: "string", bool: "bool", int: "int64", float: "float64"}[kind])
    return Features(spec)


def _to_record(row: dict, schema: Schema) -> dict:
    record = {k: v for k, v in row.items() if k != "_line"}
    if schema.task == "token":
        units = words_with_offsets(row["text"])
        record["tokens"] = [w for w, _, _ in units]
        record["tags"] = spans_to_bio(row["entities"], [(s, e) for _, s, e in units], schema.label_names)
    return record


# --------------------------------------------------------------------------- loading


def load(name: str, subset: str | None = None):
    """Load a data set as ``(DatasetDict, label_names)``. Taught in lesson 00.

    Parameters
    ----------
    name:
        One of :func:`names` (the course's own data).
    subset:
        A named training subset, e.g. ``load("support_sentiment", subset="startup")``:
        the seed's startup scenario with fewer than 500 labelled training examples.
        Validation and test stay complete.
    """
    from datasets import Dataset, DatasetDict

    base = folder(name)  # raises the clear error for an unknown name
    schema = SCHEMAS[name]
    if subset is not None and subset not in SUBSETS.get(name, {}):
        raise DataError(f"{name} has no subset {subset!r}; available: {sorted(SUBSETS.get(name, {})) or 'none'}")
    splits = {}
    for split in SPLITS:
        path_ = base / f"{split}.jsonl"
        rows = read_jsonl(path_)
        validate_rows(rows, schema, path_)
        splits[split] = rows
    if subset is not None:
        splits["train"] = _subset(name, subset, splits["train"])
    features = _features(schema, schema.fields)
    out = DatasetDict(
        {s: Dataset.from_list([_to_record(r, schema) for r in rows], features=features) for s, rows in splits.items()}
    )
    labels = out["train"].features["tags"].feature.names if schema.task == "token" else list(schema.label_names)
    return out, labels


def _subset(name: str, subset: str, train_rows: list[dict]) -> list[dict]:
    ids_path = folder(name) / SUBSETS[name][subset]
    if not ids_path.is_file():
        raise DataError(f"{ids_path}: subset file not found")
    wanted = [line.strip() for line in ids_path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    by_id = {r["id"]: r for r in train_rows}
    unknown = [i for i in wanted if i not in by_id]
    if unknown:
        raise DataError(f"{ids_path}: ids not in train.jsonl: {unknown[:5]}")
    return [by_id[i] for i in wanted]
