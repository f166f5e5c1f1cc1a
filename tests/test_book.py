"""The rendered course (``make book``): build it from executed lessons and read it in headless Chromium.

Which lessons
-------------
In ``make test`` nbval has already run every lesson of solutions/ by the time this test runs (the
Makefile runs it in a second pytest session, after the parallel one that runs the lessons; a plain
``pytest`` orders it last), and tests/conftest.py has written each lesson that passed to
_build/notebooks/; the book is built from those, so no lesson is executed twice. With
``BOOK_EVERY_LESSON=1`` (set by ``make test``) every lesson must be in the book. Run on its own
(``pytest tests/test_book.py``), the test uses whichever executed copies in _build/notebooks/ ran
the lessons' current code, and executes lessons 00 and 01 with tools/run_all.py if they have
none, so the book always holds at least two lessons. Every lesson that nbval ran in full in this
session must be in the book.

What is checked
---------------
* The builder: the site is written to a temporary folder with tools/build_book.py.
* Without a browser: no exercise answer reaches a page (no line of a solution region, no
  solution marker), and no quiz answer as text either (no explanation from the quiz bank, no
  readable ``"correct": true``: jupyterquiz's questions travel base64-encoded).
* In Debian's Chromium, driven by Playwright, for every page: the title is the lesson's, each
  figure of the executed lesson is there and decoded (one ``<img>``/``<svg>`` per image output of a
  cell that is not an exercise), no error output, one rendered jupyterquiz per quiz, no
  explanation visible before an answer, every quiz answered right by clicking its option (or
  typing the steps' letters) shows its "Right" feedback, and the links to the
  previous and next lesson and to the index lead to those pages. The sidebar lists every lesson
  built, the page's own marked; its contents list the page's h2/h3 headings, each leading to its
  heading; the code of ``hide-input`` cells is folded (a closed ``<details>``, the code not shown);
  formulas are MathML that the browser draws, and no ``$...$`` is left in the prose; at 400 px the
  page does not scroll sideways and the sidebar opens with the Menu button. The search box, typed a
  heading of the last page into, lists that section, and its link opens the page at the heading.
  The index lists every lesson and links every page built. Nothing is requested from outside.
* The formula conversion on its own: code spans and prices stay as they are, an unknown command
  fails the build.
* A screenshot of lesson 03's first figure (or of the first page with a figure, when 03 is not
  built) goes to _build/book_test/, at 1200 and at 400 px wide (docs/book_lesson00.png is a copy of
  one, from a build without 03).

Skipped without Chromium or Playwright, except in CI (``CI`` set), where that fails.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
from pathlib import Path
from urllib.parse import urlsplit

import nbformat
import pytest

from test_jupyterlab_ui import CHROMIUM, CHROMIUM_ARGS, _require_browser

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tools"))
import build_book  # noqa: E402

SHOTS = REPO / "_build" / "book_test"
ALWAYS = ("00", "01")        # executed here when they have no current copy (the two fastest lessons)
SCREENSHOT_LESSON = "03"
QUIZ_TEXT = re.compile(r"^Self-check q\d\d_\w+ ")   # the text/plain of a quiz.show output
PAGE_S = 60


def _images(cell) -> int:
    return sum(1 for out in cell.get("outputs", []) if any(m in out.get("data", {}) for m in build_book.IMAGE_TYPES))


def expected(executed_path: Path) -> dict:
    """What a page must show, read from the executed lesson (not from the builder's output)."""
    nb = nbformat.read(executed_path, as_version=4)
    visible = [c for c in nb.cells if c.cell_type == "code" and not build_book.is_exercise(c)]
    quizzes = sum(1 for c in visible for out in c.outputs
                  if QUIZ_TEXT.match(str(out.get("data", {}).get("text/plain", ""))))
    no_figure = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and not build_book.is_exercise(c)
                 and build_book.shows_figure(c) and not _images(c)]
    assert not no_figure, f"{executed_path.name}: cells {no_figure} call plt.show() but hold no figure"
    return {"images": sum(_images(c) for c in visible), "quizzes": quizzes}


def solution_lines(source: Path) -> list[str]:
    """The non-trivial lines inside the solution regions of a lesson that occur nowhere outside them
    (a line such as ``optimizer.zero_grad(set_to_none=True)`` may also be lesson code the page shows)."""
    nb = nbformat.read(source, as_version=4)
    lines, outside, inside = [], set(), False
    for cell in nb.cells:
        for line in cell.source.splitlines():
            stripped = line.strip()
            if stripped.startswith("### BEGIN SOLUTION"):
                inside = True
            elif stripped.startswith("### END SOLUTION"):
                inside = False
            elif inside and len(stripped) >= 25 and not stripped.startswith("#"):
                lines.append(stripped)
            elif not inside:
                outside.add(stripped)
    return [line for line in lines if line not in outside]


