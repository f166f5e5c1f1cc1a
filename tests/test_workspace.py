"""The student's workspace (tools/workspace.py, `make lab`): own copies that `git pull` never touches, fresh copies
on request, and a JupyterLab without nbgrader's teacher tools or the news pop-up."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("workspace", ROOT / "tools" / "workspace.py")
workspace = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(workspace)


def git(cwd, *args):
    done = subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd,
                          capture_output=True, text=True)
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stdout}{done.stderr}"
    return done.stdout


def test_a_pull_that_fixes_a_lesson_does_not_conflict_with_the_students_work(tmp_path):
    upstream, student = tmp_path / "upstream", tmp_path / "student"
    git(tmp_path, "clone", "--quiet", "--no-local", str(ROOT), str(upstream))
    git(tmp_path, "clone", "--quiet", str(upstream), str(student))
    run = subprocess.run([sys.executable, "tools/workspace.py"], cwd=student, capture_output=True, text=True)
    assert run.returncode == 0 and "copied" in run.stdout, run.stdout + run.stderr
    lesson = sorted((student / "notebooks").glob("01_*.ipynb"))[0].name
    mine = student / "workspace" / lesson
    mine.write_text(mine.read_text().replace("raise NotImplementedError()", "answer = 42", 1))
    (student / "workspace" / "_build").mkdir()          # what a lesson writes next to itself
    (student / "workspace" / "_build" / "model.bin").write_bytes(b"x")
    fixed = upstream / "notebooks" / lesson
    fixed.write_text(fixed.read_text().replace("raise NotImplementedError()", "raise NotImplementedError()  # fixed", 1))
    git(upstream, "commit", "--quiet", "-am", "fix lesson 01")
    git(student, "pull", "--quiet", "--ff-only")          # no conflict, nothing to stash
    assert "# fixed" in (student / "notebooks" / lesson).read_text()
    assert "answer = 42" in mine.read_text() and "# fixed" not in mine.read_text()
    assert git(student, "status", "--porcelain") == ""    # the workspace is ignored by git
    # A second run copies nothing over the student's file; --fresh puts the fixed lesson beside it.
    run = subprocess.run([sys.executable, "tools/workspace.py", "--fresh", "1"], cwd=student, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    fresh = [p for p in (student / "workspace").glob(f"{lesson[:-6]}-fresh-*.ipynb")]
    assert len(fresh) == 1 and "# fixed" in fresh[0].read_text() and "answer = 42" in mine.read_text()


def test_fresh_refuses_an_unknown_lesson_and_a_workspace_that_is_a_file(tmp_path):
    published = tmp_path / "notebooks"
    published.mkdir()
    (published / "00_tour.ipynb").write_text("{}")
    with pytest.raises(SystemExit, match="no lesson '7'.*00"):
        workspace.fresh("7", tmp_path / "ws", published)
    (tmp_path / "ws2").write_text("mine")
    with pytest.raises(SystemExit, match="is a file"):
        workspace.fill(tmp_path / "ws2", published)
    assert (tmp_path / "ws2").read_text() == "mine"
    assert workspace.fresh("0", tmp_path / "ws", published).name == "00_tour.ipynb"
    assert workspace.fresh("00", tmp_path / "ws", published).name.startswith("00_tour-fresh-")


def test_the_students_lab_switches_off_nbgrader_and_the_news():
    command, env = workspace.lab_command(ROOT / "workspace")
    assert str(workspace.LAB_CONFIG) in env["JUPYTER_CONFIG_PATH"].split(os.pathsep)
    assert ("--allow-root" in command) == (os.geteuid() == 0)
    server = json.loads((workspace.LAB_CONFIG / "jupyter_server_config.json").read_text())
    installed = json.loads((Path(sys.prefix) / "etc" / "jupyter" / "jupyter_server_config.d" / "nbgrader.json").read_text())
    assert set(installed["ServerApp"]["jpserver_extensions"]) <= {
        k for k, on in server["ServerApp"]["jpserver_extensions"].items() if on is False}
    page = json.loads((workspace.LAB_CONFIG / "labconfig" / "page_config.json").read_text())
    assert page["disabledExtensions"]["@jupyter/nbgrader"] and page["disabledExtensions"]["@jupyterlab/apputils-extension:announcements"]
