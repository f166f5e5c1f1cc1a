"""Every link in the README leads somewhere: a Colab badge opens a notebook of this repository (at the
address set once in ``finetune_utils.REPO``), a GitHub link names this repository and a path it holds, a
relative link names a file that the repository holds, and a ``#section`` link names one of the README's
headings. Reads files only: no network."""

import re
import subprocess
from pathlib import Path
from urllib.parse import unquote

from finetune_utils import REPO, REPO_BRANCH

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
LINK = re.compile(r"\]\(([^)\s]+)\)")  # [text](target) and ![alt](target), badges inside links included
COLAB = "https://colab.research.google.com/github/"
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
GITHUB = re.compile(r"https://github\.com/([^/#?]+/[^/#?]+)(?:/(?:blob|tree)/([^/]+)/([^#?]*))?")


def without_code(text: str) -> str:
    return re.sub(r"```.*?```", "", text, flags=re.S)  # code blocks hold commands, not links


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def repository_files() -> set[str]:
    """The files a clone of the repository has: git's list where this is a git checkout, else the folder's."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True)
        return set(filter(None, listed.stdout.split("\0")))
    except (OSError, subprocess.CalledProcessError):
        return {p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*") if p.is_file()}


def link_problems(text: str, files: set[str]) -> list[str]:
    """What is wrong with the links of a README ``text`` in a repository holding ``files``: one line each."""
    text = without_code(text)
    anchors = {slug(h) for h in re.findall(r"^#+\s+(.+)$", text, flags=re.M)}

    def holds(path: str) -> bool:
        path = unquote(path).strip("/")
        return path in files or any(f.startswith(path + "/") for f in files)

    problems = []
    for link in LINK.findall(text):
        if link.startswith(COLAB):
            prefix = f"{COLAB}{REPO}/blob/{REPO_BRANCH}/"
            if not link.startswith(prefix):
                problems.append(f"{link}: a Colab badge must open github/{REPO}/blob/{REPO_BRANCH}/ (finetune_utils.REPO)")
            elif not link.endswith(".ipynb") or not holds(link[len(prefix):]):
                problems.append(f"{link}: no notebook {link[len(prefix):]} in the repository (run tools/sync_notebooks.py?)")
        elif link.startswith("https://colab.research.google.com/"):
            if link != BADGE_IMAGE:
                problems.append(f"{link}: neither a notebook of {REPO} nor Colab's badge image")
        elif match := GITHUB.match(link):
            repo, branch, path = match.groups()
            if repo != REPO:
                problems.append(f"{link}: names the repository {repo}, not {REPO} (finetune_utils.REPO)")
            elif path and (branch != REPO_BRANCH or not holds(path)):
                problems.append(f"{link}: no {path} on branch {REPO_BRANCH} of the repository")
        elif link.startswith("#"):
            if link[1:] not in anchors:
                problems.append(f"{link}: no heading of the README has this anchor")
        elif not re.match(r"[a-z]+:", link) and not holds(link.split("#", 1)[0]):
            problems.append(f"{link}: the repository has no such file")
    return problems


def test_every_readme_link_leads_to_something_the_repository_has():
    assert link_problems(README.read_text(encoding="utf-8"), repository_files()) == []


def test_the_readme_has_a_colab_badge_for_every_lesson():
    badges = [link for link in LINK.findall(without_code(README.read_text(encoding="utf-8"))) if link.startswith(COLAB)]
    lessons = sorted(p.name for p in (ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
    assert lessons, "no lessons in solutions/"
    assert sorted(b.rsplit("/", 1)[1] for b in badges) == lessons
    assert all(f"/notebooks/{name}" in " ".join(badges) for name in lessons), "badges must open the student version"


def test_the_check_finds_each_kind_of_broken_link():
    files = {"notebooks/00_a.ipynb", "solutions/00_a.ipynb", "TEACHING.md"}
    good = (f"# Notebook map\n[![b]({BADGE_IMAGE})]({COLAB}{REPO}/blob/{REPO_BRANCH}/notebooks/00_a.ipynb) "
            f"[lesson](notebooks/00_a.ipynb) [t](TEACHING.md) [m](#notebook-map) "
            f"[src](https://github.com/{REPO}/blob/{REPO_BRANCH}/solutions/00_a.ipynb)\n"
            "```bash\n[not a link](nowhere.md)\n```\n")
    assert link_problems(good, files) == []
    broken = {
        f"{COLAB}someone/else/blob/{REPO_BRANCH}/notebooks/00_a.ipynb": "Colab badge must open",
        f"{COLAB}{REPO}/blob/{REPO_BRANCH}/notebooks/07_gone.ipynb": "no notebook notebooks/07_gone.ipynb",
        "notebooks/07_gone.ipynb": "no such file",
        "#no-such-section": "no heading",
        f"https://github.com/someone/else/blob/{REPO_BRANCH}/README.md": "names the repository someone/else",
        f"https://github.com/{REPO}/blob/{REPO_BRANCH}/data/missing.jsonl": "no data/missing.jsonl",
    }
    for target, expected in broken.items():
        problems = link_problems(good + f"[x]({target})\n", files)
        assert len(problems) == 1 and expected in problems[0], (target, problems)
