"""Teachers grade with nbgrader: every lesson releases, and autograding gives the points it should.

Runs nbgrader's own commands on a course folder laid out as nbgrader expects
(``source/<assignment>/<notebook>``), with the lessons of ``solutions/`` as the sources:
``generate_assignment`` on every lesson (one call); ``autograde`` on one lesson twice, for a student who
handed in the solved notebook (full points) and one who handed in the released notebook
untouched (zero points on every exercise, the rest of the lesson still run).
"""

import atexit
import csv
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
LESSONS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
GRADED_LESSON = "00_setup_and_tour"  # the cheapest lesson with an exercise: autograde runs it twice

pytest.importorskip("nbgrader", reason="nbgrader is in the dev extra: pip install -e '.[dev]'")


def kernel_transport() -> list[str]:
    """nbgrader's kernels on local sockets (IPC), as tools/run_all.py runs the lessons: no TCP ports, and no
    kernel warning about unencrypted TCP. nbgrader passes its configuration on to jupyter_client's
    KernelManager, whose transport and socket path are ordinary options."""
    if os.name != "posix":
        return []
    sockets = tempfile.mkdtemp(prefix="nbgrader-kernel-")  # short: a socket path has at most ~100 characters
    atexit.register(shutil.rmtree, sockets, ignore_errors=True)
    return ["--KernelManager.transport=ipc", f"--KernelManager.ip={sockets}/ipc"]


def nbgrader(course: Path, *args: str) -> subprocess.CompletedProcess:
    # nbgrader calls `alembic` by name: the environment's bin folder goes first on PATH.
    env = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    return subprocess.run([sys.executable, "-m", "nbgrader", *args, f"--CourseDirectory.root={course}", *kernel_transport()],
                          capture_output=True, text=True, cwd=course, env=env, timeout=1800)


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    course = tmp_path_factory.mktemp("course")
    for path in LESSONS:
        (course / "source" / path.stem).mkdir(parents=True)
        shutil.copy(path, course / "source" / path.stem / path.name)
    return course


def test_generate_assignment_releases_every_lesson(course):
    # one call releases every lesson ("*" is a pattern over source/'s folders), as TEACHING.md shows
    run = nbgrader(course, "generate_assignment", "*", "--force")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    for path in LESSONS:
        released = nbformat.read(course / "release" / path.stem / path.name, as_version=4)
        text = "\n".join(c.source for c in released.cells)
        assert "BEGIN SOLUTION" not in text and "END SOLUTION" not in text, path.name


def test_autograde_gives_full_points_to_the_solution_and_none_to_the_stubs(course):
    name = f"{GRADED_LESSON}.ipynb"
    if not (course / "release" / GRADED_LESSON / name).exists():
        run = nbgrader(course, "generate_assignment", GRADED_LESSON, "--force")
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    for student, notebook in [("solved", course / "source" / GRADED_LESSON / name),
                              ("untouched", course / "release" / GRADED_LESSON / name)]:
        (course / "submitted" / student / GRADED_LESSON).mkdir(parents=True)
        shutil.copy(notebook, course / "submitted" / student / GRADED_LESSON / name)
    # nbgrader stops a cell after 30 s by default; the lessons' training cells take longer on a CPU.
    run = nbgrader(course, "autograde", GRADED_LESSON, "--force", "--ExecutePreprocessor.timeout=1800")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "without encryption" not in run.stdout + run.stderr, "nbgrader's kernels ran over TCP"
    run = nbgrader(course, "generate_feedback", GRADED_LESSON, "--force")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert list((course / "feedback" / "solved" / GRADED_LESSON).glob("*.html")), "no feedback written"
    run = nbgrader(course, "export", f"--to={course / 'grades.csv'}")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    grades = {row["student_id"]: row for row in csv.DictReader((course / "grades.csv").open())
              if row["assignment"] == GRADED_LESSON}
    max_score = float(grades["solved"]["max_score"])
    assert max_score > 0
    assert float(grades["solved"]["score"]) == max_score, grades["solved"]
    assert float(grades["untouched"]["score"]) == 0.0, grades["untouched"]

    # The untouched copy still ran the lesson: every code cell before the first exercise has run without error.
    graded = nbformat.read(course / "autograded" / "untouched" / GRADED_LESSON / name, as_version=4)
    first = next(i for i, c in enumerate(graded.cells) if c.metadata.get("nbgrader", {}).get("solution"))
    for index, cell in enumerate(graded.cells[:first]):
        if cell.cell_type == "code":
            assert cell.execution_count is not None, f"cell {index} did not run"
            assert not [o for o in cell.outputs if o.output_type == "error"], f"cell {index} failed"
