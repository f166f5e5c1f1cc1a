"""The SmolLM2 conversion cache: a GGUF file dequantized once, then checked on every load (taught in lesson 00).

transformers dequantizes a GGUF file on load (slow); :func:`convert_gguf` rebuilds a plain
``LlamaForCausalLM`` from its config and state dict and saves it as safetensors, with a manifest
of every file's size, SHA-256 and fast checksum (:func:`integrity.file_digest`), written last so
that a folder without it is an unfinished conversion. :func:`check_cache` refuses a missing,
half-written or damaged cache; ``models.causal_lm_path`` then converts again.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from . import integrity

#: Version of the cache layout; bump it to invalidate every cached conversion.
CACHE_FORMAT = 2  # 2: special tokens taken from the GGUF file (transformers 5.15 guessed EOS wrong)


class ModelCacheError(RuntimeError):
    """A cached model conversion is missing, half-written or corrupted."""


def check_cache(folder: Path, full: bool = False) -> None:
    """Raise :class:`ModelCacheError` unless ``folder`` holds a complete, undamaged conversion.

    Every file listed in the manifest must exist with its recorded size and its fast
    checksum (:func:`integrity.file_digest`, XXH3-128, a fast hash; the README states its cost);
    with ``full=True`` the SHA-256 is checked too (slower).
    A manifest from before fast checksums existed is checked with SHA-256 once and
    then given them.
    """
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        raise ModelCacheError(f"{folder} has no manifest.json (conversion missing or interrupted)")
    try:
        manifest = json.loads(manifest_path.read_text())
        files = manifest["files"]
        for meta in files.values():
            meta["size"], meta["sha256"]
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise ModelCacheError(f"{manifest_path} is unreadable: {err}") from err
    if manifest.get("format") != CACHE_FORMAT:
        raise ModelCacheError(f"{folder} has cache format {manifest.get('format')}, expected {CACHE_FORMAT}")
    upgraded = False
    for name, meta in files.items():
        path = folder / name
        problem = integrity.file_problem(path, meta) if "digest" in meta else None
        if problem == "missing" or not path.is_file():
            raise ModelCacheError(f"cached file {path} is missing")
        if problem == "size" or path.stat().st_size != meta["size"]:
            raise ModelCacheError(
                f"cached file {path} has {path.stat().st_size} bytes, the manifest says {meta['size']}"
            )
        if problem == "digest":
            raise ModelCacheError(f"cached file {path} does not match its checksum (the file is damaged)")
        if (full or "digest" not in meta) and integrity.sha256(path) != meta["sha256"]:
            raise ModelCacheError(f"cached file {path} does not match its SHA-256 checksum (the file is damaged)")
        if "digest" not in meta:
            meta["digest"] = integrity.file_digest(path)
            upgraded = True
    if upgraded:
        with contextlib.suppress(OSError):  # a read-only cache stays checkable, with SHA-256
            integrity.write_json(manifest_path, manifest, indent=2)


@contextlib.contextmanager
def _one_gguf_parse():
    """Within the block, every ``gguf.GGUFReader(path)`` of one file is the same reader.

    transformers parses the GGUF file's header anew for the configuration, the tokenizer and
    the weights, and :func:`gguf_special_tokens` once more; each parse walks SmolLM2's
    49,152-entry vocabulary in Python. The reader only reads (a memory map), so one serves all.
    """
    import gguf

    original, readers = gguf.GGUFReader, {}

    def shared(path, mode="r"):
        key = (str(path), mode)
        if key not in readers:
            readers[key] = original(path, mode)
        return readers[key]

    gguf.GGUFReader = shared
    try:
        yield
    finally:
        gguf.GGUFReader = original


def convert_gguf(source: Path, target: Path, name: str) -> None:
    """Dequantize the GGUF file ``source`` and write a plain safetensors model called ``name`` to ``target``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    with _one_gguf_parse():
        tokenizer = AutoTokenizer.from_pretrained(str(source.parent), gguf_file=source.name)
        quantized = AutoModelForCausalLM.from_pretrained(str(source.parent), gguf_file=source.name)
        special = gguf_special_tokens(source)
    for token, token_id in special.items():  # the file's own special tokens, not a converter's guess
        setattr(tokenizer, f"{token}_token", tokenizer.convert_ids_to_tokens(token_id))
        setattr(quantized.config, f"{token}_token_id", token_id)
        if token != "unk":
            setattr(quantized.generation_config, f"{token}_token_id", token_id)
    config = quantized.config.to_dict()
    config.pop("quantization_config", None)
    config["_name_or_path"] = name
    config["architectures"] = ["LlamaForCausalLM"]
    plain_config = LlamaConfig.from_dict(config)
    with torch.device("meta"):
        plain = LlamaForCausalLM(plain_config)
    plain.load_state_dict(quantized.state_dict(), assign=True)
    plain.tie_weights()
    plain.generation_config = quantized.generation_config
    plain.save_pretrained(str(target), safe_serialization=True)
    tokenizer.save_pretrained(str(target))
    write_cache_manifest(target, source, name)


def gguf_special_tokens(path: Path) -> dict:
    """The special-token ids a GGUF file declares: ``{"bos": 1, "eos": 2, ...}``.

    Some transformers releases (5.15, Colab's in late 2026) convert SmolLM2's GGUF tokenizer
    with ``<|im_start|>`` as its end-of-sequence token; the file itself says ``<|im_end|>``.
    The conversion takes the file's word, so every release gives the same tokenizer.
    """
    from gguf import GGUFReader

    fields = GGUFReader(str(path)).fields
    names = {"bos": "bos", "eos": "eos", "unk": "unknown", "pad": "padding"}
    found = {}
    for name, key in names.items():
        field = fields.get(f"tokenizer.ggml.{key}_token_id")
        if field is not None:
            found[name] = int(field.parts[field.data[0]][0])
    return found


def write_cache_manifest(target: Path, source: Path, name: str) -> None:
    """List every file of a finished conversion with its size, SHA-256 and fast checksum.

    The manifest is written last: a folder without it is an unfinished conversion.
    """
    names = [p.name for p in sorted(target.iterdir()) if p.is_file() and not p.name.startswith("manifest.json")]
    files = {n: {**meta, "sha256": integrity.sha256(target / n)}
             for n, meta in integrity.file_sums(target, names).items()}
    manifest = {"format": CACHE_FORMAT, "model": name, "source": str(source),
                "source_size": source.stat().st_size, "files": files}
    integrity.write_json(target / "manifest.json", manifest, indent=2)
