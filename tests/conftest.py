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


def pytest_sessionfinish(session, exitstatus):
    if _netlog.exists() and _netlog.read_text().strip():
        print("\nNETWORK ACCESS ATTEMPTED DURING TESTS:\n  " + _netlog.read_text().strip())
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def guard():
    return _guard
