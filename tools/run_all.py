"""Execute every lesson headless, as a student would run it top to bottom.

    python tools/run_all.py [solutions/03_*.ipynb ...]

Executed copies go to _build/notebooks/ (ignored by git). Prints one row per
notebook: wall time, the kernel's CPU time (user + system, all its threads), its
peak memory (RSS, sampled every 0.2 s), and pass/fail, against the budget the notebook declares in its metadata
(``metadata["course"]["cpu_minutes"]`` and ``["memory_gb"]``). Exits 1 if any fails.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import os
import shutil
import signal
import sys
import tempfile
import time
from contextlib import asynccontextmanager
from pathlib import Path

import nbformat
import psutil
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from finetune_utils.env import PeakMemory  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "_build" / "notebooks"


def client_for(nb, folder: Path, timeout: int = 1800, **kwargs) -> NotebookClient:
    """An nbclient for ``nb`` run in ``folder``, its kernel on local sockets (IPC) where the OS has them:
    no TCP ports, and no warning from the kernel about unencrypted TCP for every notebook.

    The kernel manager is the asynchronous one that nbclient itself uses: with the blocking
    ``KernelManager`` nbclient's wait for a cell's output blocks its event loop, and the per-cell
    ``timeout`` never fires (a cell that loops forever hung the run)."""
    if os.name == "posix":  # the socket files go to a private temporary folder (an absolute path: the kernel's cwd differs)
        sockets = tempfile.mkdtemp(prefix="kernel-")
        atexit.register(shutil.rmtree, sockets, ignore_errors=True)
        _SOCKETS.append(sockets)
        km = AsyncKernelManager(kernel_name="python3", transport="ipc", ip=str(Path(sockets) / "ipc"))
    else:
        km = AsyncKernelManager(kernel_name="python3")
    client = _Client(nb, km=km, timeout=timeout, kernel_name="python3",
                     resources={"metadata": {"path": str(folder)}}, **kwargs)
    _CLIENTS.append(client)
    return client


_CLIENTS: list[NotebookClient] = []   # every client made by client_for: their kernels are killed on a signal
_SOCKETS: list[str] = []


def stop_kernel(client: NotebookClient) -> None:
    """Shut down the kernel of ``client`` if it is still up (nbclient shuts down only a kernel it started
    itself, km=None); kill its process if it does not answer."""
    km = client.km
    process = getattr(getattr(km, "provisioner", None), "process", None)
    if km is None or process is None or process.poll() is not None:
        return
    try:
        run_sync(km.shutdown_kernel)(now=True)
    except Exception:  # noqa: BLE001 - a kernel that does not answer: kill its process
        process.kill()


class _Client(NotebookClient):
    """nbclient's client, except that SIGINT and SIGTERM keep the handler of :func:`exit_on_signals`: nbclient
    puts its own on the event loop while a notebook runs, which only schedules a clean-up and lets the
    run go on (a teacher's Ctrl-C or a job scheduler's SIGTERM was ignored)."""

    @asynccontextmanager
    async def async_setup_kernel(self, **kwargs):
        async with super().async_setup_kernel(**kwargs):
            if _ON_SIGNAL:
                loop = asyncio.get_running_loop()
                for signum in (signal.SIGTERM, signal.SIGINT):
                    loop.add_signal_handler(signum, _ON_SIGNAL[0], signum, None)
            yield


_ON_SIGNAL: list = []


def exit_on_signals(message: str) -> None:
    """SIGTERM and SIGINT end the run at once, even while a cell runs (nbclient's event loop would carry on
    with the interrupted cell): every kernel this script started is killed, its files removed, ``message``
    printed as one line, and the exit status is 128 + the signal's number (143, 130)."""
    def stop(signum, frame):
        for client in _CLIENTS:
            process = getattr(getattr(client.km, "provisioner", None), "process", None)
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(timeout=10)
            Path(client.km.connection_file).unlink(missing_ok=True)
        for folder in _SOCKETS:
            shutil.rmtree(folder, ignore_errors=True)
        print(f"stopped by {signal.Signals(signum).name}: {message}", file=sys.stderr, flush=True)
        os._exit(128 + signum)

    _ON_SIGNAL[:] = [stop]
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)


