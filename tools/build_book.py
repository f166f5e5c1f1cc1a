"""Build the course as a static HTML site of the executed lessons: ``make book``.

    python tools/build_book.py [--out _build/book] [--rerun | --no-execute] [LESSON ...]

Then open ``_build/book/index.html`` in a browser. One page per lesson (prose, code, printed
output and figures, as a student sees them after running it top to bottom), the README's
notebook map as the index page, and on every page links to the previous and next lesson and
back to the index. Pages are made with nbconvert's ``HTMLExporter`` and its ``lab`` template
(a small template of our own adds the navigation and drops the scripts a static page does
not need).

Where the pages come from
-------------------------
* **Prose and code** come from ``solutions/NN_*.ipynb``, the lessons' source.
* **Outputs** come from an executed copy in ``_build/notebooks/``: written by
  ``tools/run_all.py`` (``make run-all``), or by the test suite while nbval runs the lessons
  (``tests/conftest.py``). A copy is used only when its code cells are exactly those of the
  current lesson: a SHA-256 over the code cells' sources, computed from the copy itself (the
  copy holds the code it ran, so there is no stored stamp that could go out of date). Otherwise
  the lesson is executed again with ``tools/run_all.py``. An edit to the prose alone needs no
  new run: the page takes its markdown from the current source. As in Jupyter Book's execution
  cache, the key is the notebook's code: a change in ``finetune_utils`` or ``data/`` alone does
  not make a copy stale; ``--rerun`` executes every lesson again. A copy that stopped with an
  error is executed again. A lesson that fails again, or whose plot cells hold no figure (a
  kernel run with ``MPLBACKEND=Agg``), is not published: the build fails and names the cell.
* **Exercises do not leak.** Teachers assign the exercises, so for every cell that nbgrader
  marks as an answer or a check (``metadata.nbgrader.solution`` / ``.grade``), the page shows
  the student's version of the cell from ``notebooks/`` (the same lesson, cell for cell) and
  none of its outputs. Before that, the two notebooks are checked to line up: same number and
  kinds of cells, same nbgrader ids, every other cell identical, and no solution marker left in
  the student's cell. If they do not, the build fails and says to run
  ``tools/sync_notebooks.py``.
* **Quizzes** (``quiz.show``) stay interactive: their output is jupyterquiz's HTML with its own
  script (the question base64-encoded, so no answer shows as text), which runs in the static
  page as in JupyterLab, offline; clicking an option shows its explanation.
* **Progress bars** (tqdm's widgets while weights load, data are mapped or a model trains)
  are dropped: a saved widget keeps only its first state, "0%", which would mislead. Any other
  widget shows its text fallback.
* **Formulas** are typeset by MathJax, loaded from its CDN as nbconvert does by default; offline
  the TeX source shows instead. The pages load nothing else from outside (quiz.py keeps
  jupyterquiz's script from fetching a MathJax of its own).

The output folder is replaced as a whole on each build, and only if it is missing or was written
by this program (it holds ``book.json``, the build's manifest); anything else is left alone.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))   # finetune_utils (for the repository address of the Colab links), as run_all.py does
sys.path.insert(0, str(ROOT / "tools"))
from sync_notebooks import title  # noqa: E402  (the lesson's title, read as the notebook map reads it)

from finetune_utils import integrity  # noqa: E402  (the mark that says a folder is ours, as the command's)
SOURCES = ROOT / "solutions"
STUDENT = ROOT / "notebooks"
EXECUTED = ROOT / "_build" / "notebooks"
OUT = ROOT / "_build" / "book"
MANIFEST = "book.json"
WRITER = "tools/build_book.py"

WIDGET = "application/vnd.jupyter.widget-view+json"
IMAGE_TYPES = ("image/png", "image/jpeg", "image/svg+xml")
PROGRESS_BAR = re.compile(r"\d+%\|")         # tqdm's text: "Map:   0%|          | 0/151 [...]"
SOLUTION_MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")
EXERCISE_TAG, CHECK_TAG = "book-exercise", "book-check"
HIDE_INPUT = "hide-input"   # the tag of collapsed drawing/plumbing cells (JupyterLab: jupyter.source_hidden), as in Jupyter Book


class BookError(RuntimeError):
    """The book cannot be built as asked; the message names the lesson, the cell and what to do."""


# ----------------------------------------------------------------------------- lessons and copies

def lessons(selected: list[str] | None = None) -> list[Path]:
    """The lesson sources in ``solutions/``; ``selected`` holds numbers ("03") or file names."""
    every = sorted(SOURCES.glob("[0-9][0-9]_*.ipynb"))
    if not selected:
        return every
    chosen = []
    for want in selected:
        match = [p for p in every if p.name == Path(want).name or p.name[:2] == want.zfill(2)[:2]]
        if not match:
            known = ", ".join(p.name[:2] for p in every)
            raise BookError(f"no lesson {want!r} in {SOURCES.relative_to(ROOT)}/ (lessons: {known})")
        chosen.extend(m for m in match if m not in chosen)
    return sorted(chosen)


def code_hash(nb) -> str:
    """SHA-256 over the sources of the notebook's code cells, in order: what an execution depends on."""
    code = [cell.source for cell in nb.cells if cell.cell_type == "code"]
    return hashlib.sha256(json.dumps(code, ensure_ascii=False).encode("utf-8")).hexdigest()


