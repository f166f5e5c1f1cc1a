"""The shortcut suite: every exercise's check must refuse the lazy answers, and a right answer typed after
a wrong one must pass.

``tests/shortcuts/lesson_NN.py`` holds, for each exercise of lesson NN, the laziest answers we could think
of: call the function the exercise replaces, copy a value the lesson computed earlier, return constants,
hard-code the lesson's numbers. Each is ``(description, replacement)``: the replacement stands in for the
exercise's solution region (a list of replacements: one per region, in order over its answer cells),
indented as the region is.

While nbval runs a lesson of ``solutions/`` (``make test``), this plugin steps in just before the first
answer cell of each exercise, in the lesson's own kernel: for each shortcut it runs the answer cells with
the shortcut in place of the solution (they must run without error: a shortcut that crashes proves
nothing), then the cells up to and including the check, which must stop with an ``AssertionError``
(a hint, not a crash). Then nbval runs the real answer and its check in the same kernel, after all those
wrong answers: that is the retry test (a correct answer after a wrong one passes without any other step).
A shortcut that the check accepts fails the answer cell's test, naming the shortcut. Before the shortcuts,
the student's untouched stub (``raise NotImplementedError()``) is run the same way: its check must fail, so a
student copy handed in untouched scores 0 (checked for every exercise, in the lesson's own kernel). And just
before nbval runs each answer cell, the student's copy of that cell (its regions replaced by the stub) runs in the
same kernel, after the cells before it: it must stop with ``NotImplementedError`` (a cell that defines the answer
in a function it never calls would run to the end and look finished), as a student who runs the untouched cell
first and then writes the answer does.
"""

from __future__ import annotations

import importlib.util
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHORTCUTS = ROOT / "tests" / "shortcuts"
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUB = "# YOUR CODE HERE\nraise NotImplementedError()"   # what tools/make_student.py puts in a region
UNTOUCHED = "the untouched stub"                           # tried first for every exercise: it must score 0
#: Lessons being reworked whose exercises the suite skips for now (and the bank and form tests too). Empty: every
#: exercise of every lesson runs under the suite.
PENDING = set()
sys.path.insert(0, str(ROOT / "tools"))
import sync_notebooks  # noqa: E402  (the exercises of a lesson, as nbgrader's metadata is written from them)


