"""The environment a lesson runs in: device, seeds, Colab, threads, paths.

Every notebook starts with::

    from finetune_utils import env
    env.report()          # what we run on
    env.seed_everything(0)
    device = env.pick_device()
"""

from __future__ import annotations

import contextlib
import os
import random
import sys
from pathlib import Path

#: Environment variable that moves the model cache (the dequantized SmolLM2 etc.).
CACHE_ENV = "FINETUNE_UTILS_CACHE"
#: Environment variable that points the course at another data folder.
DATA_ENV = "FINETUNE_UTILS_DATA"
#: Environment variable for the one GPU / larger-settings switch of every lesson.
FULL_ENV = "FINETUNE_COURSE_FULL"


def in_colab() -> bool:
    """True when running inside Google Colab."""
    return "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ


def pick_device(prefer: str | None = None):
    """Return the best available ``torch.device``: CUDA, then Apple MPS, then CPU. Taught in lesson 00.

    ``prefer`` ("cpu", "cuda", "mps") forces a choice; asking for a device that is
    not available raises a ``ValueError`` that says what is available.
    """
    import torch

    available = ["cpu"]
    if torch.cuda.is_available():
        available.insert(0, "cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        available.insert(1 if "cuda" in available else 0, "mps")
    if prefer is None:
        return torch.device(available[0])
    if prefer not in ("cpu", "cuda", "mps"):
        raise ValueError(f"Unknown device {prefer!r}: use 'cpu', 'cuda' or 'mps'.")
    if prefer not in available:
        raise ValueError(
            f"Device {prefer!r} is not available on this machine; available: {available}. "
            "Call pick_device() without an argument to take the best one."
        )
    return torch.device(prefer)


def full_run() -> bool:
    """The lessons' one switch for larger settings (GPU users): ``FINETUNE_COURSE_FULL=1``.

    Off by default, so that every lesson runs in minutes on a 2-core CPU. When on,
    lessons use more data, epochs and seeds (and, online, may name a larger hub model).
    """
    return os.environ.get(FULL_ENV, "").strip().lower() in ("1", "true", "yes")


def seed_everything(seed: int = 0, deterministic: bool = True) -> int:
    """Seed Python, NumPy and PyTorch (CPU and CUDA) so that runs repeat. Taught in lesson 00.

    With ``deterministic=True`` PyTorch is also asked for deterministic kernels
    where it has them (``warn_only``, so an op without one still runs).
    Returns the seed, so that ``seed = seed_everything(3)`` reads well.
    """
    import numpy as np
    import torch

    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    return seed


def thread_report() -> dict:
    """How many CPU cores this machine has and how many threads torch uses."""
    import torch

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        usable = os.cpu_count() or 1
    return {
        "cpu_count": os.cpu_count(),
        "usable_cores": usable,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
    }


@contextlib.contextmanager
def one_blas_thread():
    """Run the block with a single BLAS thread (numpy's and scipy's OpenBLAS or MKL). Taught in lesson 01.

    scikit-learn's small fits (a logistic regression on a few hundred rows) make many
    tiny BLAS calls; with more than one BLAS thread, waking the threads for each call
    costs more than the work. The predictions are the same; PyTorch's own thread pool
    is not touched.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


def repo_root() -> Path:
    """The course repository's root (the folder that holds ``data/`` and ``notebooks/``)."""
    return Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """The folder with the course's data sets (``$FINETUNE_UTILS_DATA`` overrides it). Taught in lesson 00."""
    return Path(os.environ.get(DATA_ENV) or repo_root() / "data")


def cache_dir() -> Path:
    """Where converted models are cached (``$FINETUNE_UTILS_CACHE`` overrides it). Taught in lesson 00.

    The default is the user cache folder, e.g. ``~/.cache/finetune_utils`` on Linux.
    """
    env_value = os.environ.get(CACHE_ENV)
    if env_value:
        return Path(env_value).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("finetune_utils"))


def report(print_it: bool = True) -> dict:
    """Collect (and print) what a lesson runs on: versions, device, threads, paths."""
    import platform

    import torch
    import transformers

    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "device": str(pick_device()),
        "colab": in_colab(),
        **thread_report(),
        "data_dir": str(data_dir()),
        "cache_dir": str(cache_dir()),
    }
    if print_it:
        width = max(map(len, info))
        for key, value in info.items():
            print(f"{key:<{width}}  {value}")
    return info


class PeakMemory:
    """Peak resident memory (RSS) of this process and its children, sampled in a thread. Taught in lesson 03.

    ``with PeakMemory() as mem: ...`` then ``mem.peak_gb`` (peak during the block) and
    ``mem.delta_gb`` (peak minus the RSS at the start). On a CPU this is the honest
    measure of what training needs; RSS includes memory the allocator keeps cached.
    """

    def __init__(self, pid: int | None = None, interval: float = 0.05):
        import psutil

        self.process = psutil.Process(pid)
        self.interval = interval
        self.start = self.peak = 0

    def sample(self) -> int:
        import psutil

        try:
            procs = [self.process, *self.process.children(recursive=True)]
            return sum(p.memory_info().rss for p in procs)
        except psutil.Error:
            return 0

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.sample())
            self._stop.wait(self.interval)

    def __enter__(self):
        import threading

        self.start = self.peak = self.sample()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.sample())

    @property
    def peak_gb(self) -> float:
        return self.peak / 2**30

    @property
    def delta_gb(self) -> float:
        return (self.peak - self.start) / 2**30


def make_readable(folder) -> None:
    """Give the files in ``folder`` the permissions the user's umask gives new files (safetensors writes its weights
    with mode 0600, so on a shared machine nobody else could read a saved model)."""
    umask = os.umask(0)
    os.umask(umask)
    for path in Path(folder).rglob("*"):
        if path.is_file() and not path.is_symlink():
            path.chmod(0o666 & ~umask)


def release_memory() -> bool:
    """Collect Python's garbage and ask the C library to hand freed heap memory back to the operating system.

    Call it before a :class:`PeakMemory` block, so that memory an earlier run freed but the allocator kept
    (still counted in RSS) neither hides nor inflates the next run's needs (lesson 03 measures four strategies
    one after the other). Handing memory back needs glibc's ``malloc_trim`` (Linux); elsewhere only the
    garbage is collected. Returns True when the heap was trimmed.
    """
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not Linux with glibc: nothing to trim
        return False
    return True