def _errors(nb) -> list[str]:
    return [f"cell {i}: {out.ename}: {out.evalue}" for i, cell in enumerate(nb.cells) if cell.cell_type == "code"
            for out in cell.get("outputs", []) if out.output_type == "error"]


def current_copy(source: Path, folder: Path = EXECUTED) -> Path | None:
    """The executed copy of ``source`` in ``folder`` if it ran the lesson's current code to the end, else None.

    A copy that stopped with an error is not worth keeping: it is run again, and if it fails again
    the build says where. So is a copy whose quizzes are ipywidgets (run before quiz.py used
    jupyterquiz): a page could show them only as text.
    """
    executed = folder / source.name
    if not executed.is_file():
        return None
    try:
        ran = nbformat.read(executed, as_version=4)
    except Exception:  # noqa: BLE001 - a half-written or foreign file is simply not a usable copy
        return None
    widget_quizzes = any(str(out.get("data", {}).get("text/plain", "")).startswith("Self-check q") and
                         WIDGET in out.get("data", {}) for cell in ran.cells for out in cell.get("outputs", []))
    if _errors(ran) or widget_quizzes or code_hash(ran) != code_hash(nbformat.read(source, as_version=4)):
        return None
    return executed


def execute(sources: list[Path]) -> None:
    """Execute lessons with tools/run_all.py (it prints its progress and table; copies go to _build/notebooks)."""
    if not sources:
        return
    print(f"executing {len(sources)} lesson(s) with tools/run_all.py: " + ", ".join(p.name for p in sources), flush=True)
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}   # the kernel's inline backend: figures as outputs
    subprocess.run([sys.executable, str(ROOT / "tools" / "run_all.py"), *map(str, sources)], cwd=ROOT, env=env,
                   check=False)   # its exit status says only "some lesson failed": the copies say where


def ensure_executed(sources: list[Path], rerun: bool = False, folder: Path = EXECUTED) -> dict[str, Path]:
    """Executed copies of ``sources`` that ran their current code, executing the missing, stale or failed ones."""
    stale = list(sources) if rerun else [p for p in sources if current_copy(p, folder) is None]
    if stale and folder != EXECUTED:
        raise BookError(f"{folder} has no current executed copy of {', '.join(p.name for p in stale)}, and "
                        f"tools/run_all.py writes to {EXECUTED.relative_to(ROOT)}/ only")
    execute(stale)
    copies = {p.name: current_copy(p, folder) for p in sources}
    problems = []
    for name, path in copies.items():
        if path is None:
            written = folder / name
            errors = _errors(nbformat.read(written, as_version=4)) if written.is_file() else []
            problems.append(f"{name} stopped at {errors[0]}" if errors else f"{name}: no executed copy was written")
    if problems:
        raise BookError("lessons failed to execute (see tools/run_all.py's table above): " + "; ".join(problems))
    return copies


# ----------------------------------------------------------------------------- one page's notebook

def _nbgrader(cell) -> dict:
    return cell.metadata.get("nbgrader", {}) or {}


def is_exercise(cell) -> bool:
    """An answer or check cell of an exercise (nbgrader's ``solution`` or ``grade``)."""
    meta = _nbgrader(cell)
    return bool(meta.get("solution") or meta.get("grade"))


