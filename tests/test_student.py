"""The student version (`notebooks/`, generated from `solutions/` by `make student`): solutions removed,
everything else kept, exercises fail until solved; checks test without telling; nbgrader metadata."""

import ast
import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from IPython.core.inputtransformer2 import TransformerManager
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
LESSONS = [p for p in NOTEBOOKS if 1 <= int(p.name[:2]) <= 9]  # 00 is the tour: no exercises required
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUB = ["# YOUR CODE HERE", "raise NotImplementedError()"]

_spec = importlib.util.spec_from_file_location("make_student", ROOT / "tools" / "make_student.py")
make_student = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_student)
sys.path.insert(0, str(ROOT / "tools"))
import sync_notebooks  # noqa: E402


def split_regions(source):
    """(lines outside the solution regions, lines inside them, expected student source) of a code cell."""
    outside, inside, expected, in_region = [], [], [], False
    for line in source.split("\n"):
        if line.strip() == BEGIN:
            in_region = True
            indent = line[: len(line) - len(line.lstrip())]
            expected += [indent + s for s in STUB]
        elif line.strip() == END:
            in_region = False
        elif in_region:
            inside.append(line)
        else:
            outside.append(line)
            expected.append(line)
    return outside, inside, "\n".join(expected)


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("student")
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "make_student.py"), "--out", str(out)],
                         capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
    return out


