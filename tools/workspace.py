"""The student's workspace: your own copies of the lessons, which `git pull` never touches.

    python tools/workspace.py              # make workspace/ from notebooks/: copies the lessons not there yet
    python tools/workspace.py --fresh 03   # a fresh copy of lesson 03 beside yours (yours is kept as it is)
    python tools/workspace.py --lab        # the above, then JupyterLab on workspace/ (what `make lab` runs)

``notebooks/`` holds the lessons as the course publishes them (tracked by git). Working in them would
make `git pull` conflict with your answers, so you work in ``workspace/`` (ignored by git): a lesson is
copied there once, and never overwritten; a lesson fixed upstream reaches you through `--fresh NN`,
next to your own copy. Files the lessons write (saved models, executed copies) land in
``workspace/_build/``, outside the published lessons.

``--lab`` starts JupyterLab for a student: nbgrader's teacher tools (formgrader, the assignment list, the
Nbgrader menu) and the news pop-up are switched off by the configuration in ``tools/lab_config/``, read
through JUPYTER_CONFIG_PATH (your own Jupyter settings stay where they are). Teachers who want nbgrader's
web interface run ``jupyter lab`` from the course environment without it (TEACHING.md).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PUBLISHED = ROOT / "notebooks"
WORKSPACE = ROOT / "workspace"
LAB_CONFIG = ROOT / "tools" / "lab_config"


def lessons(folder: Path = PUBLISHED) -> list[Path]:
    return sorted(folder.glob("[0-9][0-9]_*.ipynb"))


def fill(workspace: Path = WORKSPACE, published: Path = PUBLISHED) -> list[Path]:
    """Copy every published lesson that the workspace does not have yet; return the copies made."""
    if workspace.exists() and not workspace.is_dir():
        raise SystemExit(f"error: {workspace} is a file; the workspace must be a folder. Move the file away and run again.")
    workspace.mkdir(exist_ok=True)
    made = []
    for lesson in lessons(published):
        target = workspace / lesson.name
        if not target.exists():
            shutil.copy2(lesson, target)
            made.append(target)
    return made


def fresh(number: str, workspace: Path = WORKSPACE, published: Path = PUBLISHED) -> Path:
    """A fresh copy of lesson ``number`` in the workspace: under the lesson's name if you have none, else under
    a new name with the date and time (your copy is never overwritten)."""
    found = [p for p in lessons(published) if p.name[:2] == number.zfill(2)]
    if not found:
        raise SystemExit(f"error: no lesson {number!r} in {published}; the lessons are "
                         + ", ".join(p.name[:2] for p in lessons(published)))
    workspace.mkdir(exist_ok=True)
    target = workspace / found[0].name
    if target.exists():
        target = workspace / f"{found[0].stem}-fresh-{time.strftime('%Y%m%d-%H%M%S')}.ipynb"
    shutil.copy2(found[0], target)
    return target


def lab_command(workspace: Path = WORKSPACE) -> tuple[list[str], dict]:
    """The JupyterLab command and environment for a student (see the module's docstring)."""
    env = dict(os.environ)
    env["JUPYTER_CONFIG_PATH"] = os.pathsep.join(filter(None, [str(LAB_CONFIG), env.get("JUPYTER_CONFIG_PATH")]))
    command = [sys.executable, "-m", "jupyterlab", f"--notebook-dir={workspace}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        print("note: you are root (as in a container, or WSL set up as root). JupyterLab refuses root unless told,\n"
              "      so it is started with --allow-root. On a shared machine, use an ordinary user account instead.")
        command.append("--allow-root")
    return command, env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fresh", metavar="NN", help="copy lesson NN afresh into the workspace (yours is kept)")
    parser.add_argument("--lab", action="store_true", help="then start JupyterLab on the workspace")
    args = parser.parse_args(argv)
    made = fill()
    if made:
        print(f"workspace: copied {len(made)} lesson(s) into {WORKSPACE.relative_to(ROOT)}/ (yours from now on; "
              "`git pull` leaves them alone)")
    if args.fresh:
        print(f"workspace: a fresh copy of lesson {args.fresh}: {fresh(args.fresh).relative_to(ROOT)}")
    if args.lab:
        command, env = lab_command()
        os.execve(command[0], command, env)
    return 0


if __name__ == "__main__":
    sys.exit(main())