def check_alignment(source, student, name: str) -> None:
    """The student version must be the lesson cell for cell; raise BookError naming the first difference."""
    fix = "run `python tools/sync_notebooks.py` to regenerate notebooks/ from solutions/"
    if len(source.cells) != len(student.cells):
        raise BookError(f"{name}: solutions/ has {len(source.cells)} cells, notebooks/ {len(student.cells)}; {fix}")
    for index, (sol, stu) in enumerate(zip(source.cells, student.cells)):
        where = f"{name}, cell {index}"
        if sol.cell_type != stu.cell_type:
            raise BookError(f"{where}: {sol.cell_type} in solutions/, {stu.cell_type} in notebooks/; {fix}")
        if _nbgrader(sol).get("grade_id") != _nbgrader(stu).get("grade_id"):
            raise BookError(f"{where}: nbgrader id {_nbgrader(sol).get('grade_id')!r} in solutions/, "
                            f"{_nbgrader(stu).get('grade_id')!r} in notebooks/; {fix}")
        if is_exercise(sol) != is_exercise(stu):
            raise BookError(f"{where}: an exercise cell in only one of solutions/ and notebooks/; {fix}")
        if is_exercise(sol):
            if any(marker in stu.source for marker in SOLUTION_MARKERS):
                raise BookError(f"{where}: the student's cell still holds a solution region; {fix}")
        elif sol.source != stu.source:
            raise BookError(f"{where}: differs between solutions/ and notebooks/ outside the exercises; {fix}")


def clean_outputs(outputs, where: str) -> list:
    """The outputs a static page shows: errors refused, progress bars dropped, other widgets as text."""
    kept = []
    for out in outputs:
        if out.output_type == "error":
            raise BookError(f"{where}: the executed lesson stopped with {out.ename}: {out.evalue}; "
                            "make book runs it again (its executed copy is not reused)")
        data = out.get("data", {})
        if WIDGET in data:
            text = str(data.get("text/plain", ""))
            if text and not PROGRESS_BAR.search(text):
                kept.append(nbformat.v4.new_output("display_data", data={"text/plain": text}))
            continue
        kept.append(out)
    return kept


def shows_figure(cell) -> bool:
    """A code cell that calls plt.show() (outside a comment): its executed copy must hold a figure."""
    return any("plt.show(" in line.split("#", 1)[0] for line in cell.source.splitlines())


def make_page(source_path: Path, executed_path: Path, student_dir: Path = STUDENT):
    """The notebook a page shows: the source's cells, the executed copy's outputs, the student's exercise cells."""
    name = source_path.name
    source = nbformat.read(source_path, as_version=4)
    student_path = student_dir / name
    if not student_path.is_file():
        raise BookError(f"{name}: no student version {student_path}; run `python tools/sync_notebooks.py`")
    student = nbformat.read(student_path, as_version=4)
    executed = nbformat.read(executed_path, as_version=4)
    check_alignment(source, student, name)
    if code_hash(executed) != code_hash(source):
        raise BookError(f"{name}: {executed_path} ran other code than the current lesson; execute it again")
    ran = iter([c for c in executed.cells if c.cell_type == "code"])

    page = copy.deepcopy(source)
    for index, (cell, stu) in enumerate(zip(page.cells, student.cells)):
        outputs = next(ran).outputs if cell.cell_type == "code" else None
        where = f"{name}, cell {index}"
        if outputs is not None:
            outputs = clean_outputs(outputs, where)   # also refuses errors in exercise cells
        if is_exercise(cell):
            cell.source = stu.source
            meta = _nbgrader(cell)
            cell.metadata["tags"] = list(cell.metadata.get("tags", [])) + [
                EXERCISE_TAG if meta.get("solution") else CHECK_TAG]
            if cell.cell_type == "code":
                cell.outputs = []
        elif cell.cell_type == "code":
            if HIDE_INPUT in cell.metadata.get("tags", []):   # drawing or plumbing code: the page shows its output only
                cell.metadata["transient"] = {"remove_source": True}
            if shows_figure(cell) and not any(m in out.get("data", {}) for out in outputs for m in IMAGE_TYPES):
                raise BookError(f"{where} calls plt.show() but its executed copy ({executed_path}) has no figure: "
                                "was it run with MPLBACKEND=Agg? Run it again with --rerun")
            cell.outputs = outputs
        if cell.cell_type == "code":
            cell.execution_count = None
        cell.metadata.pop("nbgrader", None)
    page.metadata.pop("widgets", None)
    return page


def course_title() -> str:
    match = re.search(r"^#\s+(.+)$", (ROOT / "README.md").read_text(encoding="utf-8"), flags=re.M)
    return match.group(1).strip() if match else "The course"


# ----------------------------------------------------------------------------- HTML