def shortcuts_for(lesson_name: str) -> dict[int, list[tuple[str, str | list[str]]]]:
    """The shortcuts of a lesson (``02_finetuning_objective.ipynb`` -> tests/shortcuts/lesson_02.py), or {}."""
    path = SHORTCUTS / f"lesson_{lesson_name[:2]}.py"
    if not path.exists():
        return {}
    spec = importlib.util.spec_from_file_location(f"shortcuts_lesson_{lesson_name[:2]}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SHORTCUTS


def region_count(source: str) -> int:
    return sum(line.strip() == BEGIN for line in source.split("\n"))


def replace_regions(source: str, replacements: list[str]) -> tuple[str, list[str]]:
    """``source`` with its solution regions replaced, in order, by ``replacements`` (dedented, then indented
    as the region's BEGIN line); returns the new source and the replacements not used."""
    out, inside, left = [], False, list(replacements)
    for line in source.split("\n"):
        if line.strip() == BEGIN:
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            body = textwrap.dedent(left.pop(0)).strip("\n") if left else "pass"
            out += [indent + l if l.strip() else l for l in body.split("\n")]
        elif line.strip() == END:
            inside = False
        elif not inside:
            out.append(line)
    return "\n".join(out), left


def shortcut_sources(nb, exercise: dict, replacement: str | list[str]) -> list[tuple[int, str]]:
    """(cell index, source) for the cells from the exercise's first answer cell to its check, with the
    shortcut in the answer cells' solution regions."""
    left = [replacement] if isinstance(replacement, str) else list(replacement)
    cells = []
    for index in range(exercise["answers"][0], exercise["check"] + 1):
        cell = nb.cells[index]
        if cell.cell_type != "code":
            continue
        source = cell.source
        if index in exercise["answers"]:
            source, left = replace_regions(source, left)
        cells.append((index, source))
    return cells


def run_in_kernel(kernel, source: str, timeout: float) -> tuple[str, str] | None:
    """Run ``source`` in nbval's kernel; (ename, evalue) if it raised, else None."""
    reply = kernel.kc.execute_interactive(source, store_history=False, allow_stdin=False, stop_on_error=False,
                                          timeout=timeout, output_hook=lambda msg: None)
    content = reply["content"]
    return None if content["status"] == "ok" else (content.get("ename", "Error"), content.get("evalue", ""))


def stub_problem(kernel, source: str, timeout: float) -> str | None:
    """Run the student's copy of an answer cell (its regions replaced by the stub) in ``kernel``, after the cells
    before it (the earlier answers solved): None when it stops with NotImplementedError at its stub, as an
    untouched copy must (then it reads as unanswered, never as finished), else what went wrong."""
    stub, _ = replace_regions(source, [STUB] * region_count(source))
    error = run_in_kernel(kernel, stub, timeout)
    if error is not None and error[0] == "NotImplementedError":
        return None
    return ("the student's copy of this exercise cell should stop with NotImplementedError at its stub, but "
            + ("it ran to the end (is the solution inside a function the cell never calls? Call it in the exercise "
               "cell, inside or after the region)" if error is None else f"it raised {error[0]}: {error[1][:160]}"))


class ShortcutSuite:
    """Registered by conftest.py; acts on nbval's cell items of lessons in solutions/."""

    def __init__(self):
        self.exercises: dict[Path, dict[int, dict]] = {}   # lesson -> index of each answer cell -> its exercise

    def _exercise_of(self, item):
        """(notebook, exercise, cell index) when ``item`` is an answer cell of an exercise, else Nones."""
        if (item.path.suffix != ".ipynb" or item.path.parent != ROOT / "solutions" or not hasattr(item, "cell")
                or item.path.name[:2] in PENDING):
            return None, None, None
        nb = item.parent.nb
        if item.path not in self.exercises:
            self.exercises[item.path] = {index: ex for ex in sync_notebooks.exercises(nb, item.path.name)
                                         for index in ex["answers"]}
        index = next((i for i, cell in enumerate(nb.cells) if cell is item.cell), None)
        return nb, self.exercises[item.path].get(index), index

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item):
        nb, exercise, index = self._exercise_of(item)
        if exercise is None:
            return (yield)
        problems = self.try_shortcuts(item, nb, exercise) if index == exercise["answers"][0] else []
        problems += self.stub_stops(item, nb, index)
        result = yield   # nbval runs the real answer now, after every wrong one: the retry
        if problems:
            raise AssertionError(f"{item.path.name}, exercise {exercise['number']}: " + "; ".join(problems))
        return result

    def stub_stops(self, item, nb, index) -> list[str]:
        problem = stub_problem(item.parent.kernel, nb.cells[index].source, item.config.option.nbval_cell_timeout)
        return [f"cell {index}: {problem}"] if problem else []

    def try_shortcuts(self, item, nb, exercise) -> list[str]:
        shortcuts = shortcuts_for(item.path.name).get(exercise["number"], [])
        kernel = item.parent.kernel
        timeout = item.config.option.nbval_cell_timeout
        problems = []
        regions = sum(region_count(nb.cells[i].source) for i in exercise["answers"])
        untouched = [STUB] * regions
        for description, replacement in [(UNTOUCHED, untouched), *shortcuts]:
            start = time.perf_counter()
            outcome = None
            for index, source in shortcut_sources(nb, exercise, replacement):
                error = run_in_kernel(kernel, source, timeout)
                if index != exercise["check"]:
                    if error and description == UNTOUCHED:
                        continue   # the stub raises NotImplementedError; cells after it may fail as well
                    if error:
                        outcome = f"shortcut {description!r} could not run (cell {index}: {error[0]}: {error[1][:200]}); fix the shortcut"
                        break
                    continue
                if error is None:
                    outcome = f"the check ACCEPTED the shortcut {description!r}"
                elif description == UNTOUCHED:
                    pass   # any error: in a fresh kernel the stub's check fails, so it scores 0
                elif error[0] != "AssertionError":
                    outcome = (f"the check refused the shortcut {description!r} with {error[0]} ({error[1][:120]}) "
                               "instead of an AssertionError with a hint")
            print(f"[shortcut] {item.path.name} exercise {exercise['number']}: {description!r}: "
                  f"{outcome or 'refused'} ({time.perf_counter() - start:.1f} s)")
            if outcome:
                problems.append(outcome)
        return problems
