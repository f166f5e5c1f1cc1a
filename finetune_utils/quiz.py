"""Self-check quizzes: short multiple-choice and ordering questions inside the lessons.

The questions live in readable YAML files next to this module, one per lesson:
``finetune_utils/quizzes/NN.yaml``. A teacher adds or fixes a question by editing that file,
then runs one command, which validates every file and lists the questions::

    python -m finetune_utils.quiz --check

A lesson shows a question right after the part that teaches what it needs, with a code
cell of its own (no assertion, no data, so it runs in a second under nbval)::

    from finetune_utils import quiz
    quiz.show("q01_deploy")

For students::

    quiz.show("q01_deploy")          # interactive widget (JupyterLab, Colab)
    quiz.ask("q01_deploy")           # the same question as plain text
    quiz.check("q01_deploy", "B")    # prints right/wrong and the explanation; returns True/False
    quiz.check("q01_order_steps", "BDAC")   # ordering: the step letters, first step first
    quiz.questions(lesson=1)         # the ids of lesson 01

Without ipywidgets (or outside a notebook), ``show`` prints the question and tells you to
answer with ``check``. The answers are in the YAML files: this is a self-check, not an exam.
"""

from __future__ import annotations

import argparse
import difflib
import html
import re
import sys
import textwrap
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

__all__ = [
    "InvalidAnswerError",
    "Question",
    "QuizBankError",
    "UnknownQuestionError",
    "ask",
    "check",
    "get",
    "questions",
    "show",
    "validate",
    "widget",
]

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


def _validate_question(q, where: str, lesson: int) -> Question:
    """Check one question read from a lesson's file; return it as a :class:`Question`."""
    if not isinstance(q, dict):
        raise QuizBankError(f"{where}: each question is a mapping of {', '.join(FIELDS)}")
    where = f"{where} ({q.get('id', '?')})"
    missing = [k for k in FIELDS if k not in q]
    unknown = sorted(set(q) - set(FIELDS))
    if missing or unknown:
        raise QuizBankError(f"{where}: missing field(s) {missing}, unknown field(s) {unknown}")
    match = _ID_PATTERN.match(str(q["id"]))
    if not match:
        raise QuizBankError(f"{where}: ids look like 'q01_deploy' (q, two-digit lesson, _, lowercase words)")
    if int(match.group(1)) != lesson:
        raise QuizBankError(f"{where}: the id's lesson {match.group(1)} does not match the file's ({lesson:02d})")
    if q["kind"] not in KINDS:
        raise QuizBankError(f"{where}: kind must be one of {KINDS}, got {q['kind']!r}")
    if not isinstance(q["options"], dict) or not isinstance(q["explanations"], dict):
        raise QuizBankError(f"{where}: options and explanations are mappings from a letter to a text")
    letters = [str(k) for k in q["options"]]
    if len(letters) < 3 or letters != [chr(ord("A") + k) for k in range(len(letters))]:
        raise QuizBankError(f"{where}: options must be labelled A, B, C, ... in order (at least 3), got {letters}")
    if sorted(str(k) for k in q["explanations"]) != letters:
        raise QuizBankError(f"{where}: give one explanation per option {letters}, got {sorted(q['explanations'])}")
    texts = [q["text"], q["topic"], *q["options"].values(), *q["explanations"].values()]
    if not all(isinstance(t, str) and t.strip() for t in texts):
        raise QuizBankError(f"{where}: the topic, the text, every option and every explanation must be non-empty text")
    answer = str(q["answer"]).strip()
    if q["kind"] == "choice" and answer not in letters:
        raise QuizBankError(f"{where}: the answer of a choice question is one of {letters}, got {answer!r}")
    if q["kind"] == "order" and sorted(answer) != letters:
        raise QuizBankError(f"{where}: the answer of an order question uses every letter {letters} once, got {answer!r}")
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
    if not paths:
        raise QuizBankError(f"no quiz files (NN.yaml) in {folder}")
    for path in paths:
        if not re.fullmatch(r"\d\d", path.stem):
            raise QuizBankError(f"{path.name}: name a quiz file after its lesson, e.g. 03.yaml")
        try:
            entries = yaml.safe_load(path.read_text(encoding="utf-8")) or []
        except yaml.YAMLError as err:
            raise QuizBankError(f"{path.name}: not valid YAML: {err}") from None
        if not isinstance(entries, list):
            raise QuizBankError(f"{path.name}: the file is a list of questions, each starting with '- id: ...'")
        for i, entry in enumerate(entries, start=1):
            question = _validate_question(entry, f"{path.name}, question {i}", int(path.stem))
            if question.id in bank:
                raise QuizBankError(f"{path.name}, question {i}: duplicate id {question.id}")
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
    letters = q.letters
    if q.kind == "choice":
        if not isinstance(answer, str):
            raise InvalidAnswerError(
                f'{q.id}: answer with one option letter as a string, like quiz.check("{q.id}", "A"); got {answer!r}'
            )
        text = answer.strip().rstrip(".)").strip().upper()
        if text not in letters:
            raise InvalidAnswerError(
                f"{q.id}: {answer!r} is not an option; answer with one letter of {', '.join(letters)}."
            )
        return text
    if isinstance(answer, (list, tuple)):
        if not all(isinstance(a, str) for a in answer):
            raise InvalidAnswerError(f"{q.id}: give the step letters as strings, got {answer!r}")
        answer = "".join(answer)
    if not isinstance(answer, str):
        raise InvalidAnswerError(
            f"{q.id}: answer with the step letters in order as a string (like \"B, D, ...\"); got {answer!r}"
        )
    text = re.sub(r"[\s,;>/|\-→]+", "", answer).upper()
    unknown = sorted({c for c in text if c not in letters})
    if unknown:
        raise InvalidAnswerError(
            f"{q.id}: {', '.join(unknown)} {'is not a step' if len(unknown) == 1 else 'are not steps'}; "
            f"the steps are {', '.join(letters)}."
        )
    repeated = sorted({c for c in text if text.count(c) > 1})
    if repeated:
        raise InvalidAnswerError(
            f"{q.id}: step{'s' if len(repeated) > 1 else ''} {', '.join(repeated)} "
            f"appear{'' if len(repeated) > 1 else 's'} more than once; use each step once."
        )
    if len(text) != len(letters):
        missing = [c for c in letters if c not in text]
        raise InvalidAnswerError(
            f"{q.id}: there are {len(letters)} steps but your answer orders {len(text)} ({text or 'none'}); "
            f"missing: {', '.join(missing)}. Give every letter {', '.join(letters)} once, first step first."
        )
    return text


