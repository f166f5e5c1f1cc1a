"""Checksums, data fingerprints and ownership marks, each defined once for the whole course.

* :func:`file_digest`: the fast checksum of a file, verified on every load of the SmolLM2 cache
  (lesson 00), of a model a lesson saved for a later one (lessons 03 and 04) and of the command's
  checkpoints (lesson 10);
* :func:`fingerprint`: the content hash of data, so that a saved model or a checkpoint is reused
  only for the data it was trained on (taught in lesson 04, where lesson 03's model is reused);
* :func:`write_mark` / :func:`read_mark`: a small JSON file that says "this folder is ours", written
  last or atomically, so that nothing a program did not write is ever replaced (the command,
  ``heads.save_finetuned`` and the book all refuse a folder without their mark).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

#: The fast checksum: xxHash's XXH3-128 (a non-cryptographic hash, several times faster than BLAKE2b;
#: the package comes with ``datasets``), else BLAKE2b from the standard library.
try:
    import xxhash as _xxhash

    DIGEST = "xxh3_128"
except ImportError:  # pragma: no cover - xxhash is a dependency of datasets
    _xxhash = None
    DIGEST = "blake2b"


def _hash_file(path: Path, digest, chunk: int = 1 << 24) -> str:
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256(path: Path) -> str:
    """The SHA-256 of a file (slow, cryptographic: the full check of the SmolLM2 cache)."""
    return _hash_file(path, hashlib.sha256())


def file_digest(path: Path, algorithm: str = DIGEST) -> str:
    """The fast checksum of a file, prefixed with its algorithm (``xxh3_128:...`` or ``blake2b:...``)."""
    use_xxhash = algorithm == "xxh3_128" and _xxhash is not None
    digest = _xxhash.xxh3_128() if use_xxhash else hashlib.blake2b(digest_size=16)
    return f"{'xxh3_128' if use_xxhash else 'blake2b'}:{_hash_file(path, digest)}"


def digest_matches(path: Path, recorded: str) -> bool:
    """Whether ``path`` matches a recorded :func:`file_digest`, in whichever algorithm it was recorded."""
    algorithm = recorded.split(":", 1)[0]
    return algorithm in (DIGEST, "blake2b") and file_digest(path, algorithm) == recorded


def file_sums(folder: Path, names) -> dict:
    """``{name: {"size": ..., "digest": ...}}`` for the files ``names`` in ``folder``."""
    return {name: {"size": (folder / name).stat().st_size, "digest": file_digest(folder / name)} for name in names}


def file_problem(path: Path, meta) -> str | None:
    """What is wrong with ``path`` against its recorded ``{"size", "digest"}``: None, "missing", "size" or "digest"."""
    if not path.is_file():
        return "missing"
    if not isinstance(meta, dict) or path.stat().st_size != meta.get("size"):
        return "size"
    return None if digest_matches(path, str(meta.get("digest", ""))) else "digest"


def fingerprint(*parts, length: int = 32) -> str:
    """A content hash of JSON-able ``parts`` (texts, token ids, labels), the same in every process.

    Unlike a ``datasets`` fingerprint of data built in memory, the same data always gives the same value.
    """
    digest = hashlib.blake2b(digest_size=16)
    for part in parts:
        digest.update(json.dumps(part, ensure_ascii=False).encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:length]


def write_json(path: Path, obj, indent: int = 1) -> None:
    """Write ``obj`` as JSON to ``path`` atomically (a temporary file beside it, then a rename)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=indent) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def write_mark(folder: Path, name: str, writer: str, **fields) -> None:
    """Mark ``folder`` as written by ``writer``: the JSON file ``name`` with ``written_by`` and ``fields``."""
    write_json(Path(folder) / name, {"written_by": writer, **fields})


def read_mark(folder: Path, name: str, writer: str | None = None) -> dict | None:
    """The mark ``name`` in ``folder`` if it is a readable JSON object written by ``writer`` (any, if None)."""
    try:
        mark = json.loads((Path(folder) / name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(mark, dict) or (writer is not None and mark.get("written_by") != writer):
        return None
    return mark
