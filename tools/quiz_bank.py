"""Edit the self-check question bank of finetune_utils.quiz.

The bank ships encoded in ``finetune_utils/_quiz_bank.py`` (answers only as salted hashes),
so it is edited through a plain-text JSON source that is never committed:

    python tools/quiz_bank.py export                 # -> _build/quiz_source.json (answers in clear text)
    # edit the JSON: add a question, reword an option, ...
    python tools/quiz_bank.py build _build/quiz_source.json   # -> finetune_utils/_quiz_bank.py
    python tools/quiz_bank.py list                   # ids, lessons and topics

A question in the source::

    {"id": "q03_frozen", "lesson": 3, "kind": "choice",        # or "order"
     "topic": "Freezing encoder parameters", "text": "...",
     "options": {"A": "...", "B": "...", "C": "..."},          # order: the steps to arrange
     "explanations": {"A": "...", "B": "...", "C": "..."},     # one per option / step
     "answer": "B"}                                            # order: the letters in order, e.g. "CADB"

``build`` validates every question, keeps the salt of questions that have one (so that a
rebuild of an unchanged source gives an identical file) and draws a new one otherwise.
Keep the exported JSON out of the repository: it contains the answers. Then run
``python -m pytest tests/test_quiz.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from finetune_utils import quiz  # noqa: E402

BANK_FILE = ROOT / "finetune_utils" / "_quiz_bank.py"
DEFAULT_SOURCE = ROOT / "_build" / "quiz_source.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    exp = sub.add_parser("export", help="write the bank as editable JSON (answers in clear text)")
    exp.add_argument("path", nargs="?", type=Path, default=DEFAULT_SOURCE)
    build = sub.add_parser("build", help="encode a JSON source into finetune_utils/_quiz_bank.py")
    build.add_argument("path", type=Path)
    build.add_argument("--out", type=Path, default=BANK_FILE, help="where to write (default: the package's bank)")
    sub.add_parser("list", help="list the questions")
    args = parser.parse_args(argv)

    if args.command == "export":
        args.path.parent.mkdir(parents=True, exist_ok=True)
        args.path.write_text(json.dumps(quiz._export_source(), ensure_ascii=False, indent=2) + "\n")
        print(f"wrote {args.path} ({len(quiz.questions())} questions). It contains the answers: do not commit it.")
    elif args.command == "build":
        try:
            source = json.loads(args.path.read_text())
            text = quiz._bank_module_text(source)
        except (OSError, json.JSONDecodeError, ValueError) as err:
            print(f"{args.path}: {err}", file=sys.stderr)
            return 1
        args.out.write_text(text)
        print(f"wrote {args.out} ({len(source)} questions)")
    else:
        for qid in quiz.questions():
            q = quiz.get(qid)
            print(f"{q.id:<24} lesson {q.lesson:02d}  {q.kind:<6}  {q.topic}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
