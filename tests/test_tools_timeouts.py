"""tools/score.py and tools/run_all.py stop a cell at its timeout and report it, and end at once on SIGTERM or
SIGINT without leaving a kernel behind (a student's endless loop must not hang `make score` or a grading run)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import psutil

ROOT = Path(__file__).resolve().parent.parent


def loop_lesson(folder: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    statement = nbformat.v4.new_markdown_cell("**Exercise 1 — count (1 point).**")
    answer = nbformat.v4.new_code_cell("### BEGIN SOLUTION\nn = 0\nwhile True:\n    n += 1\n### END SOLUTION")
    answer.metadata["nbgrader"] = {"grade_id": "ex1_answer", "solution": True, "grade": False}
    check = nbformat.v4.new_code_cell("assert True")   # passes whenever it runs: only the timeout may fail the exercise
    check.metadata["nbgrader"] = {"grade_id": "ex1_check", "solution": False, "grade": True, "points": 1}
    nb.cells = [statement, answer, check]
    path = folder / "loop.ipynb"
    nbformat.write(nb, path)
    return path


def kernels_in(folder: Path) -> list[int]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if "ipykernel_launcher" in " ".join(proc.info["cmdline"] or []) and Path(proc.cwd()) == folder:
                found.append(proc.pid)
        except psutil.Error:
            continue
    return found


def wait_for_kernel(folder: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not kernels_in(folder):
        assert time.monotonic() < deadline, "the kernel did not start"
        time.sleep(0.5)
    time.sleep(3)   # into the endless cell


def test_score_stops_an_endless_loop_at_the_timeout(tmp_path):
    path = loop_lesson(tmp_path)
    start = time.monotonic()
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "score.py"), str(path), "--timeout", "3"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "0/1" in run.stdout and "longer than the timeout (3 s" in run.stdout, run.stdout
    assert time.monotonic() - start < 100
    assert not kernels_in(tmp_path), "a kernel was left behind"


def test_score_and_run_all_end_on_a_signal_during_an_endless_loop(tmp_path):
    path = loop_lesson(tmp_path)
    for tool, signum, status in [("score.py", signal.SIGTERM, 143), ("run_all.py", signal.SIGINT, 130)]:
        proc = subprocess.Popen([sys.executable, str(ROOT / "tools" / tool), str(path)], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_for_kernel(tmp_path)
            proc.send_signal(signum)
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == status, (tool, proc.returncode, err[-2000:])
        assert err.strip().splitlines()[-1].startswith(f"stopped by {signal.Signals(signum).name}"), err[-2000:]
        assert "Traceback" not in err, err[-2000:]
        time.sleep(1)
        assert not kernels_in(tmp_path), f"{tool} left a kernel behind"