@dataclass(frozen=True)
class _Feedback:
    correct: bool
    headline: str
    details: tuple  # (label, text) pairs


def _evaluate(q: Question, answer: str) -> _Feedback:
    """Feedback for a normalised answer."""
    correct = answer == q.answer
    if q.kind == "choice":
        if correct:
            return _Feedback(True, f"✓ Right: {answer}.", ((answer, q.explanations[answer]),))
        return _Feedback(
            False,
            f"✗ Not quite: {answer} is not the best answer. Read why, then try another option.",
            ((answer, q.explanations[answer]),),
        )
    arrow = " → ".join(answer)
    if correct:
        return _Feedback(True, f"✓ Right: {arrow}.", tuple((f"{i + 1}. {c}", q.explanations[c]) for i, c in enumerate(answer)))
    in_place = [c == right for c, right in zip(answer, q.answer)]
    details = tuple(
        (f"{i + 1}. {c} ✔", "in its place") if ok else (f"{i + 1}. {c} ✘", q.explanations[c])
        for i, (c, ok) in enumerate(zip(answer, in_place))
    )
    return _Feedback(
        False,
        f"✗ Not quite: {arrow} has {sum(in_place)} of {len(answer)} steps in the right place. "
        "Read the hints for the misplaced ones and try again.",
        details,
    )


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
    feedback = _evaluate(q, _normalise(q, answer))
    print(_wrap(feedback.headline))
    for label, text in feedback.details:
        print(_wrap(f"{label}: {text}", "  "))
    return feedback.correct


