"""The Colab set-up cell, run as Colab would run it: a stand-in `google.colab` module, the course
fetched from a local clone address (file://), errors shown with git's own words and what to do."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import sync_notebooks  # noqa: E402


def run_cell(tmp_path, repo_address):
    fake = tmp_path / "fake_colab" / "google" / "colab"
    fake.mkdir(parents=True, exist_ok=True)
    (fake.parent / "__init__.py").write_text("")
    (fake / "__init__.py").write_text('"""A stand-in for Colab\'s module: the set-up cell only checks that it is imported."""\n')
    script = "import google.colab\n" + sync_notebooks.SETUP_CELL + "\nprint('CWD=' + os.getcwd())\n"
    env = dict(os.environ, COURSE_REPO=repo_address, COURSE_DIR=str(tmp_path / "course"),
               PYTHONPATH=os.pathsep.join([str(tmp_path / "fake_colab"), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)


@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="needs the course as a git repository to clone from")
def test_the_cell_fetches_the_course_and_moves_into_the_lessons(tmp_path):
    done = run_cell(tmp_path, f"file://{ROOT}")
    assert done.returncode == 0, done.stderr
    course = tmp_path / "course"
    assert (course / ".git").is_dir() and (course / "notebooks").is_dir()
    assert f"CWD={course / 'notebooks'}" in done.stdout
    again = run_cell(tmp_path, "file:///nowhere")  # already fetched: no second clone, nothing installed
    assert again.returncode == 0, again.stderr


def test_a_failed_fetch_says_what_failed_in_git_s_words_and_what_to_do(tmp_path):
    done = run_cell(tmp_path, f"file://{tmp_path / 'no-such-repository'}")
    assert done.returncode != 0
    message = done.stderr
    assert "Set-up failed while fetching the course from file://" in message
    assert "fatal:" in message  # git's own error text
    assert "COURSE_REPO" in message and "run this cell again" in message
    assert "Traceback" not in message


def test_every_lesson_opens_with_this_cell():
    import nbformat

    for path in sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb")) + sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        first = next(c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
        assert first.source == sync_notebooks.SETUP_CELL, path
