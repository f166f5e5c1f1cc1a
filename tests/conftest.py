"""Test-suite set-up: offline, no telemetry, and no network at all.

tests/netguard/sitecustomize.py is put on PYTHONPATH so that this process and
every process it starts (notebook kernels run by nbval, subprocess tests) refuse
non-loopback connections; attempts are logged and fail the session.

While nbval runs a lesson of solutions/, the outputs its kernel returned for each cell are
kept, and when every code cell of the lesson has passed, the executed lesson is written to
_build/notebooks/ (where tools/run_all.py writes its copies): tools/build_book.py and the book
test (tests/test_book.py, run after the lessons) build the rendered course from these, so the
lessons are not executed a second time. The lessons' kernels get matplotlib's inline backend,
as a student's do, so their figures are outputs.
"""

import copy
import os
import sys
import tempfile
import time
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
# Parallel runs (`make test` runs `pytest -n 2`, pytest-xdist): the workers share the cores, so each one, and the
# kernels and processes it starts, gets its share of threads instead of one thread per core each (which would
# make the workers fight over the cores). A value the user set is kept.
if os.environ.get("PYTEST_XDIST_WORKER"):
    _share = str(max(1, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))))
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, _share)
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
# runs of the training command start several processes; the tests that use a freshly converted SmolLM2
# cache (tests/test_models.py's fresh_cache) convert the GGUF file from scratch.
SLOW_FILES = {"test_jupyterlab_ui.py", "test_nbgrader.py", "test_book.py"}
SLOW_TESTS = ("endless_loop", "two_processes", "gradient_accumulation", "show_displays_a_quiz_in_a_kernel", "toy_lesson")


LAST_FILES = ("test_book.py",)   # built from the lessons that nbval executes in the same session
# With pytest-xdist (`make test`: `pytest -n 2`), each file runs whole, in order, on one worker (a lesson's cells
# share one kernel); lessons 03 and 04 share a worker because 04 reuses the model 03 saves in _build/runs/.
TOGETHER = {"03_freezing_and_lora.ipynb": "lessons 03-04", "04_inference_and_evaluation.ipynb": "lessons 03-04"}


