"""A real JupyterLab session: open a lesson in headless Chromium, run all cells, answer a quiz.

What it does
------------
1. Picks the lesson: the fastest notebook in ``solutions/`` (by its declared
   ``metadata["course"]["cpu_minutes"]``) whose code contains ``quiz.show(`` (lesson 00, the tour).
   The lesson is *copied* into a temporary root folder, so nothing is written into the
   repository (no outputs, checkpoints or workspace files).
2. Starts JupyterLab from this Python (``sys.executable -m jupyterlab``) on 127.0.0.1, a free
   port, a random token, ``--no-browser``, with temporary Jupyter config/data/runtime/settings
   folders (update checks, news and the PyPI extension manager are off, so the server makes no
   outside connection; the test suite's network guard is on its PYTHONPATH and on the kernel's),
   and polls ``/api/status`` until it answers. The kernel is the venv's ``python3`` kernelspec.
3. Opens the lesson in Debian's Chromium (``/usr/bin/chromium``) driven by Playwright, waits for
   the kernel, clicks *Run → Run All Cells*, waits until the kernel is idle and every code cell
   has an execution count, then asserts: no error output (stderr output with "Traceback" or
   "Error"), one quiz per ``quiz.show(`` call, drawn by jupyterquiz's script (JupyterLab runs the
   script of a trusted HTML output), and a live one: clicking an option shows its feedback. The
   page must request nothing outside 127.0.0.1 (jupyterquiz fetches no MathJax here).
4. Saves a screenshot to ``_build/jupyterlab_test.png`` (also on failure, for diagnosis) and
   always stops the server and removes the temporary folders.

Chromium comes from Debian (``apt-get install chromium``; Playwright's own browser download is
not used). Without it (or without the ``playwright`` package) the test is skipped, except in CI
(environment variable ``CI`` set), where it fails. Every wait has an explicit timeout; the
run-all wait is bounded by twice the lesson's declared CPU budget plus a minute.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "solutions"  # the lessons with exercises solved: "Run All" must not stop at a stub
SCREENSHOT = REPO / "_build" / "jupyterlab_test.png"
LAB_CONFIG = REPO / "tools" / "lab_config"   # the student's JupyterLab configuration
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    # Belt and braces: no proxy, and no name resolution except loopback.
    "--no-proxy-server", "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
]
SERVER_START_S = 120      # JupyterLab answering /api/status (slow on a loaded 2-core machine)
PAGE_S = 120              # JupyterLab's page loaded, notebook open, kernel idle
QUIZ_S = 60               # quizzes rendered, feedback after a click
SHUTDOWN_S = 20           # server stopping after SIGTERM
STDERR_SELECTOR = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'


def _require_browser():
    """Skip without Chromium or Playwright, except in CI (CI set), where that is a failure."""
    problems = []
    if not CHROMIUM.exists():
        problems.append(f"{CHROMIUM} is missing: install Debian's chromium "
                        "(apt-get install -y --no-install-recommends chromium fonts-dejavu-core)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        problems.append("the Python package 'playwright' is missing: run `make setup` (extra 'ui')")
    if problems:
        message = "JupyterLab UI test needs a browser: " + "; ".join(problems)
        if os.environ.get("CI"):
            pytest.fail(message + " (CI is set, so this is not skipped)", pytrace=False)
        pytest.skip(message)


# ---------------------------------------------------------------- the lesson

def _code(nb: dict) -> list[str]:
    return ["".join(c["source"]) if isinstance(c["source"], list) else c["source"]
            for c in nb["cells"] if c["cell_type"] == "code"]


def _quiz_calls(nb: dict) -> int:
    """Number of (uncommented) ``quiz.show(`` calls in the notebook's code."""
    return sum(1 for src in _code(nb) for line in src.splitlines()
               if "quiz.show(" in line.split("#", 1)[0])


def pick_lesson(notebooks_dir: Path) -> Path | None:
    """The lesson with a ``quiz.show(`` cell and the smallest declared cpu_minutes, or None."""
    candidates = []
    for path in sorted(notebooks_dir.glob("[0-9][0-9]_*.ipynb")):
        nb = json.loads(path.read_text(encoding="utf-8"))
        if _quiz_calls(nb):
            minutes = nb.get("metadata", {}).get("course", {}).get("cpu_minutes", float("inf"))
            candidates.append((minutes, path.name, path))
    return min(candidates)[2] if candidates else None


def prepare_lesson(notebooks_dir: Path, root: Path) -> tuple[Path, dict]:
    """Copy the lesson to open into ``root`` (see the module docstring); return (copy, notebook)."""
    source = pick_lesson(notebooks_dir)
    assert source is not None, f"no lesson in {notebooks_dir} shows a self-check quiz (quiz.show)"
    target = root / source.name
    shutil.copyfile(source, target)
    return target, json.loads(target.read_text(encoding="utf-8"))


# ---------------------------------------------------------------- the server

def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _get_json(url: str, timeout: float = 5):
    with _NO_PROXY.open(url, timeout=timeout) as response:
        return json.load(response)


def _write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")


@contextlib.contextmanager
def jupyter_lab(root: Path, work: Path):
    """Run JupyterLab on ``root`` with every Jupyter folder inside ``work``; yield (base_url, token, log)."""
    config, data, runtime = work / "config", work / "data", work / "runtime"
    settings, workspaces, ipython = config / "lab" / "user-settings", work / "workspaces", work / "ipython"
    for d in (config, data, runtime, settings, workspaces, ipython):
        d.mkdir(parents=True, exist_ok=True)
    # Server side: no update check, no news feed, no PyPI extension manager (no outside connection).
    _write_json(config / "jupyter_server_config.json", {"LabApp": {
        "check_for_updates_class": "jupyterlab.NeverCheckForUpdate",
        "news_url": None,
        "extension_manager": "readonly",
    }})
    # Browser side: no news toast; render every cell (no windowing), so the DOM has all prompts.
    _write_json(settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings",
                {"checkForUpdates": False, "fetchNews": "false"})
    _write_json(settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings",
                {"windowingMode": "none"})

    env = dict(os.environ)
    env.update(
        JUPYTER_CONFIG_DIR=str(config), JUPYTER_DATA_DIR=str(data), JUPYTER_RUNTIME_DIR=str(runtime),
        JUPYTERLAB_SETTINGS_DIR=str(settings), JUPYTERLAB_WORKSPACES_DIR=str(workspaces),
        IPYTHONDIR=str(ipython), JUPYTER_PLATFORM_DIRS="0",
    )
    env.pop("JUPYTER_PATH", None)        # kernelspecs: this venv's (sys.prefix) only
    env["JUPYTER_CONFIG_PATH"] = str(LAB_CONFIG)   # as `make lab` (tools/workspace.py): no nbgrader UI, no news
    env.pop("MPLBACKEND", None)          # the kernel's inline backend, as for a student
    port, token = _free_port(), secrets.token_hex(24)
    base = f"http://127.0.0.1:{port}"
    log_path = work / "jupyterlab.log"
    cmd = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
        "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}", "--ServerApp.terminals_enabled=False",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")   # CI containers run as root
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"JupyterLab exited with {proc.returncode}:\n{_tail(log_path)}", pytrace=False)
            try:
                _get_json(f"{base}/api/status?token={token}", timeout=3)
                break
            except (urllib.error.URLError, OSError, ValueError):
                if time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not answer within {SERVER_START_S} s:\n{_tail(log_path)}",
                                pytrace=False)
                time.sleep(0.5)
        yield base, token, log_path
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM (the server shuts its kernels down), then SIGKILL the process group if needed."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=SHUTDOWN_S)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)   # the group we started: leftover kernels, if any
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def _tail(path: Path, n: int = 4000) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")[-n:]
    except OSError:
        return "(no log)"