def test_a_student_copy_of_every_notebook(student_dir):
    assert NOTEBOOKS, "no notebooks"
    assert sorted(p.name for p in student_dir.glob("*.ipynb")) == [p.name for p in NOTEBOOKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_solutions_removed_and_everything_else_unchanged(student_dir, path):
    original = nbformat.read(path, as_version=4)
    student = nbformat.read(student_dir / path.name, as_version=4)
    assert student.metadata == original.metadata
    assert len(student.cells) == len(original.cells)
    for index, (cell, copy) in enumerate(zip(original.cells, student.cells)):
        where = f"{path.name}, cell {index}"
        assert copy.cell_type == cell.cell_type and copy.metadata == cell.metadata, where
        if cell.cell_type != "code":
            assert copy.source == cell.source, where
            continue
        assert copy.outputs == [] and copy.execution_count is None, where
        assert "BEGIN SOLUTION" not in copy.source and "END SOLUTION" not in copy.source, where
        outside, inside, expected = split_regions(cell.source)
        assert copy.source == expected, where
        kept = {l.strip() for l in outside}
        student_lines = {l.strip() for l in copy.source.split("\n")}
        leaked = [l for l in inside if l.strip() and l.strip() not in kept and l.strip() in student_lines]
        assert not leaked, f"{where}: solution lines left in the student copy: {leaked}"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_every_lesson_has_two_exercises_each_with_a_check_cell(path):
    nb = nbformat.read(path, as_version=4)
    exercises = sync_notebooks.exercises(nb, path.name)   # raises for an exercise without a check cell
    assert len(exercises) >= 2, f"{path.name}: {len(exercises)} exercise(s); a lesson needs at least two"
    for ex in exercises:   # an exercise may have several answer cells; its check comes after the last
        check = nb.cells[ex["check"]]
        assert ex["check"] > max(ex["answers"]) and re.search(r"^\s*assert\b", check.source, re.M), (path.name, ex)


# That each student exercise cell stops with NotImplementedError at its stub, after the cells before it, is
# checked in the lesson's own kernel while nbval runs it (tests/shortcut_suite.py, stub_problem): there the
# cells before it have run, which no separate run can give without executing the lesson a second time.


# ------------------------------------------------------------------- a toy lesson, end to end

TOY_CELLS = [
    ("markdown", "# Toy lesson\n\nThe markers look like this:\n\n```\n### BEGIN SOLUTION\n```"),
    ("code", "values = [3, 4, 5]\nprint(values)"),
    ("markdown", "**Exercise 1.** Compute `total`, the sum of `values`."),
    ("code", f"{BEGIN}\ntotal = sum(values)\n{END}\nprint(total)"),
    ("code", 'assert total == 12, "total is the sum of the three values"'),
    ("markdown", "**Exercise 2.** Write `mean` and compute `m`."),
    ("code", f"def mean(xs):\n    {BEGIN}\n    return sum(xs) / len(xs)\n    {END}\n\nif values:\n    {BEGIN}\n    m = mean(values)\n    {END}"),
    ("code", 'assert m == 4, "the mean of 3, 4, 5 is 4"'),
]


@pytest.fixture()
def toy(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.metadata["course"] = {"cpu_minutes": 0.1, "memory_gb": 0.1}
    nb.cells = [nbformat.v4.new_markdown_cell(s) if t == "markdown" else nbformat.v4.new_code_cell(s) for t, s in TOY_CELLS]
    NotebookClient(nb, timeout=60, kernel_name="python3").execute()  # the solution copy passes its checks
    assert nb.cells[1].outputs, "the executed toy should have outputs"
    path = tmp_path / "99_toy.ipynb"
    nbformat.write(nb, path)
    return path


def test_toy_lesson_end_to_end(toy, tmp_path):
    out = tmp_path / "student"
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "make_student.py"), "--out", str(out), str(toy)],
                         capture_output=True, text=True)
    assert run.returncode == 0 and "3 solution regions replaced" in run.stdout, run.stdout + run.stderr
    student = nbformat.read(out / toy.name, as_version=4)
    assert student.cells[3].source == "# YOUR CODE HERE\nraise NotImplementedError()\nprint(total)"
    assert student.cells[6].source == (
        "def mean(xs):\n    # YOUR CODE HERE\n    raise NotImplementedError()\n\n"
        "if values:\n    # YOUR CODE HERE\n    raise NotImplementedError()"
    )
    assert student.cells[0].source == TOY_CELLS[0][1]  # markdown untouched, even with a marker in it
    assert all(not c.get("outputs") for c in student.cells if c.cell_type == "code")

    with pytest.raises(CellExecutionError) as info:  # the student copy stops at the first exercise
        NotebookClient(student, timeout=60, kernel_name="python3").execute()
    assert info.value.ename == "NotImplementedError"
    failed = [i for i, c in enumerate(student.cells) if any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    assert failed == [3]


@pytest.mark.parametrize(
    "source, message",
    [
        (f"x = 1\n{BEGIN}\ny = 2", "never closed"),
        (f"{BEGIN}\n{BEGIN}\ny = 2\n{END}", "cannot nest"),
        (f"y = 2\n{END}", "without a"),
        (f"y = 2  {BEGIN}\n{END}", "alone on its line"),
        (f"{BEGIN}\ny = 2\n## END SOLUTION", "alone on its line"),
    ],
)
def test_malformed_regions_are_errors(source, message):
    with pytest.raises(make_student.SolutionRegionError, match=message) as info:
        make_student.clear_solutions(source, "07_x.ipynb, cell 4")
    assert "07_x.ipynb, cell 4" in str(info.value)


def test_the_tool_reports_a_malformed_notebook_and_protects_the_lessons(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(f"{BEGIN}\nsecret = 42")]
    bad = tmp_path / "05_bad.ipynb"
    nbformat.write(nb, bad)
    tool = [sys.executable, str(ROOT / "tools" / "make_student.py")]
    run = subprocess.run([*tool, "--out", str(tmp_path / "out"), str(bad)], capture_output=True, text=True)
    assert run.returncode == 1 and "05_bad.ipynb, cell 0" in run.stderr and "never closed" in run.stderr
    assert not (tmp_path / "out" / "05_bad.ipynb").exists()
    run = subprocess.run([*tool, "--out", str(ROOT / "solutions")], capture_output=True, text=True)
    assert run.returncode == 1 and "refusing" in run.stderr


def test_the_committed_student_version_is_what_the_sources_generate(tmp_path):
    tool = [sys.executable, str(ROOT / "tools" / "make_student.py")]
    run = subprocess.run([*tool, "--check"], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    lesson = tmp_path / "notebooks" / NOTEBOOKS[1].name
    lesson.write_text(lesson.read_text().replace("raise NotImplementedError()", "pass", 1))
    run = subprocess.run([*tool, "--check", "--out", str(tmp_path / "notebooks")], capture_output=True, text=True)
    assert run.returncode == 1 and NOTEBOOKS[1].name in run.stdout


# ------------------------------------------------------------------- grading: points, metadata, checks that do not tell


def test_every_exercise_states_its_points_and_carries_nbgrader_metadata():
    for path in LESSONS:
        nb = nbformat.read(path, as_version=4)
        found = sync_notebooks.exercises(nb, path.name)  # raises on an exercise without points or check
        assert found, f"{path.name}: no exercises"
        for ex in found:
            check = nb.cells[ex["check"]].metadata.get("nbgrader", {})
            assert check.get("grade") and check.get("points") == ex["points"] > 0 and check.get("locked"), (path.name, ex)
            for index in ex["answers"]:
                assert nb.cells[index].metadata["nbgrader"]["solution"], (path.name, index)
            assert nb.cells[ex["statement"]].metadata["nbgrader"]["locked"], (path.name, ex)


def revealing_lines(source):
    """Lines of a check cell that show a value the check computed itself while the check can still fail.

    A value is "computed by the check" when the cell assigns it (loop variables, which name the item
    being checked, and hint strings do not count). It is "shown" when it is formatted into an assert's
    message, or printed before the cell's last assert; a print after every assert has passed only
    reports on a correct answer.
    """
    tree = ast.parse(TransformerManager().transform_cell(source))
    own = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.NamedExpr)):
            if isinstance(node.value, ast.JoinedStr) or (isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
                continue
            for target in (node.targets if isinstance(node, ast.Assign) else [node.target]):
                own |= {t.id for t in ast.walk(target) if isinstance(t, ast.Name)}
    last_assert = max((n.lineno for n in ast.walk(tree) if isinstance(n, ast.Assert)), default=0)

    def formatted(expr):
        """Names whose values end up in the text: inside f-string fields, or the expression itself."""
        if isinstance(expr, ast.Name):
            return {expr.id}
        return {n.id for f in ast.walk(expr) if isinstance(f, ast.FormattedValue) for n in ast.walk(f.value)
                if isinstance(n, ast.Name)}

    bad = []
    for node in ast.walk(tree):
        shown = set()
        if isinstance(node, ast.Assert) and node.msg is not None:
            shown = formatted(node.msg)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("print", "display")
              and node.lineno < last_assert):
            shown = set().union(*(formatted(arg) | ({n.id for n in ast.walk(arg) if isinstance(n, ast.Name)}
                                                    if not isinstance(arg, (ast.Constant, ast.JoinedStr)) else set())
                                  for arg in node.args)) if node.args else set()
        if shown & own:
            bad.append(f"line {node.lineno}: shows {sorted(shown & own)}")
    return bad


