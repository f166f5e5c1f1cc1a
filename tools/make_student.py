"""Write the student version of the lessons: solutions replaced by stubs, outputs cleared.

    python tools/make_student.py            # solutions/NN_*.ipynb -> notebooks/ (what `make student` runs)
    python tools/make_student.py --check    # exit 1 if notebooks/ is not what solutions/ generates (a test runs this)
    python tools/make_student.py --out DIR [NOTEBOOK ...]

``solutions/`` holds the source of every lesson, exercises solved, with nbgrader's cell metadata
(the teacher's version); ``notebooks/`` holds the generated student version that the README, the
Colab badges and ``make lab`` open. It needs only nbformat and nbconvert, not the course's set-up.

In every code cell, each region from a ``### BEGIN SOLUTION`` line to the next
``### END SOLUTION`` line (markers included) becomes, at the indentation of the BEGIN line::

    # YOUR CODE HERE
    raise NotImplementedError()

which is nbgrader's convention (its ClearSolutions preprocessor produces the same stub), so a
teacher can also run ``nbgrader generate_assignment`` on ``solutions/``. Outputs and
execution counts are cleared; every other cell and all metadata are left unchanged.

A marker that is not alone on its line, an END without a BEGIN, a BEGIN without an END or
nested regions stop the tool with an error naming the notebook and the cell, so that no
solution can leak into a student copy by accident. Markdown cells are copied unchanged
(they may show the markers, e.g. in a lesson that explains the exercises).
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")
_MARKER = re.compile(r"\b(BEGIN|END) SOLUTION\b")


class SolutionRegionError(ValueError):
    """Solution markers that do not form well-formed BEGIN ... END regions."""


def clear_solutions(source: str, where: str = "cell") -> tuple[str, int]:
    """Replace every solution region of a code cell's source by the stub; return (source, regions).

    ``where`` names the cell in error messages (e.g. ``"03_freezing.ipynb, cell 17"``).
    """
    out, regions, begin_line = [], 0, None
    for number, line in enumerate(source.split("\n"), start=1):
        marker = _MARKER.search(line)
        if marker is None:
            if begin_line is None:
                out.append(line)
            continue
        expected = BEGIN if marker.group(1) == "BEGIN" else END
        if line.strip() != expected:
            raise SolutionRegionError(
                f"{where}, line {number}: {line.strip()!r}: write the marker alone on its line, exactly {expected!r}"
            )
        if expected == BEGIN:
            if begin_line is not None:
                raise SolutionRegionError(
                    f"{where}, line {number}: {BEGIN!r} inside the region opened on line {begin_line}; "
                    f"close it with {END!r} first (regions cannot nest)"
                )
            begin_line = number
            indent = line[: len(line) - len(line.lstrip())]
            out.extend(indent + stub for stub in STUB)
            regions += 1
        else:
            if begin_line is None:
                raise SolutionRegionError(f"{where}, line {number}: {END!r} without a {BEGIN!r} before it")
            begin_line = None
    if begin_line is not None:
        raise SolutionRegionError(f"{where}, line {begin_line}: {BEGIN!r} is never closed by {END!r}")
    return "\n".join(out), regions


class ClearSolutions:
    """Solution regions -> stubs, outputs cleared (code cells); the interface of an nbconvert preprocessor.

    After ``preprocess``, ``resources["solution_regions"]`` holds the number of regions
    replaced in each cell index that had any.
    """

    def preprocess(self, nb, resources):
        resources.setdefault("solution_regions", {})
        for index, cell in enumerate(nb.cells):
            nb.cells[index], resources = self.preprocess_cell(cell, resources, index)
        return nb, resources

    def preprocess_cell(self, cell, resources, index):
        name = resources.get("metadata", {}).get("name", "notebook")
        where = f"{name}, cell {index}"
        if cell.cell_type == "code":
            cell.source, regions = clear_solutions(cell.source, where)
            if regions:
                resources["solution_regions"][index] = regions
            cell.outputs = []
            cell.execution_count = None
        return cell, resources


def make_student_copy(path: Path, out_dir: Path) -> tuple[Path, int]:
    """Write the student copy of one notebook into ``out_dir``; return (path written, regions replaced)."""
    nb = nbformat.read(path, as_version=4)
    resources = {"metadata": {"name": path.name}}
    nb, resources = ClearSolutions().preprocess(nb, resources)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / path.name
    target.write_text(nbformat.writes(nb) + "\n")
    return target, sum(resources["solution_regions"].values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the student version of the lessons (solutions removed).")
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every solutions/NN_*.ipynb")
    parser.add_argument("--out", type=Path, default=ROOT / "notebooks", help="output folder (default: notebooks/)")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if the output folder differs from what the sources generate")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
    if not paths:
        print("no notebooks found in solutions/", file=sys.stderr)
        return 1
    if any(args.out.resolve() == p.parent.resolve() for p in paths):
        print("refusing to overwrite the lessons with solutions: choose another --out", file=sys.stderr)
        return 1
    target_dir = Path(tempfile.mkdtemp(prefix="student-")) if args.check else args.out
    stale = []
    for path in paths:
        try:
            target, regions = make_student_copy(path, target_dir)
        except (SolutionRegionError, OSError, nbformat.ValidationError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        if args.check:
            committed = args.out / path.name
            if not committed.is_file() or committed.read_text() != target.read_text():
                stale.append(path.name)
            continue
        try:
            shown = target.relative_to(Path.cwd())
        except ValueError:
            shown = target
        print(f"{shown}: {regions} solution region{'s' if regions != 1 else ''} replaced")
    if args.check:
        extra = sorted({p.name for p in args.out.glob("[0-9][0-9]_*.ipynb")} - {p.name for p in paths})
        if stale or (extra and not args.notebooks):
            print("the student version is out of date (run `python tools/make_student.py`): "
                  + ", ".join(stale + [f"{name} (no source in solutions/)" for name in extra]))
            return 1
        print(f"{args.out.name}/ is in sync with its sources")
    return 0


if __name__ == "__main__":
    sys.exit(main())