# --------------------------------------------------------------------------- widgets


def _feedback_html(feedback: _Feedback) -> str:
    colour = "#1a7f37" if feedback.correct else "#b35900"
    items = "".join(f"<li><b>{html.escape(label)}</b>: {html.escape(text)}</li>" for label, text in feedback.details)
    return f'<div style="color:{colour}"><b>{html.escape(feedback.headline)}</b></div><ul>{items}</ul>'


def widget(question_id: str):
    """Build (without displaying) the interactive widget of a question; needs ipywidgets.

    The returned box has the attributes ``answer_widgets`` (the RadioButtons, or one
    Dropdown per position), ``check_button`` and ``feedback`` (an HTML widget), so that
    it can be driven from code as well as by clicking.
    """
    q = get(question_id)
    import ipywidgets as w

    class QuizBox(w.VBox):
        # Where widgets cannot be rendered (a static view of the notebook), show the text.
        def _repr_mimebundle_(self, **kwargs):
            data = super()._repr_mimebundle_(**kwargs)
            if data is not None:
                data["text/plain"] = _question_text(q)
            return data

    header = w.HTML(
        f"<b>Self-check ({html.escape(q.id)}, lesson {q.lesson:02d})</b><br>{html.escape(q.text)}"
        + ("<br><i>Put the steps in order: choose the first step in box 1, and so on.</i>" if q.kind == "order" else "")
    )
    options = w.HTML(
        "<ul style='list-style:none;padding-left:0.5em'>"
        + "".join(f"<li><b>{k}.</b> {html.escape(v)}</li>" for k, v in q.options.items())
        + "</ul>"
    )
    if q.kind == "choice":
        radio = w.RadioButtons(options=q.letters, value=None, description="Answer:", orientation="horizontal")
        answer_widgets = [radio]
        answer_row = radio
    else:
        answer_widgets = [
            w.Dropdown(options=[("–", "")] + [(k, k) for k in q.letters], value="", description=f"{i + 1}.",
                       layout=w.Layout(width="110px"), style={"description_width": "20px"})
            for i in range(len(q.letters))
        ]
        answer_row = w.HBox(answer_widgets)
    button = w.Button(description="Check", button_style="primary", icon="check")
    feedback = w.HTML("")

    def on_click(_=None):
        if q.kind == "choice":
            if answer_widgets[0].value is None:
                feedback.value = "<i>Pick an option first.</i>"
                return
            answer = answer_widgets[0].value
        else:
            chosen = [d.value for d in answer_widgets]
            if "" in chosen:
                feedback.value = "<i>Choose a step for every position first.</i>"
                return
            answer = "".join(chosen)
        try:
            result = _evaluate(q, _normalise(q, answer))
        except InvalidAnswerError as err:
            feedback.value = f"<i>{html.escape(str(err))}</i>"
            return
        feedback.value = _feedback_html(result)

    button.on_click(on_click)
    box = QuizBox([header, options, answer_row, button, feedback],
                  layout=w.Layout(border="1px solid #ccc", padding="6px", max_width="900px"))
    box.question_id = q.id
    box.answer_widgets = answer_widgets
    box.check_button = button
    box.feedback = feedback
    return box


def _in_notebook() -> bool:
    """True inside a Jupyter kernel (JupyterLab, Colab, nbclient), where widgets can be shown."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def show(question_id: str) -> None:
    """Show the question as an interactive widget (options, a Check button, feedback).

    Falls back to printing the question (and how to answer with :func:`check`) when
    ipywidgets is not installed or when not running in a notebook.
    """
    q = get(question_id)
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        print(_question_text(q))
        print("(ipywidgets is not installed, so no interactive widget: answer with quiz.check as above.)")
        return
    if not _in_notebook():
        print(_question_text(q))
        return
    from IPython.display import display

    from . import env

    if env.in_colab():  # Colab renders ipywidgets 8 through its custom widget manager
        try:
            from google.colab import output

            output.enable_custom_widget_manager()
        except Exception:  # noqa: BLE001 - an older Colab: its built-in manager may still work
            pass
    display(widget(q.id))


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
