"""Self-check quizzes: short multiple-choice and ordering questions inside the lessons.

Guide for lesson writers
------------------------
Put a self-check right after the part of the lesson that teaches what the question needs
(or at the end, before ``## Summary``): a markdown cell, then a code cell. In a
percent-format script (/work/nbsrc/NN.py)::

    # %% [markdown]
    # ### Self-check
    # One question on what this section showed; pick an answer and press *Check*.

    # %%
    from finetune_utils import quiz
    quiz.show("q01_deploy")

``quiz.questions(lesson=1)`` lists the ids that belong to lesson 01. Use one cell per
question. The cell has no assertion and needs no data, so it runs in a second under nbval.
New questions go into the bank with ``tools/quiz_bank.py`` (export, edit, build), never by
editing ``_quiz_bank.py`` by hand.

For students
------------
::

    from finetune_utils import quiz
    quiz.show("q01_deploy")          # interactive widget (JupyterLab, Colab)
    quiz.ask("q01_deploy")           # the same question as plain text
    quiz.check("q01_deploy", "B")    # prints right/wrong and the explanation; returns True/False
    quiz.check("q01_order_steps", "BDAC")   # ordering: the step letters, first step first
    quiz.questions(lesson=1)         # the ids of lesson 01

Without ipywidgets (or outside a notebook), ``show`` prints the question and tells you to
answer with ``check``.

How the bank is stored (a self-check, not security)
---------------------------------------------------
The questions live in ``_quiz_bank.py`` as compressed JSON encoded in base64, so that
neither the answers nor the explanations can be read at a glance in the package files.
The correct answer itself is not stored at all: only a salted SHA-256 hash of
``"<salt>:<id>:<answer>"`` (and, for ordering questions, one hash per position, so that
feedback can say how many steps are in place). ``check`` hashes your answer and compares.
This keeps an honest student from seeing the answer by accident; it does not stop anyone
who wants to cheat (there are only a few possible answers to try). That is fine for a
self-check: nothing is graded with it.
"""

from __future__ import annotations

import base64
import difflib
import hashlib
import html
import itertools
import json
import re
import textwrap
import zlib
from dataclasses import dataclass
from functools import lru_cache

__all__ = [
    "InvalidAnswerError",
    "Question",
    "UnknownQuestionError",
    "ask",
    "check",
    "get",
    "questions",
    "show",
    "widget",
]

KINDS = ("choice", "order")
_ID_PATTERN = re.compile(r"^q(\d\d)_[a-z0-9_]+$")
_WIDTH = 88


class UnknownQuestionError(KeyError):
    """The question id is not in the bank."""

    def __str__(self) -> str:  # KeyError would print the message with quotes around it
        return str(self.args[0]) if self.args else "unknown question"


class InvalidAnswerError(ValueError):
    """The answer is not a well-formed answer to the question (not merely a wrong one)."""


@dataclass(frozen=True)
class Question:
    """One question of the bank (the correct answer is only present as hashes)."""

    id: str
    lesson: int
    kind: str  # "choice" or "order"
    topic: str
    text: str
    options: dict  # letter -> option text (for "order": the steps to arrange)
    explanations: dict  # letter -> why this option is right/wrong (or where this step belongs)
    salt: str
    answer_hash: str
    position_hashes: tuple = ()  # "order" only: one hash per position

    @property
    def letters(self) -> list[str]:
        return list(self.options)


# --------------------------------------------------------------------------- the bank


def _digest(*parts: object) -> str:
    return hashlib.sha256(":".join(str(p) for p in parts).encode("utf-8")).hexdigest()


def _encode(obj) -> str:
    raw = json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return base64.b64encode(zlib.compress(raw, 9)).decode("ascii")


def _decode(blob: str):
    try:
        return json.loads(zlib.decompress(base64.b64decode("".join(blob.split()))).decode("utf-8"))
    except (ValueError, zlib.error) as err:
        raise RuntimeError(
            "finetune_utils/_quiz_bank.py is damaged and cannot be decoded; restore it from the repository "
            "or rebuild it with `python tools/quiz_bank.py build SOURCE.json`."
        ) from err


@lru_cache(maxsize=1)
def _bank() -> dict[str, Question]:
    from ._quiz_bank import BANK

    bank = {}
    for entry in _decode(BANK):
        entry = dict(entry)
        entry["position_hashes"] = tuple(entry.get("position_hashes", ()))
        question = Question(**entry)
        bank[question.id] = question
    return bank


