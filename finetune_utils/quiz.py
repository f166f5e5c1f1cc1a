"""Self-check quizzes: short multiple-choice and ordering questions inside the lessons.

Every lesson shows two or three, each right after the part that teaches what it asks: 00 what an
encoder without a head gives and where a small model's parameters sit; 01 why a general model is
not deployed as it is, what the new head is, and the pre-train/fine-tune steps in order; 02 the
fine-tuning objective (and its steps in order); 03 freezing and LoRA; 04 inference, what to save,
calibration; 05 heads, sentence pairs and token labels; 06 prompting; 07 instruction tuning;
08 diagnosing a run; 09 choosing a strategy; 10 DPO.

The questions live in readable YAML files next to this module, one per lesson
(``finetune_utils/quizzes/NN.yaml``). A teacher edits one, then validates them all::

    python -m finetune_utils.quiz --check

A lesson shows a question in a code cell of its own (no assertion, so nbval runs it in a second)::

    from finetune_utils import quiz
    quiz.show("q01_deploy")      # interactive (jupyterquiz): click an option, read the feedback
    quiz.ask("q01_deploy")       # the same question as plain text
    quiz.check("q01_deploy", "B")            # right/wrong and the explanation; True/False
    quiz.check("q01_order_steps", "BDAC")    # ordering: the step letters, first step first
    quiz.questions(lesson=1)     # the ids of lesson 01

``show`` draws the question with jupyterquiz, as HTML with its own script, so it is interactive in
JupyterLab, on Colab and in the static book (``make book``), with no kernel behind it. A choice is
jupyterquiz's "multiple_choice": each option's explanation is its feedback. jupyterquiz has no
ordering type, so an ordering question is a "string" question: the steps are listed with their
letters and the student types the letters in order ("BDAC", then Enter); every ordering of up to five
letters has the feedback ``check`` prints (how many steps are in place, hints for the others).
The question travels base64-encoded in the script, so the page shows no answer as text; anyone can
decode it or read the YAML: this is a self-check, not an exam. Outside a notebook, or without
jupyterquiz, ``show`` prints the question and how to answer with ``check``; that text is also the
output's ``text/plain``, which static and text viewers show.
"""

from __future__ import annotations

import argparse
import base64
import difflib
import html
import itertools
import json
import random
import re
import sys
import textwrap
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

BANK_DIR = Path(__file__).with_name("quizzes")
KINDS = ("choice", "order")
FIELDS = ("id", "kind", "topic", "text", "options", "explanations", "answer")
_ID_PATTERN = re.compile(r"^q(\d\d)_[a-z0-9_]+$")
_WIDTH = 88


class UnknownQuestionError(KeyError):
    """The question id is not in the bank."""

    def __str__(self) -> str:  # KeyError would print the message with quotes around it
        return str(self.args[0]) if self.args else "unknown question"


class InvalidAnswerError(ValueError):
    """The answer is not a well-formed answer to the question (not merely a wrong one)."""


class QuizBankError(ValueError):
    """A quiz file is malformed; the message names the file, the question and what to fix."""


@dataclass(frozen=True)
class Question:
    """One question of the bank."""

    id: str
    lesson: int
    kind: str  # "choice" or "order"
    topic: str
    text: str
    options: dict  # letter -> option text (for "order": the steps to arrange)
    explanations: dict  # letter -> why this option is right/wrong (or where this step belongs)
    answer: str  # "choice": one letter; "order": every letter once, first step first

    @property
    def letters(self) -> list[str]:
        return list(self.options)


# --------------------------------------------------------------------------- the bank


def _need(ok, where: str, fix: str, error=QuizBankError) -> None:
    if not ok:
        raise error(f"{where}: {fix}")