def quiz_explanations(page_text: str) -> list[str]:
    from finetune_utils import quiz

    ids = re.findall(r"Self-check (q\d\d_\w+) ", page_text)
    return [text for qid in ids for text in quiz.get(qid).explanations.values()]


@pytest.fixture(scope="module")
def book(tmp_path_factory, executed_lessons):
    for source in build_book.lessons(list(ALWAYS)):
        if build_book.current_copy(source) is None:
            build_book.ensure_executed([source])
    out = tmp_path_factory.mktemp("book") / "site"
    entries = build_book.build(out, execute_missing=False)
    built = {e.source for e in entries if e.page}
    fully_run = set(executed_lessons.written)
    assert fully_run <= built, f"executed by nbval in this session but not in the book: {sorted(fully_run - built)}"
    if os.environ.get("BOOK_EVERY_LESSON"):  # make test: nbval ran every lesson in the pytest session before this one
        missing = sorted({s.name for s in build_book.lessons()} - built)
        assert not missing, (f"no current executed copy in _build/notebooks/ of {missing}: nbval did not run them in "
                             "full in the session before this one (see its failures)")
    assert {f"{s.name}" for s in build_book.lessons(list(ALWAYS))} <= built
    print(f"\nbook built from {len(built)} lesson(s): {', '.join(sorted(b[:2] for b in built))}"
          + (f" (nbval wrote {len(fully_run)} in this session)" if fully_run else ""))
    return out, entries


def test_a_rebuild_keeps_a_file_someone_added(book, tmp_path):
    out = tmp_path / "site"
    shutil.copytree(book[0], out)
    (out / "my notes.txt").write_text("mine")
    with pytest.raises(build_book.BookError, match="did not write .*my notes.txt"):
        build_book.build(out, ["00"], execute_missing=False)
    assert (out / "my notes.txt").read_text() == "mine" and (out / "index.html").is_file()
    assert not list(tmp_path.glob(".book-*"))  # the staging folder is gone


def test_no_answers_in_the_pages(book):
    out, entries = book
    for entry in entries:
        if not entry.page:
            continue
        text = (out / entry.page).read_text(encoding="utf-8")
        plain = _unescape(text)
        for marker in build_book.SOLUTION_MARKERS:
            assert marker not in plain, f"{entry.page}: {marker!r} in the page"
        page_lines = {line.strip() for line in plain.splitlines()}  # whole lines: a solution line may be a prefix of lesson code
        leaked = [line for line in solution_lines(build_book.SOURCES / entry.source) if line in page_lines]
        assert not leaked, f"{entry.page}: solution lines in the page: {leaked[:3]}"
        explanations = quiz_explanations(plain)
        quizzes = expected(REPO / entry.executed)["quizzes"]
        assert len(explanations) >= 3 * quizzes, f"{entry.page}: not every quiz names its question"
        explained = [e for e in explanations if e.strip()[:60] in plain]
        assert not explained, f"{entry.page}: quiz explanations (answers) in the page: {explained[:2]}"
        assert not re.search(r'"correct":\s*(true|false)', plain), f"{entry.page}: a quiz's answer key is readable"
        exercises = sum(1 for c in nbformat.read(build_book.SOURCES / entry.source, as_version=4).cells
                        if c.metadata.get("nbgrader", {}).get("solution"))
        assert plain.count("raise NotImplementedError") >= exercises, f"{entry.page}: student stubs missing"
        folds = folded_cells(build_book.SOURCES / entry.source)
        assert text.count('<details class="book-fold">') == folds, f"{entry.page}: expected {folds} folded cells"
        external = re.findall(r'<(?:script|link)\b[^>]*\b(?:src|href)="((?:https?:)?//[^"]*)"', text)
        assert not external, f"{entry.page}: loads from outside: {external}"


def folded_cells(source: Path) -> int:
    """Code cells tagged hide-input or collapsed in JupyterLab (source_hidden): the page folds their code."""
    return sum(1 for c in nbformat.read(source, as_version=4).cells if c.cell_type == "code"
               and not build_book.is_exercise(c) and (build_book.HIDE_INPUT in c.metadata.get("tags", [])
                                                      or c.metadata.get("jupyter", {}).get("source_hidden")))


