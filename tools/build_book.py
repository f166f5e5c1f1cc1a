"""Build the course as a static HTML site of the executed lessons: ``make book``.

    python tools/build_book.py [--out _build/book] [--rerun | --no-execute] [LESSON ...]

Then open ``_build/book/index.html`` in a browser (from the file: the site needs no server and no
network). One page per lesson (prose, code, printed output and figures, as a student sees them after
running it top to bottom), the README's notebook map as the index page. Every page has a sidebar
(``sidebar_html``) with a search box, every lesson built (the current one marked) and, on a lesson's page,
its contents (its h2/h3 headings, linked); at widths up to 900 px the sidebar is hidden behind a *Menu*
button, and nothing is wider than the screen (code, outputs, tables and long formulas scroll in their own
box), so a page reads at 400 px. Links to the previous and next lesson and back to the index sit above and
below each lesson. Pages are made with nbconvert's ``HTMLExporter`` and its ``lab`` template (a small
template of our own adds the sidebar, the navigation and the folds, and drops the scripts a static page
does not need); ``book.css`` and ``book.js`` (the menu button and the search, plain JavaScript, no library)
are written beside them.

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
* **Formulas** (``$...$`` and ``$$...$$`` in markdown cells, not in code spans or blocks, nor a price
  such as "$5") are converted to MathML when the page is built (latex2mathml); browsers draw MathML
  themselves, so no MathJax is loaded and a formula never shows as TeX, offline too. A formula with a
  command latex2mathml does not know fails the build, naming the lesson and cell (``TEX_FIXES`` rewrites
  the few the lessons use, such as ``\\arg\\max``). The pages load nothing from outside (quiz.py keeps
  jupyterquiz's script from fetching a MathJax of its own).
* **Drawing and plumbing code** (cells tagged ``hide-input``, or collapsed in JupyterLab:
  ``metadata.jupyter.source_hidden``) is folded: a closed *Show code* (``<details>``) above its outputs,
  which show as usual.
* **Search**: ``search_index.js`` holds, for every section (a lesson's h1/h2/h3 heading and the prose
  under it), the lesson, the heading's anchor and the text; the box in the sidebar lists the sections that
  hold every word typed, with a snippet, each linked to its page and heading. The index is a script rather
  than JSON so that it loads from ``file://``. Headings that share a text get distinct anchors
  ("Self-check", "Self-check-2").

Why not Jupyter Book 2 (MyST): its site theme is not a package on PyPI or npm; ``jupyter-book build --html``
(2.1.7, mystmd 1.11.0, Node 20) fetches it at build time, and without the internet stops with "request to
https://api.mystmd.org/templates/site/myst/book-theme failed, reason: getaddrinfo ENOTFOUND api.mystmd.org"
(measured 2026-12-08), so neither a course machine offline nor CI could build the book with it.

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


# Markdown's code (fenced blocks and inline spans) is left as it is: a "$" there is code, not a formula.
CODE_IN_MARKDOWN = re.compile(r"(```.*?```|~~~.*?~~~|`[^`\n]*`)", flags=re.S)
DISPLAY_MATH = re.compile(r"(?<!\\)\$\$(.+?)\$\$", flags=re.S)
# Inline math as pandoc reads it: no space just inside the dollars and no digit right after the closing one,
# so "costs $5 and $6" stays prose.
INLINE_MATH = re.compile(r"(?<![\\$])\$(?![\s$])([^$\n]+?)(?<![\s\\])\$(?!\d)")
TEX_FIXES = ((r"\arg\max", r"\mathrm{arg\,max}"), (r"\arg\min", r"\mathrm{arg\,min}"), (r"\_", "_"))


def tex_to_mathml(tex: str, display: bool, where: str) -> str:
    """One formula as MathML (latex2mathml; browsers render MathML Core natively, no script, no network)."""
    from latex2mathml.converter import convert

    fixed = tex.strip()
    for old, new in TEX_FIXES:   # commands latex2mathml does not know, in forms it does
        fixed = fixed.replace(old, new)
    try:
        mathml = convert(fixed, display="block" if display else "inline")
    except Exception as err:  # noqa: BLE001 - its parser raises several kinds; the message says which formula
        raise BookError(f"{where}: formula ${tex}$ cannot be converted to MathML ({type(err).__name__}: {err})") from err
    text = html.unescape(re.sub(r"<[^>]+>", "", mathml))
    if "\\" in text or "merror" in mathml:
        raise BookError(f"{where}: formula ${tex}$ holds a command latex2mathml does not know (it would show as "
                        f"{text!r}); write it another way or add it to TEX_FIXES in tools/build_book.py")
    return mathml.replace(' xmlns="http://www.w3.org/1998/Math/MathML"', "")


def math_to_mathml(markdown: str, where: str) -> str:
    """A markdown cell with its ``$...$`` and ``$$...$$`` formulas replaced by MathML (code spans untouched)."""
    parts = CODE_IN_MARKDOWN.split(markdown)
    for i in range(0, len(parts), 2):   # the even parts are prose, the odd ones code
        prose = DISPLAY_MATH.sub(lambda m: tex_to_mathml(m.group(1), True, where), parts[i])
        parts[i] = INLINE_MATH.sub(lambda m: tex_to_mathml(m.group(1), False, where), prose)
    return "".join(parts)


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
            if cell.metadata.get("jupyter", {}).get("source_hidden") and HIDE_INPUT not in cell.metadata.get("tags", []):
                cell.metadata["tags"] = list(cell.metadata.get("tags", [])) + [HIDE_INPUT]   # collapsed in JupyterLab: folded here
            if shows_figure(cell) and not any(m in out.get("data", {}) for out in outputs for m in IMAGE_TYPES):
                raise BookError(f"{where} calls plt.show() but its executed copy ({executed_path}) has no figure: "
                                "was it run with MPLBACKEND=Agg? Run it again with --rerun")
            cell.outputs = outputs
        if cell.cell_type == "code":
            cell.execution_count = None
        elif cell.cell_type == "markdown":
            cell.source = math_to_mathml(cell.source, where)
        cell.metadata.pop("nbgrader", None)
    page.metadata.pop("widgets", None)
    return page


def course_title() -> str:
    match = re.search(r"^#\s+(.+)$", (ROOT / "README.md").read_text(encoding="utf-8"), flags=re.M)
    return match.group(1).strip() if match else "The course"


# ----------------------------------------------------------------------------- HTML

CSS = """
.book-nav { display: flex; gap: 0.5em 1.5em; align-items: baseline; flex-wrap: wrap; font-family: var(--jp-ui-font-family, sans-serif);
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

# Shared by every page (lesson pages and the index), written once as book.css.
SITE_CSS = """/* tools/build_book.py: the book's layout (sidebar, search, contents, folded code, narrow screens). */
:root { --book-sidebar: 17rem; --book-link: #1a5fb4; }
body { margin: 0 0 0 var(--book-sidebar); }
main { box-sizing: border-box; max-width: 62rem; min-width: 0; margin: 0 auto; padding: 0 1rem 2rem 1rem; }
.book-sidebar { position: fixed; top: 0; left: 0; bottom: 0; width: var(--book-sidebar); box-sizing: border-box; overflow-y: auto;
  padding: 12px 14px 24px 14px; background: #f7f7f8; border-right: 1px solid #ddd; z-index: 1000; line-height: 1.35;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; font-size: 14px; color: #222; }
.book-sidebar a { color: var(--book-link); text-decoration: none; }
.book-sidebar a:hover { text-decoration: underline; }
.book-sidebar h2 { font-size: 12px; text-transform: uppercase; letter-spacing: 0.04em; color: #666; margin: 16px 0 6px 0; }
.book-sidebar ol, .book-sidebar ul { list-style: none; margin: 0; padding: 0; }
.book-lessons li a { display: block; padding: 3px 6px; border-radius: 4px; }
.book-lessons li a[aria-current="page"] { background: #dde7f6; color: #123; font-weight: 600; }
.book-toc li { padding: 2px 0; }
.book-toc li.toc-h3 { padding-left: 1em; font-size: 13px; }
.book-home { font-weight: 600; font-size: 15px; display: block; margin-bottom: 10px; }
.book-search input { box-sizing: border-box; width: 100%; padding: 6px 8px; font-size: 14px; border: 1px solid #bbb; border-radius: 4px; }
.book-search-results { margin-top: 6px !important; }
.book-search-results li { padding: 5px 0; border-bottom: 1px solid #e4e4e4; }
.book-search-results .hit-page { color: #555; font-size: 12px; display: block; }
.book-search-results .hit-snippet { color: #444; font-size: 12px; margin: 2px 0 0 0; }
.book-search-results .hit-none { color: #666; font-style: italic; }
.book-topbar { display: none; }
details.book-fold { margin: 2px 0; }
details.book-fold > summary { cursor: pointer; font-family: system-ui, sans-serif; font-size: 13px; color: #555; padding: 4px 8px;
  background: #f3f3f3; border: 1px solid #e0e0e0; border-radius: 4px; width: max-content; max-width: 100%; box-sizing: border-box; }
details.book-fold[open] > summary { margin-bottom: 4px; }
/* Nothing wider than the page: code, outputs, tables and long formulas scroll inside their own box. */
main img, main svg { max-width: 100%; height: auto; }
main pre, .jp-OutputArea-output, .jp-InputArea-editor, .jp-RenderedHTMLCommon table, main math[display="block"] {
  max-width: 100%; overflow-x: auto; }
.jp-RenderedHTMLCommon table { display: block; }
main math[display="block"] { display: block; overflow-y: hidden; padding: 2px 0; }
.jp-RenderedMarkdown { overflow-wrap: break-word; }
.jp-Cell, .jp-Cell-inputWrapper, .jp-Cell-outputWrapper, .jp-OutputArea, .jp-InputArea { min-width: 0; max-width: 100%; }
@media (max-width: 900px) {
  body { margin-left: 0; }
  .book-topbar { display: flex; gap: 1em; align-items: center; position: sticky; top: 0; z-index: 1001; background: #f7f7f8;
    box-sizing: border-box; height: 2.75rem; border-bottom: 1px solid #ddd; padding: 0 10px; font-family: system-ui, sans-serif;
    font-size: 14px; }
  .book-topbar a { color: var(--book-link); text-decoration: none; min-width: 0; white-space: nowrap; overflow: hidden;
    text-overflow: ellipsis; }
  .book-topbar button { white-space: nowrap; font-size: 14px; padding: 4px 10px; border: 1px solid #bbb; border-radius: 4px; background: #fff; cursor: pointer; }
  .book-sidebar { top: 2.75rem; width: min(20rem, 85vw); transform: translateX(-105%); visibility: hidden; box-shadow: 2px 0 12px rgba(0,0,0,0.2); }
  body.book-sidebar-open .book-sidebar { transform: none; visibility: visible; }
  main { padding: 0 0.5rem 2rem 0.5rem; }
  main h1, main h2, main h3 { scroll-margin-top: 3rem; }   /* an anchor's heading below the sticky bar */
  .jp-Notebook { padding: 0 !important; }
}
"""

# The sidebar's button (narrow screens) and the search box, without any library: the index is search_index.js,
# a script rather than JSON, so that it loads from file:// too (browsers refuse fetch() there).
SITE_JS = r"""// tools/build_book.py: the sidebar's button and the search box (the index: search_index.js, window.BOOK_SEARCH).
(function () {
  'use strict';
  var body = document.body, button = document.getElementById('book-menu'), sidebar = document.getElementById('book-sidebar');
  function setOpen(open) {
    body.classList.toggle('book-sidebar-open', open);
    if (button) button.setAttribute('aria-expanded', String(open));
  }
  if (button) button.addEventListener('click', function () { setOpen(!body.classList.contains('book-sidebar-open')); });
  if (sidebar) sidebar.addEventListener('click', function (e) { if (e.target.closest('a')) setOpen(false); });
  document.addEventListener('keydown', function (e) { if (e.key === 'Escape') setOpen(false); });

  var input = document.getElementById('book-search-input'), list = document.getElementById('book-search-results');
  var sections = (window.BOOK_SEARCH || []).map(function (s) {
    return {s: s, heading: (s.t + ' ' + s.h).toLowerCase(), all: (s.t + ' ' + s.h + ' ' + s.x).toLowerCase()};
  });
  function snippet(text, term) {
    var at = text.toLowerCase().indexOf(term);
    if (at < 0) return text.slice(0, 140) + (text.length > 140 ? '…' : '');
    var start = Math.max(0, at - 60);
    return (start > 0 ? '…' : '') + text.slice(start, at + 100) + (at + 100 < text.length ? '…' : '');
  }
  function show(query) {
    var terms = query.toLowerCase().split(/\s+/).filter(function (t) { return t.length > 0; });
    list.textContent = '';
    if (!terms.length || query.trim().length < 2) return;
    var hits = [];
    sections.forEach(function (e) {
      if (!terms.every(function (t) { return e.all.indexOf(t) >= 0; })) return;
      var score = 0;
      terms.forEach(function (t) { if (e.heading.indexOf(t) >= 0) score += 10; score += Math.min(5, e.all.split(t).length - 1); });
      hits.push({e: e, score: score});
    });
    hits.sort(function (a, b) { return b.score - a.score; });
    if (!hits.length) {
      var none = document.createElement('li'); none.className = 'hit-none'; none.textContent = 'No section mentions that.';
      list.appendChild(none); return;
    }
    hits.slice(0, 20).forEach(function (hit) {
      var s = hit.e.s, li = document.createElement('li'), a = document.createElement('a'), page = document.createElement('span');
      a.href = s.p + (s.a ? '#' + s.a : '');
      page.className = 'hit-page'; page.textContent = s.t;
      a.appendChild(page); a.appendChild(document.createTextNode(s.h || s.t));
      var p = document.createElement('p'); p.className = 'hit-snippet'; p.textContent = snippet(s.x, terms[0]);
      li.appendChild(a); li.appendChild(p); list.appendChild(li);
    });
  }
  if (input && list) {
    input.addEventListener('input', function () { show(input.value); });
    input.addEventListener('keydown', function (e) {
      var first = list.querySelector('a');
      if (e.key === 'Enter' && first) { window.location.href = first.href; }
    });
  }
})();
"""

TEMPLATE = r"""{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block html_head_css -%}<style type="text/css">""" + CSS + r"""</style>
<link rel="stylesheet" href="book.css">{%- endblock html_head_css -%}
{%- block body_header -%}
<body class="jp-Notebook" data-jp-theme-light="true" data-jp-theme-name="JupyterLab Light">
{{ resources.book_sidebar }}
<main>
{{ resources.book_nav_top }}
{%- endblock body_header -%}
{% block body_footer %}
{{ resources.book_nav_bottom }}
</main>
<script src="search_index.js"></script>
<script src="book.js"></script>
</body>
{% endblock body_footer %}
{% block input_group -%}
{%- if 'hide-input' in cell.metadata.get('tags', []) -%}
<details class="book-fold"><summary>Show code</summary>
{{ super() }}
</details>
{%- else -%}
{{ super() }}
{%- endif -%}
{% endblock input_group %}
"""
TOC_MARK = "<!-- book: the page's contents -->"
ASSETS = {"book.css": SITE_CSS, "book.js": SITE_JS}
SEARCH_INDEX = "search_index.js"


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


def sidebar_html(course: str, pages: list[dict], current: str | None) -> str:
    """The bar on every page: search, every lesson built (the current one marked), and the page's contents
    (``TOC_MARK``, filled in once the page is rendered). Behind the ☰ button on narrow screens."""
    items = []
    for entry in pages:
        mark = ' aria-current="page"' if entry["page"] == current else ""
        items.append(f'<li><a href="{entry["page"]}"{mark}>{html.escape(entry["title"])}</a></li>')
    return f"""<header class="book-topbar"><button id="book-menu" type="button" aria-controls="book-sidebar" aria-expanded="false">&#9776; Menu</button>
<a href="index.html">{html.escape(course)}</a></header>
<aside id="book-sidebar" class="book-sidebar">
<a class="book-home" href="index.html">{html.escape(course)}</a>
<div class="book-search" role="search"><input id="book-search-input" type="search" placeholder="Search the course" aria-label="Search the course" autocomplete="off">
<ol id="book-search-results" class="book-search-results" aria-live="polite"></ol></div>
<nav class="book-lessons" aria-label="Lessons"><h2>Lessons</h2><ol>
{chr(10).join(items)}
</ol></nav>
{TOC_MARK if current else ""}
</aside>
"""


HEADING_ID = re.compile(r'(<h[1-6] id=")([^"]+)(">.*?</h[1-6]>)', flags=re.S)


def unique_heading_ids(page_html: str) -> str:
    """nbconvert gives two headings with the same text the same id ("Self-check"); the second becomes
    "Self-check-2" (its anchor link too), so that each entry of the page's contents leads to its own section."""
    seen: dict[str, int] = {}

    def renumber(match):
        ident = match.group(2)
        seen[ident] = seen.get(ident, 0) + 1
        if seen[ident] == 1:
            return match.group(0)
        new = f"{ident}-{seen[ident]}"
        return match.group(1) + new + match.group(3).replace(f'href="#{ident}"', f'href="#{new}"')

    return HEADING_ID.sub(renumber, page_html)


def page_sections(page_html: str) -> list[dict]:
    """The page's headings (h1-h3, with nbconvert's anchors) and, under each, the text of its prose (no code,
    no outputs, no formulas): the page's contents and its part of the search index."""
    from bs4 import BeautifulSoup   # a dependency of nbconvert

    soup = BeautifulSoup(page_html, "html.parser")
    sections = [{"level": 1, "anchor": "", "heading": "", "text": []}]
    for cell in soup.select("main .jp-MarkdownCell .jp-RenderedMarkdown"):
        for element in cell.find_all(recursive=False):
            if element.name in ("h1", "h2", "h3"):
                for link in element.select("a.anchor-link"):
                    link.decompose()
                sections.append({"level": int(element.name[1]), "anchor": element.get("id", ""),
                                 "heading": " ".join(element.get_text().split()), "text": []})
                continue
            for formula in element.find_all("math"):
                formula.replace_with(" ")
            text = " ".join(element.get_text().split())   # inline markup joined as the reader sees it
            if text:
                sections[-1]["text"].append(text)
    return [dict(s, text=" ".join(s["text"])) for s in sections if s["heading"] or s["text"]]


def toc_html(sections: list[dict]) -> str:
    items = [f'<li class="toc-h{s["level"]}"><a href="#{html.escape(s["anchor"])}">{html.escape(s["heading"])}</a></li>'
             for s in sections if s["level"] in (2, 3) and s["anchor"]]
    if not items:
        return ""
    return '<nav class="book-toc" aria-label="On this page"><h2>On this page</h2><ul>\n' + "\n".join(items) + "\n</ul></nav>"


def search_index_js(index: list[dict]) -> str:
    data = json.dumps(index, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/")
    return ("// tools/build_book.py: the search index, one entry per section (p: page, t: lesson, a: anchor, "
            "h: heading, x: text).\nwindow.BOOK_SEARCH = " + data + ";\n")


def index_html(course: str, rows: list[dict], pages: list[dict]) -> str:
    """The index page: the notebook map (lesson, CPU minutes, where to run it), with the sidebar and search."""
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
<link rel="stylesheet" href="book.css">
<style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; line-height: 1.5; color: #222; }}
main {{ max-width: 60em; padding-top: 1em; }}
table {{ border-collapse: collapse; width: 100%; }} th, td {{ text-align: left; padding: 6px 10px; border-bottom: 1px solid #ddd; }}
main a {{ color: #1a5fb4; text-decoration: none; }} main a:hover {{ text-decoration: underline; }}
.note {{ color: #555; font-size: 0.95em; }}
</style></head>
<body>
{sidebar_html(course, pages, None)}
<main>
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
</main>
<script src="search_index.js"></script>
<script src="book.js"></script>
</body></html>
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
        search = []
        for i, entry in enumerate(built):
            page = make_page(SOURCES / entry["source"], ROOT / entry["executed"])
            page.metadata["title"] = f"{entry['title']} — {course}"
            body, _ = exporter.from_notebook_node(page, resources={
                "book_nav_top": _nav(built, i, "top"), "book_nav_bottom": _nav(built, i, "bottom"),
                "book_sidebar": sidebar_html(course, built, entry["page"]),
                "metadata": {"name": entry["title"]},
            })
            body = unique_heading_ids(body)
            sections = page_sections(body)
            body = body.replace(TOC_MARK, toc_html(sections), 1)
            search.extend({"p": entry["page"], "t": entry["title"], "a": s["anchor"] if s["level"] > 1 else "",
                           "h": s["heading"], "x": s["text"]} for s in sections)
            (staging / entry["page"]).write_text(body, encoding="utf-8")
        (staging / "index.html").write_text(index_html(course, [asdict(e) for e in entries], built), encoding="utf-8")
        for name, text in ASSETS.items():
            (staging / name).write_text(text, encoding="utf-8")
        (staging / SEARCH_INDEX).write_text(search_index_js(search), encoding="utf-8")
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
        ours = {MANIFEST, "index.html", SEARCH_INDEX, *ASSETS} | {lesson["page"] for lesson in manifest["lessons"] if lesson.get("page")}
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