@pytest.hookimpl(optionalhook=True)   # a pytest-xdist hook: without xdist it is never called
def pytest_xdist_make_scheduler(config, log):
    """Files as units of work (xdist's --dist loadfile), with the lessons of TOGETHER as one unit. (xdist's own
    xdist_group marks do not group with pytest 9, which no longer lets a plugin rename a test's node id.)"""
    from xdist.scheduler import LoadScopeScheduling

    class ByFile(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            file = nodeid.split("::", 1)[0]
            return TOGETHER.get(Path(file).name, file)

        def schedule(self) -> None:
            self.config.option.loadscopereorder = False  # hand out units in collection order: longest lessons first
            super().schedule()

    return ByFile(config, log)


def _declared_minutes(item) -> float:
    """A lesson cell's declared budget (its notebook's metadata), for ordering; 0 for the other tests."""
    nb = getattr(getattr(item, "parent", None), "nb", None)
    return float(nb.metadata.get("course", {}).get("cpu_minutes", 0)) if nb is not None else 0.0


def pytest_collection_modifyitems(config, items):
    for item in items:
        if (item.path.suffix == ".ipynb" or item.path.name in SLOW_FILES or any(s in item.name for s in SLOW_TESTS)
                or "fresh_cache" in getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
    # The lessons first, the longest first (on several workers the short test files then fill the gaps instead of
    # one long lesson running alone at the end), the book test last (stable order otherwise).
    items.sort(key=lambda item: (item.path.name in LAST_FILES, item.path.suffix != ".ipynb", -_declared_minutes(item)))


# ---------------------------------------------------------------- nbval's executed lessons

REPO = Path(__file__).resolve().parent.parent
LESSONS = REPO / "solutions"
EXECUTED = REPO / "_build" / "notebooks"


class ExecutedLessons:
    """Writes each lesson that nbval ran in full, with the outputs its kernel returned, to _build/notebooks/.

    nbval's cell item (``IPyNbCell``) keeps what the kernel sent back for its cell in
    ``item.test_outputs`` (streams merged, as nbval compares them). When the last cell of a lesson
    has run, and every code cell of it passed, the lesson as nbval read it is written with those
    outputs; a lesson with a failed, skipped or deselected cell is not written (a partial run is
    not an executed lesson). A registered plugin, not conftest hooks: pytest calls a conftest's
    per-test hooks only for tests under its folder, and the lessons are in solutions/.
    """

    def __init__(self, folder: Path = EXECUTED):
        self.folder = folder
        self.outputs: dict[Path, dict[int, list]] = {}
        self.broken: set[Path] = set()
        self.ran: set[str] = set()        # lessons whose cells nbval ran in this session
        self.written: dict[str, Path] = {}

    @staticmethod
    def _lesson_cell(item) -> bool:
        return (item.path.suffix == ".ipynb" and item.path.parent == LESSONS
                and hasattr(item, "test_outputs") and hasattr(item, "cell_num"))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_setup(self, item):
        """The lesson's kernel (started in its first cell's set-up) gets matplotlib's inline backend, as a
        student's kernel does: this suite sets MPLBACKEND=Agg for its own process, and a kernel that
        inherited it would show no figure at all."""
        if not self._lesson_cell(item):
            return (yield)
        backend = os.environ.pop("MPLBACKEND", None)
        try:
            return (yield)
        finally:
            if backend is not None:
                os.environ["MPLBACKEND"] = backend

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item, call):
        report = yield
        if self._lesson_cell(item):
            self.ran.add(item.path.name)
            if report.failed or (report.when == "call" and not report.passed):
                self.broken.add(item.path)
            elif report.when == "call":
                self.outputs.setdefault(item.path, {})[item.cell_num] = copy.deepcopy(item.test_outputs or [])
        return report

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item, nextitem):
        result = yield
        if self._lesson_cell(item) and (nextitem is None or nextitem.path != item.path):
            self._finish(item.parent)
        return result

    def _finish(self, lesson_file) -> None:
        path = lesson_file.path
        outputs = self.outputs.pop(path, {})
        if path in self.broken:
            return
        import nbformat

        nb = copy.deepcopy(lesson_file.nb)   # the notebook as nbval read and ran it
        code = [cell for cell in nb.cells if cell.cell_type == "code"]
        if sorted(outputs) != list(range(len(code))):
            return   # some cells did not run (deselected or stopped early)
        for number, cell in enumerate(code):
            cell.outputs = [nbformat.from_dict(dict(out)) for out in outputs[number]]
            cell.execution_count = number + 1   # nbval runs the cells in order in one kernel (store_history off)
            for out in cell.outputs:
                if out.output_type == "execute_result":
                    out.execution_count = number + 1
        nb.metadata["course_build"] = {"executed_by": "nbval (pytest)", "executed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        nbformat.validate(nb)
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.folder / path.name
        partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
        nbformat.write(nb, partial)
        os.replace(partial, target)   # a reader never sees half a notebook
        self.written[path.name] = target


def pytest_configure(config):
    if not config.pluginmanager.has_plugin("executed_lessons"):
        config.pluginmanager.register(ExecutedLessons(), "executed_lessons")
    if not config.pluginmanager.has_plugin("shortcut_suite"):   # tests/shortcut_suite.py: lazy answers are refused
        sys.path.insert(0, str(Path(__file__).parent))
        from shortcut_suite import ShortcutSuite

        config.pluginmanager.register(ShortcutSuite(), "shortcut_suite")


@pytest.fixture(scope="session")
def executed_lessons(request) -> ExecutedLessons:
    """What the session's nbval run executed and wrote (see ExecutedLessons)."""
    return request.config.pluginmanager.get_plugin("executed_lessons")


def pytest_sessionfinish(session, exitstatus):
    if _netlog.exists() and _netlog.read_text().strip():
        print("\nNETWORK ACCESS ATTEMPTED DURING TESTS:\n  " + _netlog.read_text().strip())
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def guard():
    return _guard