def has_formulas(source: Path) -> bool:
    """The lesson's prose holds TeX (a "$" outside code spans and blocks)."""
    return any("$" in re.sub(r"```.*?```|`[^`\n]*`", "", c.source, flags=re.S)
               for c in nbformat.read(source, as_version=4).cells if c.cell_type == "markdown")


def test_formulas_become_mathml_and_code_stays():
    out = build_book.math_to_mathml("Loss $L(\\theta) = -\\log p$, costs $5 and $6; `x = \"$a$\"`\n\n"
                                    "$$\\hat y = \\arg\\max_y p(y)$$\n```\n$HOME $x$\n```", "t")
    assert out.count("<math") == 2 and '<math display="block">' in out
    assert "costs $5 and $6" in out and '`x = "$a$"`' in out and "$HOME $x$" in out
    assert "\\" not in re.sub(r"```.*?```", "", out, flags=re.S)
    with pytest.raises(build_book.BookError, match="does not know"):
        build_book.math_to_mathml("$\\nosuchcommand x$", "lesson 99, cell 3")


def _unescape(page: str) -> str:
    """The page's text: tags removed, entities decoded (Pygments splits code into spans)."""
    import html

    return html.unescape(re.sub(r"<[^>]+>", "", page))


_PAGE_JS = """
() => {
  const main = document.querySelector('main');
  const outputs = [...main.querySelectorAll('.jp-OutputArea-output')];
  const imgs = [...main.querySelectorAll('.jp-OutputArea-output img')];
  const svgs = [...main.querySelectorAll('.jp-OutputArea-output[data-mime-type="image/svg+xml"] > svg')];
  const stderr = outputs.filter(e => e.getAttribute('data-mime-type') === 'application/vnd.jupyter.stderr')
                        .map(e => e.textContent).filter(t => /Traceback \\(most recent call last\\)/.test(t));
  const link = sel => { const a = document.querySelector(sel); return a ? a.getAttribute('href') : null; };
  return {
    title: document.title,
    h1: (main.querySelector('h1') || {textContent: ''}).textContent,
    images: imgs.length + svgs.length,
    broken: imgs.filter(i => !(i.complete && i.naturalWidth > 0)).length,
    errors: stderr.map(t => t.slice(0, 500)),
    quizzes: main.querySelectorAll('.course-quiz').length,
    rendered: main.querySelectorAll('.course-quiz .Quiz').length,
    text: main.innerText,
    exercises: main.querySelectorAll('.celltag_book-exercise').length,
    index: link('nav.top a.book-index'), prev: link('nav.top a[rel=prev]'), next: link('nav.top a[rel=next]'),
    bottom_next: link('nav.bottom a[rel=next]'),
    cells: main.querySelectorAll('.jp-Cell').length,
    lessons: [...document.querySelectorAll('#book-sidebar .book-lessons a')].map(a => a.getAttribute('href')),
    current: [...document.querySelectorAll('#book-sidebar .book-lessons a[aria-current=page]')].map(a => a.getAttribute('href')),
    toc: [...document.querySelectorAll('#book-sidebar .book-toc a')].map(a => a.getAttribute('href')),
    headings: [...main.querySelectorAll('.jp-MarkdownCell h2[id], .jp-MarkdownCell h3[id]')].map(h => '#' + h.id),
    heading_texts: [...main.querySelectorAll('.jp-MarkdownCell h2[id]')].map(h => [h.id, h.textContent.replace('¶', '').trim()]),
    folds: main.querySelectorAll('details.book-fold').length,
    open_folds: main.querySelectorAll('details.book-fold[open]').length,
    folded_code_shown: [...main.querySelectorAll('details.book-fold .jp-InputArea')]
                         .filter(e => e.checkVisibility({visibilityProperty: true})).length,
    // TeX left in the prose, as the builder reads it ("$5 and $6" is prose, not a formula)
    raw_tex: [...main.querySelectorAll('.jp-MarkdownCell .jp-RenderedMarkdown')].map(cell => {
               const c = cell.cloneNode(true); c.querySelectorAll('code, pre, math').forEach(e => e.remove());
               return c.textContent; }).join('\\n').match(/\\$\\$[\\s\\S]+?\\$\\$|\\$[^$\\s](?:[^$\\n]*?[^$\\s])?\\$(?!\\d)/g) || [],
    formulas: main.querySelectorAll('.jp-MarkdownCell math').length,
    flat_formulas: [...main.querySelectorAll('.jp-MarkdownCell math')]
                     .filter(m => { const r = m.getBoundingClientRect(); return r.width < 1 || r.height < 1; }).length,
  };
}
"""