def run(path: Path, timeout: int = 1800) -> dict:
    nb = nbformat.read(path, as_version=4)
    budget = nb.metadata.get("course", {})
    client = client_for(nb, path.parent, timeout)
    start, error, monitor, cpu = time.perf_counter(), None, None, None
    try:
        with client.setup_kernel():
            kernel = psutil.Process(client.km.provisioner.process.pid)
            monitor = PeakMemory(kernel.pid, interval=0.2)
            try:
                with monitor:
                    client.execute(cleanup_kc=False)  # kernel stays up until the with-block ends
            finally:
                try:
                    times = kernel.cpu_times()
                    cpu = times.user + times.system
                except psutil.Error:  # the kernel died: no CPU figure
                    pass
    except CellExecutionError as err:
        error = str(err).strip().splitlines()[-1][:120]
    except Exception as err:  # noqa: BLE001 - a table row, not a crash
        error = f"{err.__class__.__name__}: {err}"[:120]
    finally:
        # nbclient shuts down only a kernel it started itself (km=None); ours would stay up, idle
        # with the lesson's models in memory, until this script exits.
        stop_kernel(client)
    peak = monitor.peak if monitor else 0
    wall = time.perf_counter() - start
    OUT.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, OUT / path.name)
    return {
        "notebook": path.name,
        "wall_s": wall,
        "cpu_s": cpu,
        "peak_gb": peak / 2**30,
        "budget_min": budget.get("cpu_minutes"),
        "budget_gb": budget.get("memory_gb"),
        "error": error,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks to run (default: every lesson in solutions/, exercises solved)")
    args = parser.parse_args(argv)
    exit_on_signals("the run was stopped; the lessons' kernels were shut down")
    paths = args.notebooks or sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        parser.error(f"no such notebook: {', '.join(missing)}")
    rows = []
    for path in paths:
        print(f"running {path.name} ...", flush=True)
        rows.append(run(path))
    print()
    header = f"{'notebook':<40} {'wall':>8} {'budget':>8} {'CPU':>8} {'peak RSS':>9} {'budget':>7}  result"
    print(header)
    print("-" * len(header))
    failed = 0
    for r in rows:
        flags = []
        if r["budget_min"] is not None and r["wall_s"] > 60 * r["budget_min"]:
            flags.append("over time budget")
        if r["budget_gb"] is not None and r["peak_gb"] > r["budget_gb"]:
            flags.append("over memory budget")
        result = "FAIL: " + r["error"] if r["error"] else "pass"
        failed += bool(r["error"])
        budget_t = f"{r['budget_min']:.1f}m" if r["budget_min"] is not None else "-"
        budget_m = f"{r['budget_gb']:.1f}G" if r["budget_gb"] is not None else "-"
        print(
            f"{r['notebook']:<40} {r['wall_s']:>7.1f}s {budget_t:>8} {r['cpu_s'] or 0:>7.1f}s {r['peak_gb']:>8.2f}G {budget_m:>7}  "
            + result + ("  [" + ", ".join(flags) + "]" if flags else "")
        )
    print("-" * len(header))
    total_wall = sum(r["wall_s"] for r in rows)
    total_cpu = sum(r["cpu_s"] or 0 for r in rows)
    total_budget = sum(r["budget_min"] or 0 for r in rows)
    print(f"{'all ' + str(len(rows)) + ' notebooks':<40} {total_wall:>7.1f}s {total_budget:>7.1f}m {total_cpu:>7.1f}s "
          f"{max((r['peak_gb'] for r in rows), default=0):>8.2f}G (max)")
    over = [r["notebook"] for r in rows if r["budget_min"] is not None and r["wall_s"] > 60 * r["budget_min"]]
    if over:
        print(f"over their time budget: {', '.join(over)}")
    print(f"\n{len(rows) - failed} passed, {failed} failed; executed copies in {OUT.relative_to(ROOT)}/")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