def _validate_question(q, where: str, lesson: int) -> Question:
    """Check one question read from a lesson's file; return it as a :class:`Question`."""
    _need(isinstance(q, dict), where, f"each question is a mapping of {', '.join(FIELDS)}")
    where = f"{where} ({q.get('id', '?')})"
    missing, unknown = [k for k in FIELDS if k not in q], sorted(set(q) - set(FIELDS))
    _need(not missing and not unknown, where, f"missing field(s) {missing}, unknown field(s) {unknown}")
    match = _ID_PATTERN.match(str(q["id"]))
    _need(match, where, "ids look like 'q01_deploy' (q, two-digit lesson, _, lowercase words)")
    _need(int(match.group(1)) == lesson, where, f"the id's lesson {match.group(1)} does not match the file's ({lesson:02d})")
    _need(q["kind"] in KINDS, where, f"kind must be one of {KINDS}, got {q['kind']!r}")
    _need(isinstance(q["options"], dict) and isinstance(q["explanations"], dict), where,
          "options and explanations are mappings from a letter to a text")
    letters = [str(k) for k in q["options"]]
    _need(len(letters) >= 3 and letters == [chr(ord("A") + k) for k in range(len(letters))], where,
          f"options must be labelled A, B, C, ... in order (at least 3), got {letters}")
    _need(sorted(str(k) for k in q["explanations"]) == letters, where,
          f"give one explanation per option {letters}, got {sorted(q['explanations'])}")
    texts = [q["text"], q["topic"], *q["options"].values(), *q["explanations"].values()]
    _need(all(isinstance(t, str) and t.strip() for t in texts), where,
          "the topic, the text, every option and every explanation must be non-empty text")
    answer = str(q["answer"]).strip()
    if q["kind"] == "choice":
        _need(answer in letters, where, f"the answer of a choice question is one of {letters}, got {answer!r}")
    _need(q["kind"] == "choice" or sorted(answer) == letters, where,
          f"the answer of an order question uses every letter {letters} once, got {answer!r}")
    return Question(id=q["id"], lesson=lesson, kind=q["kind"], topic=q["topic"].strip(), text=q["text"].strip(),
                    options={k: v.strip() for k, v in q["options"].items()},
                    explanations={k: q["explanations"][k].strip() for k in letters}, answer=answer)


def validate(folder: Path | str = BANK_DIR) -> dict[str, Question]:
    """Read and check every ``NN.yaml`` in ``folder``; return the questions by id.

    Raises :class:`QuizBankError` naming the file and the question for anything malformed
    (a YAML syntax error, a missing field, a wrong answer format, a duplicate id).
    """
    import yaml

    bank: dict[str, Question] = {}
    paths = sorted(Path(folder).glob("*.yaml"))
    _need(paths, "no quiz files (NN.yaml)", f"add one to {folder}")
    for path in paths:
        _need(re.fullmatch(r"\d\d", path.stem), path.name, "name a quiz file after its lesson, e.g. 03.yaml")
        try:
            entries = yaml.safe_load(path.read_text(encoding="utf-8")) or []
        except yaml.YAMLError as err:
            raise QuizBankError(f"{path.name}: not valid YAML: {err}") from None
        _need(isinstance(entries, list), path.name, "the file is a list of questions, each starting with '- id: ...'")
        for i, entry in enumerate(entries, start=1):
            question = _validate_question(entry, f"{path.name}, question {i}", int(path.stem))
            _need(question.id not in bank, f"{path.name}, question {i}", f"duplicate id {question.id}")
            bank[question.id] = question
    return bank


@lru_cache(maxsize=1)
def _bank() -> dict[str, Question]:
    return validate(BANK_DIR)


# --------------------------------------------------------------------------- lookup


def questions(lesson: int | None = None) -> list[str]:
    """The ids of the bank's questions, in lesson order; only lesson ``lesson``'s if given."""
    if lesson is not None and (isinstance(lesson, bool) or not isinstance(lesson, int) or not 0 <= lesson <= 99):
        raise ValueError(f"lesson must be a lesson number such as 1 or 7, got {lesson!r}")
    ids = sorted(_bank(), key=lambda i: (_bank()[i].lesson, i))
    return [i for i in ids if lesson is None or _bank()[i].lesson == lesson]