CSS = """
.book-nav { display: flex; gap: 1.5em; align-items: baseline; flex-wrap: wrap; font-family: var(--jp-ui-font-family, sans-serif);
  font-size: 14px; padding: 8px 0; margin: 0 0 12px 0; border-bottom: 1px solid #ddd; }
.book-nav.bottom { border-bottom: none; border-top: 1px solid #ddd; margin: 24px 0 0 0; }
.book-nav a { text-decoration: none; color: #1a5fb4; }
.book-nav a:hover { text-decoration: underline; }
.book-nav .spacer { flex: 1; }
.book-exercise, .book-check { border-left: 4px solid #c88a00; padding-left: 4px; }
.celltag_book-exercise::before, .celltag_book-check::before { display: block; font-family: var(--jp-ui-font-family, sans-serif);
  font-size: 12px; color: #7a5400; padding: 2px 0 2px 8px; border-left: 4px solid #c88a00; }
.celltag_book-exercise::before { content: "Exercise: the student's version; solve it in the notebook (answers are not published here)"; }
.celltag_book-check::before { content: "Check cell: run it in the notebook after your answer (its output is not shown here)"; }
"""

TEMPLATE = r"""{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block extra_css -%}<style type="text/css">""" + CSS + r"""</style>{%- endblock extra_css -%}
{%- block body_header -%}
{{ super() }}
{{ resources.book_nav_top }}
{%- endblock body_header -%}
{% block body_footer %}
{{ resources.book_nav_bottom }}
{{ super() }}
{% endblock body_footer %}
"""


def _exporter():
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    return HTMLExporter(
        extra_loaders=[DictLoader({"book.html.j2": TEMPLATE})],
        template_file="book.html.j2",
        exclude_input_prompt=True,
        exclude_output_prompt=True,
        theme="light",
    )


def _nav(pages: list[dict], index: int, where: str) -> str:
    parts = ['<a class="book-index" href="index.html">Course index</a>', '<span class="spacer"></span>']
    if index > 0:
        prev = pages[index - 1]
        parts.append(f'<a rel="prev" href="{prev["page"]}">&larr; {html.escape(prev["title"])}</a>')
    if index + 1 < len(pages):
        nxt = pages[index + 1]
        parts.append(f'<a rel="next" href="{nxt["page"]}">{html.escape(nxt["title"])} &rarr;</a>')
    return f'<nav class="book-nav {where}">' + "".join(parts) + "</nav>"


def index_html(course: str, rows: list[dict]) -> str:
    """The index page: the notebook map (lesson, CPU minutes, where to run it)."""
    from finetune_utils import REPO, REPO_BRANCH  # the repository address the Colab links use

    body = []
    for row in rows:
        colab = (f"https://colab.research.google.com/github/{REPO}/blob/{REPO_BRANCH}/notebooks/{row['source']}")
        name = html.escape(row["title"])
        lesson = f'<a href="{row["page"]}">{name}</a>' if row.get("page") else f"{name} <em>(not in this build)</em>"
        body.append(f"<tr><td>{lesson}</td><td>{row['cpu_minutes']}</td>"
                    f'<td><a href="{html.escape(colab)}">Open in Colab</a></td></tr>')
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>{html.escape(course)}</title>
<style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; max-width: 60em; margin: 2em auto;
  padding: 0 1em; line-height: 1.5; color: #222; }}
