"""Reading the user's data: JSONL and CSV as people have them, the label rule, the validation carve-out.

Every problem is a :class:`TrainError` that names the user's own file and line, also after the automatic
70/15/15 split of a single file.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from .. import data as course_data
from .. import integrity
from .options import TrainError

#: Fewest training rows, and fewest per class, from which a validation split is carved when none is given.
MIN_CARVE_ROWS, MIN_CARVE_PER_CLASS = 20, 2
#: Delimiters a CSV file may use (detected from the header).
DELIMITERS = (",", ";", "\t", "|")
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "vertical bar"}
#: Fewest rows of a single file that the automatic 70/15/15 split accepts.
MIN_SPLIT_ROWS = 10

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
    first, _, rest = text.partition("\n")
    excel = first.strip().lower().startswith("sep=") and len(first.strip()) == 5
    if excel:  # Excel's "sep=;" line names the delimiter; the header follows it
        delimiter, text = first.strip()[4], rest
    else:
        delimiter = choose_delimiter(text, wanted)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows, header, line = [], None, 2 if excel else 1
    try:
        for record in reader:
            start, line = line, reader.line_num + (2 if excel else 1)
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



NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")   # a decimal number as people write one


def _canonical_number(number: float) -> str:
    return str(int(number)) if float(number).is_integer() and abs(number) < 2**53 else repr(float(number))


def normalise_label(value, where: str, column: str) -> tuple[str, bool]:
    """The label as a class name, and whether its text form was changed (whitespace or number form).

    The one rule for every file type and split (:data:`.options.LABEL_RULE`): a label becomes text, stripped of
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
    """Split the training rows into (train, validation), stratified by label, seed 0; or the reason why the rows are
    too few for a split that holds every class (``MIN_CARVE_ROWS``, ``MIN_CARVE_PER_CLASS``)."""
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
    return integrity.fingerprint(names, *[[split, *splits[split]] for split in sorted(splits)])


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
    """Read the data the options name (every problem a :class:`TrainError` naming the file and line); a folder
    without a validation file gets one carved (:func:`carve_validation`), one file is split 70/15/15."""
    data = str(data)
    course_name = data[len("course:"):] if data.startswith("course:") else None
    if course_name is None and data in course_data.names() and Path(data).exists():
        raise TrainError(f"--data {data} names both a course data set and the {'folder' if Path(data).is_dir() else 'file'}"
                         f" {Path(data).resolve()}; say which: --data ./{data} for yours, --data course:{data} for the "
                         "course's")
    if course_name is not None and course_name not in course_data.names():
        raise TrainError(f"--data {data}: the course has no data set {course_name!r}; it has {course_data.names()}")
    if course_name is None and data in course_data.names():
        course_name = data
    if course_name is not None:
        data = course_name
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
            if len(files) > 1:
                raise TrainError(f"the folder {source} holds both {files[0].name} and {files[1].name}; keep one of "
                                 f"them (move the other out of the folder) so that it is clear which {split} data to use")
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
    return bool(NUMBER.fullmatch(text)) and math.isfinite(float(text))


