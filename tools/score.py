"""Which exercises of a lesson pass: run the notebook top to bottom and print a score table.

    python tools/score.py notebooks/03_freezing_and_lora.ipynb      # your copy, after working on it
    make score LESSON=03                                            # the same, for notebooks/03_*.ipynb

The notebook is executed in a fresh kernel (your file is not changed), every cell even after an
error, as nbgrader's autograder does. For each exercise the table says whether its check cell
passed (and the points), whether the exercise is still a stub (``NotImplementedError``), or the
hint the check gave. It needs no nbgrader: the exercises and their points are read from the cells'
nbgrader metadata, which every lesson carries.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_all  # noqa: E402  (tools/run_all.py: the same kernel set-up)


TIMEOUT = "CellTimeoutError"


def exercises(nb) -> list[dict]:
    """The graded exercises of a notebook, from its nbgrader metadata: id, points, cell indices."""
    found: dict[str, dict] = {}
    for index, cell in enumerate(nb.cells):
        meta = cell.metadata.get("nbgrader", {})
        grade_id = meta.get("grade_id", "")
        name = grade_id.split("_")[0]
        if not name:
            continue
        entry = found.setdefault(name, {"name": name, "points": 0, "answers": [], "check": None})
        if meta.get("solution"):
            entry["answers"].append(index)
        if meta.get("grade"):
            entry["check"], entry["points"] = index, meta.get("points", 0)
    return [e for e in found.values() if e["check"] is not None]


def _error(cell) -> tuple[str, str] | None:
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            return output.get("ename", "Error"), output.get("evalue", "")
    return None


def score(path: Path, timeout: int = 1800) -> list[dict]:
    """Execute the notebook at ``path`` (a copy, in memory) and grade each exercise."""
    nb = nbformat.read(path, as_version=4)
    graded = exercises(nb)
    if not graded:
        raise ValueError(f"{path.name} has no graded exercises (no nbgrader metadata: is it a course lesson?)")
    timed_out: set[int] = set()

    def executed(cell, cell_index, execute_reply):
        if execute_reply and execute_reply.get("content", {}).get("ename") == TIMEOUT:
            timed_out.add(cell_index)

    # A cell past its timeout is interrupted and recorded, and the next cells run (as nbgrader's autograder does).
    client = run_all.client_for(nb, path.parent.resolve(), timeout, allow_errors=True, interrupt_on_timeout=True,
                                error_on_timeout={"ename": TIMEOUT, "evalue": f"the cell ran longer than {timeout} s",
                                                  "traceback": []},
                                on_cell_executed=executed)
    try:
        client.execute()
    finally:
        run_all.stop_kernel(client)
    rows = []
    for ex in graded:
        answer_errors = [_error(nb.cells[i]) for i in ex["answers"]]
        check_error = _error(nb.cells[ex["check"]])
        if timed_out & {*ex["answers"], ex["check"]}:
            status, got = f"stopped: a cell ran longer than the timeout ({timeout} s per cell); is there an endless loop?", 0
        elif any(e and e[0] == "NotImplementedError" for e in answer_errors):
            status, got = "not done yet (the stub raises NotImplementedError)", 0
        elif check_error is None:
            status, got = "passed", ex["points"]
        else:
            ename, evalue = check_error
            hint = evalue.strip().splitlines()[0] if evalue.strip() else ""
            status, got = f"check failed: {ename}{': ' + hint if hint else ''}", 0
        rows.append({"exercise": ex["name"], "points": got, "max_points": ex["points"], "status": status})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell (default 1800)")
    args = parser.parse_args(argv)
    run_all.exit_on_signals("no score; the notebook's kernel was shut down")
    if not args.notebook.is_file():
        print(f"error: no notebook {args.notebook}", file=sys.stderr)
        return 2
    try:
        rows = score(args.notebook, args.timeout)
    except (ValueError, nbformat.ValidationError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    width = max(len(r["exercise"]) for r in rows)
    for r in rows:
        print(f"{r['exercise']:<{width}}  {r['points']:>2}/{r['max_points']:<2}  {r['status']}")
    total, most = sum(r["points"] for r in rows), sum(r["max_points"] for r in rows)
    print(f"{'total':<{width}}  {total:>2}/{most:<2}  ({sum(r['status'] == 'passed' for r in rows)} of {len(rows)} exercises pass)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