def get(question_id: str) -> Question:
    """The :class:`Question` with this id; an unknown id raises :class:`UnknownQuestionError`."""
    if not isinstance(question_id, str):
        raise TypeError(f"a question id is a string such as 'q01_deploy', got {question_id!r}")
    bank = _bank()
    if question_id in bank:
        return bank[question_id]
    close = difflib.get_close_matches(question_id, list(bank), n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise UnknownQuestionError(
        f"No self-check question {question_id!r}.{hint} Available: {', '.join(questions())} "
        "(quiz.questions(lesson=N) lists one lesson's)."
    )


# --------------------------------------------------------------------------- answers


def _normalise(q: Question, answer) -> str:
    """The answer as letters ("B", "BDAC"); one that is not well formed raises InvalidAnswerError saying why."""
    letters, bad = q.letters, InvalidAnswerError
    if q.kind == "choice":
        _need(isinstance(answer, str), q.id, f'answer with one option letter as a string, like '
              f'quiz.check("{q.id}", "A"); got {answer!r}', bad)
        text = answer.strip().rstrip(".)").strip().upper()
        _need(text in letters, q.id, f"{answer!r} is not an option; answer with one letter of {', '.join(letters)}.", bad)
        return text
    if isinstance(answer, (list, tuple)):
        _need(all(isinstance(a, str) for a in answer), q.id, f"give the step letters as strings, got {answer!r}", bad)
        answer = "".join(answer)
    _need(isinstance(answer, str), q.id,
          f'answer with the step letters in order as a string (like "B, D, ..."); got {answer!r}', bad)
    text = re.sub(r"[\s,;>/|\-→]+", "", answer).upper()
    unknown = sorted({c for c in text if c not in letters})
    _need(not unknown, q.id, f"{', '.join(unknown)} {'is not a step' if len(unknown) == 1 else 'are not steps'}; "
          f"the steps are {', '.join(letters)}.", bad)
    repeated = sorted({c for c in text if text.count(c) > 1})
    _need(not repeated, q.id, f"step{'s' if len(repeated) > 1 else ''} {', '.join(repeated)} "
          f"appear{'' if len(repeated) > 1 else 's'} more than once; use each step once.", bad)
    _need(len(text) == len(letters), q.id, f"there are {len(letters)} steps but your answer orders {len(text)} "
          f"({text or 'none'}); missing: {', '.join(c for c in letters if c not in text)}. "
          f"Give every letter {', '.join(letters)} once, first step first.", bad)
    return text


def _evaluate(q: Question, answer: str) -> tuple[bool, str, list[tuple[str, str]]]:
    """(right?, headline, (label, explanation) pairs) for a normalised answer."""
    if q.kind == "choice":
        if answer == q.answer:
            return True, f"✓ Right: {answer}.", [(answer, q.explanations[answer])]
        return False, f"✗ Not quite: {answer} is not the best answer. Read why, then try another option.", \
            [(answer, q.explanations[answer])]
    arrow = " → ".join(answer)
    if answer == q.answer:
        return True, f"✓ Right: {arrow}.", [(f"{i + 1}. {c}", q.explanations[c]) for i, c in enumerate(answer)]
    in_place = [c == right for c, right in zip(answer, q.answer)]
    return False, (f"✗ Not quite: {arrow} has {sum(in_place)} of {len(answer)} steps in the right place. "
                   "Read the hints for the misplaced ones and try again."), \
        [(f"{i + 1}. {c} ✔", "in its place") if ok else (f"{i + 1}. {c} ✘", q.explanations[c])
         for i, (c, ok) in enumerate(zip(answer, in_place))]


def _wrap(text: str, indent: str = "", hang: str = "   ") -> str:
    return textwrap.fill(text, width=_WIDTH, initial_indent=indent, subsequent_indent=indent + hang,
                         break_on_hyphens=False)


def _question_text(q: Question) -> str:
    kind = "choose one option" if q.kind == "choice" else "put the steps in order"
    lines = [f"Self-check {q.id} (lesson {q.lesson:02d}, {kind})", _wrap(q.text, hang=""), ""]
    lines += [_wrap(f"{k}. {v}", "  ") for k, v in q.options.items()]
    if q.kind == "choice":
        how = f'Answer with quiz.check("{q.id}", "X"), where X is one of {", ".join(q.letters)}.'
    else:
        how = (f'Answer with quiz.check("{q.id}", "<letters>"): {", ".join(q.letters)} '
               "in the order of the steps, first step first, each letter once.")
    return "\n".join(lines + ["", _wrap(how, hang="")])


def ask(question_id: str) -> None:
    """Print the question and its options (or steps) as plain text, with how to answer."""
    print(_question_text(get(question_id)))


def check(question_id: str, answer) -> bool:
    """Check an answer, print whether it is right and the explanation; return True/False.

    ``answer`` is one option letter for a choice question (``"B"``), and the step letters
    in order for an ordering question (``"BDAC"``, ``"B, D, A, C"`` or ``["B", "D", "A", "C"]``).
    An answer that is not well formed (an unknown letter, a step missing or repeated) raises
    :class:`InvalidAnswerError` saying what to fix.
    """
    q = get(question_id)
    correct, headline, details = _evaluate(q, _normalise(q, answer))
    print(_wrap(headline))
    for label, text in details:
        print(_wrap(f"{label}: {text}", "  "))
    return correct


# --------------------------------------------------------------------------- jupyterquiz


def _escape(text: str) -> str:
    """Text for jupyterquiz, which inserts it as HTML and reads $...$ as TeX; `code` as in markdown."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text, quote=False).replace("$", "&#36;"))


def _feedback_html(q: Question, answer: str) -> str:
    _, headline, details = _evaluate(q, answer)
    return "<br>".join([f"<b>{_escape(headline)}</b>", *(f"<b>{_escape(k)}</b>: {_escape(t)}" for k, t in details)])


def jupyterquiz_question(question_id: str) -> dict:
    """The question in jupyterquiz's format; an ordering question becomes a typed "string" question."""
    q = get(question_id)
    if q.kind == "choice":
        return {"type": "multiple_choice", "question": _escape(q.text), "answer_cols": 1, "answers": [
            {"answer": f"{k}. {_escape(v)}", "correct": k == q.answer, "feedback": _feedback_html(q, k)}
            for k, v in q.options.items()]}
    steps = "".join(f"<br><b>{k}.</b> {_escape(v)}" for k, v in q.options.items())
    how = (f"Type the letters of the {len(q.letters)} steps in order, first step first, without spaces "
           "or commas, then press Enter.")
    orders = ["".join(p) for p in itertools.permutations(q.letters)] if len(q.letters) <= 5 else [q.answer]
    return {"type": "string", "question": f"{_escape(q.text)}<br>{steps}<br><br><i>{how}</i>", "answers": [
        *({"answer": o, "correct": o == q.answer, "feedback": _feedback_html(q, o)} for o in orders),
        {"type": "default", "feedback": f"Not an ordering of {', '.join(q.letters)}. {how}"}]}


def quiz_html(question_id: str) -> str:
    """The question as one HTML block that runs itself: jupyterquiz's container, styles and script.

    The script carries the question base64-encoded instead of jupyterquiz's readable JSON. Needs
    an IPython shell (jupyterquiz's ``display_quiz`` displays; its outputs are captured here).
    """
    from IPython.utils.capture import capture_output
    from jupyterquiz import display_quiz

    q, items = get(question_id), [jupyterquiz_question(question_id)]
    state = random.getstate()  # jupyterquiz names its container with `random`: keep the lesson's seeded state
    random.seed()
    try:
        with capture_output(stdout=False, stderr=False) as shown:
            display_quiz(items, shuffle_answers=False, max_width=800)
    finally:
        random.setstate(state)
    box, script = (next(o.data[m] for o in shown.outputs if m in o.data) for m in ("text/html", "application/javascript"))
    readable = json.dumps(items)
    if readable not in script:
        raise RuntimeError("jupyterquiz's script does not embed the questions as expected: check its version")
    hidden = base64.b64encode(readable.encode("ascii")).decode("ascii")  # ascii: json.dumps escapes the rest
    script = script.replace(readable, f'JSON.parse(atob("{hidden}"))')
    # jupyterquiz typesets with the page's MathJax, and fetches MathJax 3 from a CDN where JupyterLab 4's lacks
    # `typeset`; the questions hold no TeX (_escape), so its script runs where no MathJax is seen: nothing fetched.
    script = f"(function (MathJax) {{\n{script}\n}})();"
    box += "</div>" * (box.count("<div") - box.count("</div>"))  # jupyterquiz leaves its container open
    return (f'<div class="course-quiz" data-quiz="{q.id}"><div style="font-size:small;opacity:0.7">Self-check {q.id} '
            f'(lesson {q.lesson:02d})</div>{box}<script type="text/javascript">{script}</script></div>')


def _in_notebook() -> bool:
    """True inside a Jupyter kernel (JupyterLab, Colab, nbclient), where HTML and scripts can be shown."""
    shell = sys.modules["IPython"].get_ipython() if "IPython" in sys.modules else None
    return getattr(shell, "kernel", None) is not None


def show(question_id: str) -> None:
    """Show the question, interactive (jupyterquiz) in a notebook; else print it with how to answer."""
    q = get(question_id)
    try:
        block = quiz_html(q.id) if _in_notebook() else None
    except ImportError:  # an environment from before the course needed jupyterquiz
        block = None
        print("(jupyterquiz is not installed, so this question is not interactive: answer with quiz.check.)")
    if block is None:
        print(_question_text(q))
        return
    from IPython.display import display

    display({"text/html": block, "text/plain": _question_text(q)}, raw=True)


# --------------------------------------------------------------------------- command


def main(argv: list[str] | None = None) -> int:
    """``python -m finetune_utils.quiz --check``: validate the quiz files and list the questions."""
    parser = argparse.ArgumentParser(prog="python -m finetune_utils.quiz",
                                     description="Validate the self-check quiz files and list their questions.")
    parser.add_argument("--check", action="store_true", help="validate every quiz file (the default action)")
    parser.add_argument("--folder", type=Path, default=BANK_DIR, help="the folder of NN.yaml files (default: the package's)")
    args = parser.parse_args(argv)
    try:
        bank = validate(args.folder)
    except QuizBankError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for q in sorted(bank.values(), key=lambda q: (q.lesson, q.id)):
        print(f"{q.id:<28} lesson {q.lesson:02d}  {q.kind:<6}  answer {q.answer:<5}  {q.topic}")
    per_lesson = {n: sum(q.lesson == n for q in bank.values()) for n in sorted({q.lesson for q in bank.values()})}
    print(f"{len(bank)} questions, all valid; per lesson: " + ", ".join(f"{n:02d}: {c}" for n, c in per_lesson.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