table {{ border-collapse: collapse; width: 100%; }} th, td {{ text-align: left; padding: 6px 10px; border-bottom: 1px solid #ddd; }}
a {{ color: #1a5fb4; text-decoration: none; }} a:hover {{ text-decoration: underline; }}
.note {{ color: #555; font-size: 0.95em; }}
</style></head>
<body><main>
<h1>{html.escape(course)}</h1>
<p>The lessons as they look after running them top to bottom: prose, code, printed output and figures.
Exercises show the version students get, without answers or check results; the self-check questions
work as in the notebook: click an option (or type the steps' letters) to see the explanation.
To work through a lesson, run it yourself: <code>make lab</code> opens the notebooks, or use Colab.</p>
<table id="notebook-map"><thead><tr><th>lesson</th><th>CPU minutes</th><th>run it</th></tr></thead>
<tbody>
{chr(10).join(body)}
</tbody></table>
<p class="note">Built by <code>make book</code> (tools/build_book.py) from the executed lessons.</p>
</main></body></html>
"""


@dataclass
class Page:
    number: str
    title: str
    source: str
    page: str | None
    executed: str | None
    code_sha256: str
    cpu_minutes: object


def build(out: Path = OUT, selected: list[str] | None = None, *, execute_missing: bool = True,
          rerun: bool = False, executed_dir: Path = EXECUTED) -> list[Page]:
    """Write the site to ``out``; return one entry per lesson (``page`` None for a lesson not built).

    With ``execute_missing`` False, lessons without a current executed copy are left out of the
    build (listed on the index as not built) instead of being executed.
    """
    sources = lessons(selected)
    if execute_missing:
        copies = ensure_executed(sources, rerun=rerun, folder=executed_dir)
    else:
        copies = {p.name: current_copy(p, executed_dir) for p in sources}
    _check_out(out)
    every = lessons(None)   # the index lists every lesson, built or not
    entries = []
    for path in every:
        nb = nbformat.read(path, as_version=4)
        executed = copies.get(path.name)
        entries.append(Page(
            number=path.name[:2], title=title(nb), source=path.name,
            page=path.with_suffix(".html").name if executed else None,
            executed=str(executed.relative_to(ROOT) if executed.is_relative_to(ROOT) else executed) if executed else None,
            code_sha256=code_hash(nb), cpu_minutes=nb.metadata.get("course", {}).get("cpu_minutes", "?"),
        ))
    built = [asdict(e) for e in entries if e.page]
    if not built:
        raise BookError("no lesson has a current executed copy; run `make book` (it executes them)")

    exporter = _exporter()
    course = course_title()
    staging = Path(tempfile.mkdtemp(prefix=".book-", dir=out.parent))
    staging.chmod(0o755)   # mkdtemp makes it private; a site is for reading
    try:
        for i, entry in enumerate(built):
            page = make_page(SOURCES / entry["source"], ROOT / entry["executed"])
            page.metadata["title"] = f"{entry['title']} — {course}"
            body, _ = exporter.from_notebook_node(page, resources={
                "book_nav_top": _nav(built, i, "top"), "book_nav_bottom": _nav(built, i, "bottom"),
                "metadata": {"name": entry["title"]},
            })
            (staging / entry["page"]).write_text(body, encoding="utf-8")
        (staging / "index.html").write_text(index_html(course, [asdict(e) for e in entries]), encoding="utf-8")
        integrity.write_mark(staging, MANIFEST, WRITER, built_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                             lessons=[asdict(e) for e in entries])
        if out.exists():
            _check_replaceable(out)  # again, right before deleting: files may have been added while lessons ran
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return entries


def _check_out(out: Path) -> None:
    """Refuse to replace a folder this program did not write."""
    if out.exists() and integrity.read_mark(out, MANIFEST, WRITER) is None:
        if out.is_dir() and not any(out.iterdir()):
            out.rmdir()
            return
        raise BookError(f"{out} exists and was not written by tools/build_book.py (no {MANIFEST}); "
                        "move it away or choose another folder with --out")
    out.parent.mkdir(parents=True, exist_ok=True)


def _check_replaceable(out: Path) -> None:
    """Refuse unless ``out`` holds only what an earlier build wrote: its manifest, index and the pages it lists."""
    try:
        manifest = integrity.read_mark(out, MANIFEST, WRITER)
        ours = {MANIFEST, "index.html"} | {lesson["page"] for lesson in manifest["lessons"] if lesson.get("page")}
    except (KeyError, TypeError, AttributeError):
        ours = set()
    others = sorted(p.name for p in out.iterdir() if p.name not in ours or not p.is_file() or p.is_symlink())
    if others:
        raise BookError(f"{out} holds files tools/build_book.py did not write ({', '.join(others[:5])}); nothing was "
                        "replaced: move them away, or build into another folder with --out")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("lessons", nargs="*", help="lesson numbers or file names to build (default: all)")
    parser.add_argument("--out", type=Path, default=OUT, help=f"output folder (default: {OUT.relative_to(ROOT)})")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--rerun", action="store_true", help="execute every lesson again, even with a current copy")
    group.add_argument("--no-execute", action="store_true",
                       help="execute nothing: build only the lessons that have a current executed copy")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        entries = build(args.out.resolve(), args.lessons or None, execute_missing=not args.no_execute,
                        rerun=args.rerun)
    except BookError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    built = [e for e in entries if e.page]
    left = [e.source for e in entries if not e.page]
    print(f"book: {len(built)} lesson page(s) in {time.perf_counter() - start:.0f} s -> {args.out / 'index.html'}")
    if left:
        print(f"not in this build (no current executed copy or not selected): {', '.join(left)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