_NARROW_JS = """
() => ({scroll: document.documentElement.scrollWidth, width: window.innerWidth,
        wide: [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > window.innerWidth + 1
                 && !e.closest('#book-sidebar, pre, table, math, .jp-OutputArea-output, .jp-InputArea-editor'))
                 .slice(0, 5).map(e => e.tagName + '.' + e.className)})
"""


def check_narrow(page, name: str) -> None:
    """At 400 px: no sideways scroll of the page, the sidebar hidden until the Menu button opens it."""
    from playwright.sync_api import expect

    page.set_viewport_size({"width": 400, "height": 800})
    try:
        narrow = page.evaluate(_NARROW_JS)
        assert narrow["scroll"] <= narrow["width"], f"{name} at 400 px scrolls sideways: {narrow}"
        expect(page.locator("#book-sidebar")).to_be_hidden()
        page.locator("#book-menu").click()
        expect(page.locator("#book-sidebar .book-lessons")).to_be_visible()
        expect(page.locator("#book-search-input")).to_be_visible()
        page.locator("#book-menu").click()
        expect(page.locator("#book-sidebar")).to_be_hidden()
    finally:
        page.set_viewport_size({"width": 1200, "height": 900})


def answer_quizzes(page, visible: str, name: str) -> None:
    """Each quiz of the page, live without a kernel: no explanation shows before an answer; the right answer
    (a click on its option, or its step letters typed and Enter) shows jupyterquiz's "Right" feedback."""
    from playwright.sync_api import expect

    from finetune_utils import quiz

    for box in page.locator("main .course-quiz").all():
        q = quiz.get(box.get_attribute("data-quiz"))
        shown = [e for e in q.explanations.values() if e[:60] in visible]
        assert not shown, f"{name}: {q.id}'s explanations visible before an answer: {shown[:1]}"
        box.scroll_into_view_if_needed()
        if q.kind == "choice":
            option = box.locator("label.MCButton").nth(q.letters.index(q.answer))   # the bank's order: not shuffled
            expect(option).to_contain_text(f"{q.answer}. ")
            option.click()
        else:
            box.locator("input.Input-text").click()
            box.locator("input.Input-text").type(q.answer)
            box.locator("input.Input-text").press("Enter")
        expect(box.locator(".Feedback")).to_contain_text("✓ Right", timeout=PAGE_S * 1000)