def test_no_check_cell_reveals_its_expected_answer():
    problems = []
    for path in LESSONS:
        nb = nbformat.read(path, as_version=4)
        for ex in sync_notebooks.exercises(nb, path.name):
            for line in revealing_lines(nb.cells[ex["check"]].source):
                problems.append(f"{path.name}, cell {ex['check']} (exercise {ex['number']}): {line}")
    assert not problems, "check cells must test without telling (give a hint, not the value):\n" + "\n".join(problems)


def test_the_reveal_scan_catches_a_printed_expected_value():
    assert revealing_lines("expected = 3 * 4\nassert answer == expected, f'expected {expected}'")
    assert revealing_lines("expected = 3 * 4\nassert answer == expected, expected")
    assert revealing_lines("ref = model(x)\nprint(ref)\nassert torch.allclose(out, ref)")
    assert revealing_lines("ref = model(x)\nprint(f'about {ref:.2f}')\nassert torch.allclose(out, ref)")
    assert not revealing_lines("ref = model(x)\nassert torch.allclose(out, ref), 'did you scale by alpha / r?'")
    assert not revealing_lines("assert answer > 0, f'got {answer}: a count is positive'")
    assert not revealing_lines("for name, p in m.named_parameters():\n    assert p.requires_grad, f'{name} is frozen'")
    assert not revealing_lines("ok = out == ref\nassert ok, 'hint A' if ok else 'hint B'")
    assert not revealing_lines("n = count(m)\nassert n > 0, 'none'\nprint(f'correct: {n} parameters')")
