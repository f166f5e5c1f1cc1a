"""Test-suite set-up: offline, no telemetry, and no network at all.

tests/netguard/sitecustomize.py is put on PYTHONPATH so that this process and
every process it starts (notebook kernels run by nbval, subprocess tests) refuse
non-loopback connections; attempts are logged and fail the session.
"""

import os
import sys
import tempfile
from pathlib import Path

import pytest

GUARD_DIR = Path(__file__).parent / "netguard"

os.environ.update(
    HF_HUB_OFFLINE="1",
    TRANSFORMERS_OFFLINE="1",
    HF_DATASETS_OFFLINE="1",
    HF_HUB_DISABLE_TELEMETRY="1",
    DO_NOT_TRACK="1",
    MPLBACKEND="Agg",
    TOKENIZERS_PARALLELISM="false",
    PYTHONPATH=os.pathsep.join(filter(None, [str(GUARD_DIR), os.environ.get("PYTHONPATH")])),
)
_netlog = Path(tempfile.mkdtemp(prefix="finetune-netlog-")) / "blocked.log"
os.environ["FINETUNE_UTILS_NETLOG"] = str(_netlog)
sys.path.insert(0, str(GUARD_DIR))
import sitecustomize as _guard  # noqa: E402  (the venv has no sitecustomize of its own)

if not hasattr(_guard, "guarded_connect"):  # another sitecustomize was imported first
    import importlib.util

    _spec = importlib.util.spec_from_file_location("netguard", GUARD_DIR / "sitecustomize.py")
    _guard = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_guard)


# The slow lane (`make test` runs everything; `make test-fast` deselects these): the lessons under
# nbval, nbgrader's round and the browser test execute whole lessons; the multi-process and resume
# runs of the training command start several processes.
SLOW_FILES = {"test_jupyterlab_ui.py", "test_nbgrader.py"}
SLOW_TESTS = ("two_processes", "stop_with_not_implemented", "show_displays_a_widget_in_a_kernel", "toy_lesson")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.suffix == ".ipynb" or item.path.name in SLOW_FILES or any(s in item.name for s in SLOW_TESTS):
            item.add_marker(pytest.mark.slow)


def pytest_sessionfinish(session, exitstatus):
    if _netlog.exists() and _netlog.read_text().strip():
        print("\nNETWORK ACCESS ATTEMPTED DURING TESTS:\n  " + _netlog.read_text().strip())
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def guard():
    return _guard