def test_book_pages_render_in_chromium(book):
    _require_browser()
    from playwright.sync_api import expect, sync_playwright

    out, entries = book
    pages = [e for e in entries if e.page]
    SHOTS.mkdir(parents=True, exist_ok=True)
    outside: list[str] = []

    def route(r):
        url = r.request.url
        if urlsplit(url).scheme in ("file", "data", "about", "blob"):
            return r.continue_()
        outside.append(url)
        return r.abort()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS, timeout=60_000)
        try:
            context = browser.new_context(viewport={"width": 1200, "height": 900})
            context.set_default_timeout(PAGE_S * 1000)
            context.route("**/*", route)
            page = context.new_page()

            # The index: every lesson listed, a link for every page built.
            page.goto((out / "index.html").as_uri(), wait_until="load")
            rows = page.locator("#notebook-map tbody tr")
            assert rows.count() == len(entries)
            for entry in entries:
                link = page.locator(f'#notebook-map a[href="{entry.page}"]') if entry.page else None
                if link is not None:
                    assert link.count() == 1 and link.inner_text() == entry.title, entry.page
            sidebar = [a.get_attribute("href") for a in page.locator("#book-sidebar .book-lessons a").all()]
            assert sidebar == [p.page for p in pages], f"index.html's sidebar: {sidebar}"
            check_narrow(page, "index.html")

            shot = None
            headings: dict[str, list] = {}
            for i, entry in enumerate(pages):
                page.goto((out / entry.page).as_uri(), wait_until="load")
                page.wait_for_function("() => [...document.images].every(i => i.complete)", timeout=PAGE_S * 1000)
                state = page.evaluate(_PAGE_JS)
                want = expected(REPO / entry.executed)
                where = f"{entry.page}: {dict((k, v) for k, v in state.items() if k != 'text')}"
                assert state["title"].startswith(entry.title), where
                assert entry.title in state["h1"], where
                assert state["images"] == want["images"], f"{where}; expected {want['images']} figures"
                assert state["broken"] == 0, where
                assert not state["errors"], where
                assert state["quizzes"] == state["rendered"] == want["quizzes"], (
                    f"{where}; expected {want['quizzes']} quizzes (an executed copy older than jupyterquiz: run it again)")
                answer_quizzes(page, state["text"], entry.page)
                assert state["index"] == "index.html", where
                assert state["prev"] == (pages[i - 1].page if i > 0 else None), where
                assert state["next"] == (pages[i + 1].page if i + 1 < len(pages) else None), where
                assert state["bottom_next"] == state["next"], where
                # The sidebar: every lesson built, this one marked; the page's contents, each leading to its heading.
                assert state["lessons"] == [p.page for p in pages], where
                assert state["current"] == [entry.page], where
                assert state["toc"] and state["toc"] == state["headings"], where
                assert len(set(state["headings"])) == len(state["headings"]), f"{where}: two headings share an anchor"
                target = state["toc"][-1]
                page.locator("#book-sidebar .book-toc a").last.click()
                page.wait_for_function("h => decodeURIComponent(location.hash) === h", arg=target)
                top = page.evaluate("h => document.getElementById(h.slice(1)).getBoundingClientRect().top", target)
                # the browser scrolls the heading to the top, give or take a fraction of a pixel (y=-0.47 was seen)
                assert -2 <= top < 900, f"{entry.page}: contents link {target} leaves its heading at y={top}, off screen"
                # Drawing code folded (closed, its code not shown; its figure counted above); formulas drawn, no TeX.
                folds = folded_cells(build_book.SOURCES / entry.source)
                assert (state["folds"], state["open_folds"], state["folded_code_shown"]) == (folds, 0, 0), where
                assert not state["raw_tex"], f"{entry.page}: TeX left in the prose: {state['raw_tex'][:5]}"
                if has_formulas(build_book.SOURCES / entry.source):
                    assert state["formulas"] > 0 and state["flat_formulas"] == 0, where
                check_narrow(page, entry.page)
                headings[entry.page] = state["heading_texts"]
                if shot is None and (entry.number == SCREENSHOT_LESSON or
                                     (want["images"] and not any(p.number == SCREENSHOT_LESSON for p in pages))):
                    figure = page.locator(".jp-OutputArea-output img").first
                    if figure.count():
                        figure.evaluate("e => e.closest('.jp-Cell').scrollIntoView({block: 'center'})")
                    shot = SHOTS / f"book_lesson{entry.number}.png"
                    page.screenshot(path=str(shot))
                    page.set_viewport_size({"width": 400, "height": 800})
                    page.screenshot(path=str(SHOTS / f"book_lesson{entry.number}_400px.png"))
                    page.set_viewport_size({"width": 1200, "height": 900})

            # Search, from the first page: a section heading of the last page that no other heading contains
            # lists that section, and its link opens the page at the heading.
            last = pages[-1]
            every = [(name, i, t.lower()) for name, heads in headings.items() for i, t in heads]
            ident, words = next((i, t) for i, t in headings[last.page] if not any(
                t.lower() in other for name, j, other in every if (name, j) != (last.page, i)))
            page.goto((out / pages[0].page).as_uri(), wait_until="load")
            page.locator("#book-search-input").fill(words)
            want = f"{last.page}#{ident}"
            page.wait_for_function("() => document.querySelectorAll('#book-search-results a').length > 0")
            hits = [a for a in page.locator("#book-search-results a").all() if a.get_attribute("href") == want]
            assert hits, (f"searching {words!r} does not list {want}: "
                          f"{[a.get_attribute('href') for a in page.locator('#book-search-results a').all()]}")
            hits[0].click()
            page.wait_for_function("([p, h]) => location.pathname.endsWith('/' + p) && decodeURIComponent(location.hash) "
                                   "=== '#' + h", arg=[last.page, ident])
            page.locator("#book-search-input").fill("zzqxv nothing like this")
            expect(page.locator("#book-search-results .hit-none")).to_be_visible()

            # The links work: next from the first page, back with prev, up to the index.
            if len(pages) > 1:
                page.goto((out / pages[0].page).as_uri(), wait_until="load")
                page.locator("nav.top a[rel=next]").click()
                page.wait_for_url(re.compile(re.escape(pages[1].page) + "$"))
                page.locator("nav.bottom a[rel=prev]").click()
                page.wait_for_url(re.compile(re.escape(pages[0].page) + "$"))
            page.locator("nav.top a.book-index").click()
            page.wait_for_url(re.compile(r"/index\.html$"))
        finally:
            with contextlib.suppress(Exception):
                browser.close()

    assert not outside, f"the pages requested outside URLs: {outside[:10]}"
    assert shot is not None and shot.is_file()
    print(f"\nscreenshot {shot}")