def _validate_source(entries: list[dict]) -> None:
    """Check a plain-text bank source (as written by ``tools/quiz_bank.py export``); raise ValueError."""
    if not isinstance(entries, list) or not entries:
        raise ValueError("the quiz source must be a non-empty JSON list of questions")
    seen = set()
    required = ("id", "lesson", "kind", "topic", "text", "options", "explanations", "answer")
    for i, q in enumerate(entries):
        where = f"question #{i} ({q.get('id', '?')!r})" if isinstance(q, dict) else f"question #{i}"
        if not isinstance(q, dict):
            raise ValueError(f"{where}: must be a JSON object")
        missing = [k for k in required if k not in q]
        if missing:
            raise ValueError(f"{where}: missing field(s) {missing}")
        match = _ID_PATTERN.match(q["id"])
        if not match:
            raise ValueError(f"{where}: ids look like 'q01_deploy' (q, two-digit lesson, _, lowercase words)")
        if q["id"] in seen:
            raise ValueError(f"{where}: duplicate id")
        seen.add(q["id"])
        if q["lesson"] != int(match.group(1)):
            raise ValueError(f"{where}: lesson {q['lesson']} does not match the id's prefix {match.group(1)}")
        if q["kind"] not in KINDS:
            raise ValueError(f"{where}: kind must be one of {KINDS}, got {q['kind']!r}")
        letters = list(q["options"])
        if len(letters) < 3 or letters != [chr(ord("A") + k) for k in range(len(letters))]:
            raise ValueError(f"{where}: options must be labelled A, B, C, ... in order (at least 3), got {letters}")
        if sorted(q["explanations"]) != letters:
            raise ValueError(f"{where}: give one explanation per option {letters}, got {sorted(q['explanations'])}")
        empty = [k for k in letters if not str(q["options"][k]).strip() or not str(q["explanations"][k]).strip()]
        if empty or not q["text"].strip():
            raise ValueError(f"{where}: empty question text, option or explanation {empty}")
        answer = q["answer"]
        if q["kind"] == "choice" and answer not in letters:
            raise ValueError(f"{where}: the answer of a choice question is one of {letters}, got {answer!r}")
        if q["kind"] == "order" and sorted(answer) != letters:
            raise ValueError(f"{where}: the answer of an order question uses every letter {letters} once, got {answer!r}")


def _build_bank(entries: list[dict], new_salt=None) -> list[dict]:
    """Hash the answers of a validated plain-text source into bank entries (no answer field)."""
    import secrets

    _validate_source(entries)
    new_salt = new_salt or (lambda: secrets.token_hex(8))
    bank = []
    for q in entries:
        salt = q.get("salt") or new_salt()
        entry = {k: q[k] for k in ("id", "lesson", "kind", "topic", "text", "options", "explanations")}
        entry["salt"] = salt
        entry["answer_hash"] = _digest(salt, q["id"], q["answer"])
        if q["kind"] == "order":
            entry["position_hashes"] = [_digest(salt, q["id"], pos, letter) for pos, letter in enumerate(q["answer"])]
        bank.append(entry)
    return bank


def _bank_module_text(entries: list[dict], new_salt=None) -> str:
    """The text of ``_quiz_bank.py`` for a plain-text source (used by tools/quiz_bank.py build)."""
    blob = _encode(_build_bank(entries, new_salt))
    lines = "\n".join(f'    "{blob[i:i + 76]}"' for i in range(0, len(blob), 76))
    return (
        '"""The question bank of finetune_utils.quiz, encoded (zlib-compressed JSON in base64).\n\n'
        "Generated by `python tools/quiz_bank.py build SOURCE.json`; do not edit by hand.\n"
        "Answers are stored only as salted SHA-256 hashes. This hides them from a casual look;\n"
        "it is a self-check, not security (see the docstring of finetune_utils.quiz).\n"
        '"""\n\n'
        f"BANK = (\n{lines}\n)\n"
    )


def _correct_answer(question_id: str) -> str:
    """Recover the correct answer by trying every possible one against the hash.

    For the tests and ``tools/quiz_bank.py export`` only: a student could do the same,
    which is why the quiz is a self-check and not an exam.
    """
    q = get(question_id)
    candidates = q.letters if q.kind == "choice" else ("".join(p) for p in itertools.permutations(q.letters))
    found = [c for c in candidates if _digest(q.salt, q.id, c) == q.answer_hash]
    if len(found) != 1:
        raise RuntimeError(f"{q.id}: the bank's answer hash matches {len(found)} answers (expected exactly one)")
    return found[0]


def _export_source() -> list[dict]:
    """The bank as an editable plain-text source, answers included (tools/quiz_bank.py export)."""
    out = []
    for q in _bank().values():
        out.append(
            {
                "id": q.id,
                "lesson": q.lesson,
                "kind": q.kind,
                "topic": q.topic,
                "text": q.text,
                "options": dict(q.options),
                "explanations": dict(q.explanations),
                "answer": _correct_answer(q.id),
                "salt": q.salt,
            }
        )
    return out


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
    correct = _digest(q.salt, q.id, answer) == q.answer_hash
    if q.kind == "choice":
        if correct:
            return _Feedback(True, f"✅ Right: {answer}.", ((answer, q.explanations[answer]),))
        return _Feedback(
            False,
            f"❌ Not quite: {answer} is not the best answer. Read why, then try another option.",
            ((answer, q.explanations[answer]),),
        )
    arrow = " → ".join(answer)
    if correct:
        return _Feedback(True, f"✅ Right: {arrow}.", tuple((f"{i + 1}. {c}", q.explanations[c]) for i, c in enumerate(answer)))
    in_place = [_digest(q.salt, q.id, pos, c) == h for pos, (c, h) in enumerate(zip(answer, q.position_hashes))]
    details = tuple(
        (f"{i + 1}. {c} ✔", "in its place") if ok else (f"{i + 1}. {c} ✘", q.explanations[c])
        for i, (c, ok) in enumerate(zip(answer, in_place))
    )
    return _Feedback(
        False,
        f"❌ Not quite: {arrow} has {sum(in_place)} of {len(answer)} steps in the right place. "
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
