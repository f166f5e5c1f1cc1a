"""The shortcut suite's bank (tests/shortcuts/lesson_NN.py) covers every graded exercise of every lesson,
and each shortcut fits its exercise's solution regions. The shortcuts themselves run while nbval runs
the lessons (tests/shortcut_suite.py); here, without a kernel, the suite's own mechanics are tested."""

from pathlib import Path

import nbformat
import pytest

from shortcut_suite import (PENDING, ROOT, region_count, replace_regions, shortcut_sources, shortcuts_for, stub_problem,
                            sync_notebooks)

LESSONS = [p for p in sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb")) if p.name[:2] not in PENDING]
MIN_SHORTCUTS = 2


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_every_exercise_has_shortcuts_that_fit_its_regions(path):
    nb = nbformat.read(path, as_version=4)
    exercises = {ex["number"]: ex for ex in sync_notebooks.exercises(nb, path.name)}
    bank = shortcuts_for(path.name)
    assert set(bank) <= set(exercises), f"{path.name}: shortcuts for exercises that do not exist: {set(bank) - set(exercises)}"
    for number, ex in exercises.items():
        shortcuts = bank.get(number, [])
        assert len(shortcuts) >= MIN_SHORTCUTS, (
            f"{path.name}, exercise {number}: {len(shortcuts)} shortcut(s) in tests/shortcuts/lesson_{path.name[:2]}.py; "
            f"write at least {MIN_SHORTCUTS} lazy answers that its check must refuse")
        regions = sum(region_count(nb.cells[i].source) for i in ex["answers"])
        descriptions = [d for d, _ in shortcuts]
        assert len(set(descriptions)) == len(descriptions), f"{path.name}, exercise {number}: two shortcuts share a description"
        for description, replacement in shortcuts:
            given = 1 if isinstance(replacement, str) else len(replacement)
            assert given == regions, f"{path.name}, exercise {number}, {description!r}: {given} replacement(s) for {regions} region(s)"


def test_regions_are_replaced_in_order_and_indented():
    source = "def f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\n\ny = f(2)\n### BEGIN SOLUTION\nz = 1\n### END SOLUTION"
    new, left = replace_regions(source, ["return 0\nif x:\n    return 1", "z = 99"])
    assert new == "def f(x):\n    return 0\n    if x:\n        return 1\n\ny = f(2)\nz = 99" and left == []


def test_the_cells_from_the_first_answer_to_the_check_are_run():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("a = 1"), nbformat.v4.new_code_cell("### BEGIN SOLUTION\nb = a\n### END SOLUTION"),
                nbformat.v4.new_markdown_cell("text"), nbformat.v4.new_code_cell("c = b"), nbformat.v4.new_code_cell("assert c == 1")]
    ex = {"number": 1, "answers": [1], "check": 4}
    assert shortcut_sources(nb, ex, "b = 2") == [(1, "b = 2"), (3, "c = b"), (4, "assert c == 1")]


@pytest.fixture(scope="module")
def kernel():
    """A python3 kernel, as nbval gives the suite one (an object with a started client, ``kc``)."""
    from types import SimpleNamespace

    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3")
    yield SimpleNamespace(kc=kc)
    kc.stop_channels()
    km.shutdown_kernel(now=True)


def test_a_student_stub_must_stop_with_not_implemented(kernel):
    """What the untouched student copy of each answer cell must do, run after the cells before it."""
    stops = "values = [1, 2]\n### BEGIN SOLUTION\ntotal = sum(values)\n### END SOLUTION\nprint(total)"
    assert stub_problem(kernel, stops, 30) is None
    never_called = "def answer(xs):\n    ### BEGIN SOLUTION\n    return sum(xs)\n    ### END SOLUTION"
    assert "ran to the end" in stub_problem(kernel, never_called, 30)
    fails_first = "undefined_name\n### BEGIN SOLUTION\nx = 1\n### END SOLUTION"
    assert "raised NameError" in stub_problem(kernel, fails_first, 30)