# ---------------------------------------------------------------- the browser

_RUN_STATE_JS = """
() => {
  const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
  if (!panel) return null;
  const ind = panel.querySelector('.jp-Notebook-ExecutionIndicator');
  const prompts = [...panel.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(e => e.textContent.trim());
  const errors = [...panel.querySelectorAll('%s')].map(e => e.textContent)
                   .filter(t => /Traceback|Error/.test(t));
  return {
    status: ind ? ind.getAttribute('data-status') : null,
    cells: prompts.length,
    executed: prompts.filter(t => /\\[\\d+\\]/.test(t)).length,
    running: prompts.filter(t => t.includes('*')).length,
    errors: errors.map(t => t.slice(0, 1500)),
  };
}
""" % STDERR_SELECTOR


def _is_loopback(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("data", "blob", "about", "chrome-error") or parts.hostname in ("127.0.0.1", None)


def run_lesson_in_browser(base: str, token: str, lesson: Path, nb: dict, log_path: Path) -> dict:
    """Open ``lesson`` in JupyterLab, run all cells, check outputs and answer a quiz; return timings."""
    from playwright.sync_api import expect, sync_playwright

    # Collapsed cells (jupyter.source_hidden: drawing code) show no input prompt, so they are not counted.
    expected_cells = sum(1 for c in nb["cells"] if c["cell_type"] == "code" and "".join(c["source"]).strip()
                         and not c.get("metadata", {}).get("jupyter", {}).get("source_hidden"))
    quizzes = _quiz_calls(nb)
    minutes = nb.get("metadata", {}).get("course", {}).get("cpu_minutes", 3.0)
    run_all_s = int(2 * minutes * 60 + 60)
    timings = {}
    outside_requests: list[str] = []
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
                                     timeout=60_000)
        page = None
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            context.set_default_timeout(PAGE_S * 1000)
            page = context.new_page()
            page.on("request", lambda r: None if _is_loopback(r.url) else outside_requests.append(r.url))

            spec = _get_json(f"{base}/api/kernelspecs?token={token}")["kernelspecs"]["python3"]["spec"]
            assert Path(spec["argv"][0]).parent.parent.resolve() == Path(sys.prefix).resolve(), (
                f"kernel 'python3' is not this venv's: {spec['argv']}")

            start = time.monotonic()
            page.goto(f"{base}/lab/tree/{lesson.name}?token={token}", wait_until="domcontentloaded")
            panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
            expect(panel).to_have_count(1, timeout=PAGE_S * 1000)
            # The execution indicator says "idle" before any kernel exists ("No Kernel |
            # Initializing"): wait for the venv's kernel by name, and idle, in the status bar.
            expect(panel.locator(".jp-KernelName")).to_have_text(spec["display_name"], timeout=PAGE_S * 1000)
            expect(page.locator("#jp-main-statusbar")).to_contain_text(
                f"{spec['display_name']} | Idle", timeout=PAGE_S * 1000)
            timings["open_s"] = time.monotonic() - start
            # The student's JupyterLab has no teacher tools: no Nbgrader menu, no formgrader page.
            expect(page.locator("#jp-MainMenu .lm-MenuBar-itemLabel", has_text="Nbgrader")).to_have_count(0)
            with pytest.raises(urllib.error.HTTPError, match="404"):
                _get_json(f"{base}/formgrader?token={token}")

            # Run → Run All Cells, through the menu bar like a student.
            start = time.monotonic()
            page.locator("#jp-MainMenu .lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
            page.locator(".lm-Menu .lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
            state = None
            deadline = time.monotonic() + run_all_s
            while time.monotonic() < deadline:
                state = page.evaluate(_RUN_STATE_JS)
                if (state and state["status"] == "idle" and not state["running"]
                        and (state["executed"] >= expected_cells or state["errors"])):
                    break
                page.wait_for_timeout(1000)
            else:
                pytest.fail(f"Run All did not finish within {run_all_s} s: {state}\n{_tail(log_path)}",
                            pytrace=False)
            timings["run_all_s"] = time.monotonic() - start

            assert not state["errors"], "error output in JupyterLab:\n\n" + "\n---\n".join(state["errors"])
            assert state["executed"] >= expected_cells, state

            # The quizzes: jupyterquiz's HTML, drawn by its own script (no kernel, no widget manager).
            boxes = panel.locator(".jp-OutputArea-output .course-quiz")
            expect(boxes).to_have_count(quizzes, timeout=QUIZ_S * 1000)
            expect(boxes.locator(".Quiz")).to_have_count(quizzes, timeout=QUIZ_S * 1000)
            quiz = boxes.filter(has=page.locator("label.MCButton")).first
            quiz.scroll_into_view_if_needed(timeout=QUIZ_S * 1000)
            expect(quiz.locator(".Feedback")).to_have_text("")   # no explanation before an answer
            quiz.locator("label.MCButton").first.click(timeout=QUIZ_S * 1000)
            expect(quiz.locator(".Feedback")).to_contain_text(re.compile(r"✓ Right|✗ Not quite"), timeout=QUIZ_S * 1000)
            quiz.evaluate("e => e.scrollIntoView({block: 'start'})")   # the whole quiz in the screenshot
            page.wait_for_timeout(500)
        finally:
            if page is not None:
                with contextlib.suppress(Exception):
                    page.screenshot(path=str(SCREENSHOT), timeout=30_000)
            with contextlib.suppress(Exception):
                browser.close()

    assert not outside_requests, f"the page requested non-loopback URLs: {outside_requests[:10]}"
    return timings


def test_lesson_runs_in_jupyterlab_with_its_quizzes():
    _require_browser()
    work = Path(tempfile.mkdtemp(prefix="finetune-lab-"))
    try:
        root = work / "notebooks"
        root.mkdir()
        lesson, nb = prepare_lesson(NOTEBOOKS, root)
        start = time.monotonic()
        with jupyter_lab(root, work) as (base, token, log_path):
            server_s = time.monotonic() - start
            timings = run_lesson_in_browser(base, token, lesson, nb, log_path)
        print(f"\n{lesson.name}: server {server_s:.0f} s, open {timings['open_s']:.0f} s, "
              f"run all {timings['run_all_s']:.0f} s; screenshot {SCREENSHOT}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
