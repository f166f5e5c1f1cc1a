import subprocess
import sys

import pytest
import torch

from finetune_utils import env


def test_pick_device_on_cpu_machine():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert env.pick_device().type in (expected, "mps")
    assert env.pick_device("cpu").type == "cpu"


def test_pick_device_rejects_unknown_and_unavailable():
    with pytest.raises(ValueError, match="Unknown device 'tpu'"):
        env.pick_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="not available on this machine"):
            env.pick_device("cuda")


def test_seed_everything_repeats_random_streams():
    import random

    import numpy as np

    env.seed_everything(7)
    first = (random.random(), np.random.rand(), torch.rand(3))
    env.seed_everything(7)
    second = (random.random(), np.random.rand(), torch.rand(3))
    assert first[0] == second[0] and first[1] == second[1]
    assert torch.equal(first[2], second[2])
    env.seed_everything(8)
    assert not torch.equal(torch.rand(3), second[2])


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True])
def test_seed_everything_rejects_bad_seeds(bad):
    with pytest.raises(ValueError, match="non-negative int"):
        env.seed_everything(bad)


def test_thread_report_and_colab():
    report = env.thread_report()
    assert report["usable_cores"] >= 1 and report["torch_threads"] >= 1
    assert env.in_colab() is False


def test_paths_and_overrides(monkeypatch, tmp_path):
    assert (env.repo_root() / "finetune_utils" / "env.py").is_file()
    assert env.data_dir() == env.repo_root() / "data"
    monkeypatch.setenv(env.CACHE_ENV, str(tmp_path / "c"))
    monkeypatch.setenv(env.DATA_ENV, str(tmp_path / "d"))
    assert env.cache_dir() == tmp_path / "c"
    assert env.data_dir() == tmp_path / "d"
    monkeypatch.delenv(env.CACHE_ENV)
    assert "finetune_utils" in str(env.cache_dir())


def test_report_prints_versions(capsys):
    info = env.report()
    assert info["torch"] == torch.__version__
    assert "torch_threads" in capsys.readouterr().out


def test_import_is_light():
    """Importing the package and its modules must not import torch/transformers."""
    code = (
        "import sys, finetune_utils, finetune_utils.env, finetune_utils.models, finetune_utils.data;"
        "heavy = [m for m in ('torch', 'transformers', 'datasets', 'sklearn') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_one_blas_thread_limits_blas_inside_the_block_only():
    from threadpoolctl import threadpool_info

    def blas_threads():
        return {pool["filepath"]: pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}

    before = blas_threads()
    assert before, "numpy should load a BLAS library"
    with env.one_blas_thread():
        assert set(blas_threads().values()) == {1}
        inside_torch = torch.get_num_threads()
    assert blas_threads() == before
    assert inside_torch == torch.get_num_threads()  # PyTorch's pool is left alone


def test_release_memory_collects_cycles_and_trims_the_heap_on_glibc():
    import gc
    import platform
    import weakref

    class Node:
        pass

    enabled = gc.isenabled()
    gc.disable()  # so that only release_memory can free the cycle below
    try:
        a, b = Node(), Node()
        a.other, b.other = b, a  # a reference cycle: reference counting alone never frees it
        alive = weakref.ref(a)
        del a, b
        assert alive() is not None
        trimmed = env.release_memory()
        assert alive() is None, "release_memory must run the garbage collector"
    finally:
        if enabled:
            gc.enable()
    assert trimmed is (sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc")
