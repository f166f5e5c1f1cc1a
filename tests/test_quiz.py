"""The self-check quizzes: the seed's questions are all there, the readable bank validates, answers check."""

import itertools
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from finetune_utils import quiz

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "finetune_utils"
SEED_DIR = ROOT.parent / "shared" / "seed"  # CI lays ../shared beside the clone

# The seed document's multiple-choice and ordering questions, and the lesson each belongs to:
# id -> (lesson, kind, words the question must be about, words the correct option must contain).
SEED_QUESTIONS = {
    "q01_deploy": (1, "choice", ["support", "pre-trained", "as it is"], ["adapted", "labels"]),
    "q01_order_steps": (1, "order", ["pre-trained", "classifier"], []),
    "q02_params": (2, "choice", ["legal", "parameters", "classification layer"], ["θ̂", "θ̃", "ω̃"]),
    "q02_order_sentiment": (2, "order", ["sentiment", "pre-trained"], []),
    "q06_startup": (6, "choice", ["startup", "500", "budget"], ["prompt", "few-shot"]),
    "q07_legal_summaries": (7, "choice", ["500", "legal", "summaries"], ["pre-training"]),
    "q07_hypothesis": (7, "choice", ["instruction", "concludes"], ["pre-training", "implicit"]),
    "q08_diagnose": (8, "choice", ["fine-tunes", "loss", "learning rate"], ["learning rate"]),
    "q09_medical": (9, "choice", ["chatbot", "patients", "clinical"], ["fine-tune", "held-out"]),
}


def wrong_answers(q):
    if q.kind == "choice":
        return [k for k in q.letters if k != q.answer]
    return ["".join(p) for p in itertools.permutations(q.letters) if "".join(p) != q.answer]


# ------------------------------------------------------------------- content


def test_every_seed_question_is_in_its_lesson():
    assert set(SEED_QUESTIONS) <= set(quiz.questions()), set(SEED_QUESTIONS) - set(quiz.questions())
    for qid, (lesson, kind, about, in_answer) in SEED_QUESTIONS.items():
        q = quiz.get(qid)
        assert (q.lesson, q.kind) == (lesson, kind), qid
        assert qid in quiz.questions(lesson=lesson)
        for word in about:
            assert word.lower() in q.text.lower(), f"{qid}: question should be about {word!r}"
        correct = quiz.get(qid).answer
        if kind == "choice":
            for word in in_answer:
                assert word.lower() in q.options[correct].lower(), f"{qid}: correct option should mention {word!r}"


def test_every_question_has_options_and_an_explanation_per_option():
    for qid in quiz.questions():
        q = quiz.get(qid)
        assert re.fullmatch(r"q\d\d_[a-z0-9_]+", qid) and int(qid[1:3]) == q.lesson
        assert q.kind in ("choice", "order") and len(q.text) > 80 and q.topic
        assert len(q.options) >= 3 and q.letters == list("ABCDEFGH"[: len(q.options)])
        assert set(q.explanations) == set(q.options), qid
        for letter in q.letters:
            assert len(q.options[letter]) > 30, f"{qid} {letter}: option too short"
            assert len(q.explanations[letter]) > 60, f"{qid} {letter}: explanation too short"
            assert q.explanations[letter] != q.options[letter]
        if q.kind == "order":
            assert quiz.get(qid).answer != "".join(q.letters), f"{qid}: steps listed in their correct order"


def test_correct_choices_are_spread_over_the_letters():
    answers = [quiz.get(i).answer for i in quiz.questions() if quiz.get(i).kind == "choice"]
    assert len(set(answers)) >= 3, f"correct answers too predictable: {answers}"


@pytest.mark.skipif(not SEED_DIR.is_dir(), reason="the seed document is not on this machine")
def test_questions_are_worded_independently_of_the_seed():
    seed = " ".join(p.read_text() for p in SEED_DIR.glob("*.txt")).lower()
    seed_words = re.findall(r"[a-z0-9']+", seed)
    seed_ngrams = {tuple(seed_words[i : i + 7]) for i in range(len(seed_words) - 6)}
    for qid in quiz.questions():
        q = quiz.get(qid)
        for text in [q.text, *q.options.values()]:
            words = re.findall(r"[a-z0-9']+", text.lower())
            copied = [" ".join(words[i : i + 7]) for i in range(len(words) - 6) if tuple(words[i : i + 7]) in seed_ngrams]
            assert not copied, f"{qid}: copies the seed's wording: {copied[:2]}"


# ------------------------------------------------------------------- checking answers


def test_check_accepts_the_right_answer_and_rejects_every_wrong_one(capsys):
    for qid in quiz.questions():
        q = quiz.get(qid)
        right = quiz.get(qid).answer
        assert quiz.check(qid, right) is True
        out = capsys.readouterr().out
        assert "Right" in out and "Not quite" not in out
        first_words = " ".join(q.explanations[right[0]].split()[:6])
        assert first_words in " ".join(out.split()), f"{qid}: the explanation is not shown"
        for wrong in wrong_answers(q):
            assert quiz.check(qid, wrong) is False, (qid, wrong)
            out = capsys.readouterr().out
            assert "Not quite" in out
            if q.kind == "choice":  # the explanation of the chosen option
                assert " ".join(q.explanations[wrong].split()[:6]) in " ".join(out.split())


def test_answers_are_normalised():
    order = next(i for i in quiz.questions() if quiz.get(i).kind == "order")
    right = quiz.get(order).answer
    for form in (right.lower(), ", ".join(right), " → ".join(right), list(right), f"  {'-'.join(right)} "):
        assert quiz.check(order, form) is True, form
    choice = "q01_deploy"
    right = quiz.get(choice).answer
    for form in (right.lower(), f" {right} ", f"{right})", f"{right}."):
        assert quiz.check(choice, form) is True, form


def test_ordering_feedback_counts_steps_in_place(capsys):
    q = quiz.get("q01_order_steps")
    right = q.answer
    swapped = right[1] + right[0] + right[2:]
    assert quiz.check(q.id, swapped) is False
    out = capsys.readouterr().out
    assert f"{len(right) - 2} of {len(right)} steps in the right place" in out


@pytest.mark.parametrize(
    "qid, answer, error, message",
    [
        ("q01_deploy", "E", quiz.InvalidAnswerError, "not an option"),
        ("q01_deploy", "AB", quiz.InvalidAnswerError, "one letter of A, B, C, D"),
        ("q01_deploy", "", quiz.InvalidAnswerError, "not an option"),
        ("q01_deploy", 2, quiz.InvalidAnswerError, "as a string"),
        ("q01_order_steps", "ABC", quiz.InvalidAnswerError, "4 steps but your answer orders 3"),
        ("q01_order_steps", "ABCDA", quiz.InvalidAnswerError, "more than once"),
        ("q01_order_steps", "ABCE", quiz.InvalidAnswerError, "E is not a step"),
        ("q01_order_steps", None, quiz.InvalidAnswerError, "step letters in order"),
        ("q01_deplyo", "A", quiz.UnknownQuestionError, "Did you mean 'q01_deploy'"),
        ("q99_nothing", "A", quiz.UnknownQuestionError, "Available: q00_embeddings, q00_no_head, q01_deploy"),
    ],
)
def test_bad_ids_and_answers_give_clear_errors(qid, answer, error, message):
    with pytest.raises(error) as info:
        quiz.check(qid, answer)
    assert message in str(info.value)


def test_questions_by_lesson():
    assert {"q01_deploy", "q01_order_steps"} <= set(quiz.questions(lesson=1))
    assert all(qid.startswith("q07_") for qid in quiz.questions(lesson=7))
    assert quiz.questions(lesson=0) == ["q00_embeddings", "q00_no_head"]
    assert quiz.questions(lesson=42) == []
    assert sum(len(quiz.questions(lesson=n)) for n in range(11)) == len(quiz.questions())
    with pytest.raises(ValueError, match="lesson number"):
        quiz.questions(lesson="1")
    with pytest.raises(TypeError, match="q01_deploy"):
        quiz.get(1)


def test_ask_prints_the_question_and_options_but_not_the_explanations(capsys):
    for qid in quiz.questions():
        q = quiz.get(qid)
        quiz.ask(qid)
        out = " ".join(capsys.readouterr().out.split())
        assert " ".join(q.text.split()[:8]) in out and f'quiz.check("{qid}"' in out
        for letter in q.letters:
            assert f"{letter}. " + " ".join(q.options[letter].split()[:5]) in out
            assert " ".join(q.explanations[letter].split()[:8]) not in out


# ------------------------------------------------------------------- the bank a teacher edits


def test_every_lesson_has_at_least_two_questions():
    for lesson in range(1, 11):
        assert len(quiz.questions(lesson=lesson)) >= 2, f"lesson {lesson:02d} needs at least two self-check questions"


def test_every_question_is_shown_in_its_lesson_and_every_shown_question_exists():
    shown = {}
    for path in sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            for qid in re.findall(r'quiz\.show\("(q\d\d_[a-z0-9_]+)"\)', cell.source if cell.cell_type == "code" else ""):
                shown[qid] = int(path.name[:2])
    assert set(shown) <= set(quiz.questions()), f"shown but not in the bank: {set(shown) - set(quiz.questions())}"
    for qid in quiz.questions():
        assert shown.get(qid) == quiz.get(qid).lesson, f"{qid} is not shown in lesson {quiz.get(qid).lesson:02d}"


def test_the_check_command_validates_the_bank_and_lists_it():
    out = subprocess.run([sys.executable, "-m", "finetune_utils.quiz", "--check"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert f"{len(quiz.questions())} questions, all valid" in out.stdout
    assert all(qid in out.stdout for qid in quiz.questions())


def _bank_copy(tmp_path):
    folder = tmp_path / "quizzes"
    shutil.copytree(PACKAGE / "quizzes", folder)
    return folder


@pytest.mark.parametrize(
    "old, new, message",
    [
        ("  answer: C\n", "  answer: F\n", "answer of a choice question"),
        ("  kind: choice\n", "  kind: essay\n", "kind must be"),
        ("- id: q01_deploy\n", "- id: deploy\n", "ids look like"),
        ("- id: q01_deploy\n", "- id: q04_deploy\n", "does not match the file"),
        ("- id: q01_deploy\n", "- id: q01_order_steps\n", "duplicate id"),
        ("  explanations:\n    A: >-", "  explanations:\n    Z: >-", "one explanation per option"),
        ("  topic:", "  topik:", "missing field(s) ['topic']"),
        ("  kind: choice\n", "  kind: [choice\n", "not valid YAML"),
    ],
)
def test_a_malformed_question_is_refused_with_file_question_and_fix(tmp_path, old, new, message):
    folder = _bank_copy(tmp_path)
    path = folder / "01.yaml"
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(quiz.QuizBankError) as info:
        quiz.validate(folder)
    assert "01.yaml" in str(info.value) and message in str(info.value)
    out = subprocess.run([sys.executable, "-m", "finetune_utils.quiz", "--check", "--folder", str(folder)],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 1 and message in out.stderr


def test_a_teacher_adds_a_question_by_editing_the_file(tmp_path):
    folder = _bank_copy(tmp_path)
    new = """
- id: q03_teacher_added
  kind: order
  topic: A question written by a teacher
  text: >-
    Put these steps of a LoRA fine-tuning run in the order they happen, first step first.
  options:
    A: Train only the adapters' A and B matrices on the labelled data.
    B: Load the pre-trained encoder and put a new head on it.
    C: Wrap the attention projections with low-rank adapters and freeze everything else.
  explanations:
    A: Training comes last, once the model and its trainable parameters are set up.
    B: Everything starts from the pre-trained model with its new, randomly initialised head.
    C: Adapters go on the pre-trained layers before any training, so that only they receive gradients.
  answer: BCA
"""
    with open(folder / "03.yaml", "a", encoding="utf-8") as f:
        f.write(new)
    bank = quiz.validate(folder)
    assert bank["q03_teacher_added"].answer == "BCA" and bank["q03_teacher_added"].lesson == 3
    assert len(bank) == len(quiz.questions()) + 1


# ------------------------------------------------------------------- jupyterquiz


@pytest.fixture
def shell():
    """An IPython shell in this process (quiz_html captures what jupyterquiz displays), removed afterwards."""
    from IPython.core.interactiveshell import InteractiveShell

    had = InteractiveShell.initialized()
    yield InteractiveShell.instance()
    if not had:
        InteractiveShell.clear_instance()


def test_every_question_maps_to_jupyterquiz_with_the_feedback_of_check():
    for qid in quiz.questions():
        q, jq = quiz.get(qid), quiz.jupyterquiz_question(qid)
        answers = [a for a in jq["answers"] if a.get("type") != "default"]
        assert [a["answer"] for a in answers if a["correct"]] == ([f"{q.answer}. " + quiz._escape(q.options[q.answer])]
                                                                  if q.kind == "choice" else [q.answer]), qid
        if q.kind == "choice":   # one button per option, in the bank's order, each with its explanation
            assert jq["type"] == "multiple_choice" and [a["answer"][0] for a in answers] == q.letters
            for letter, a in zip(q.letters, answers):
                assert quiz._escape(q.explanations[letter]) in a["feedback"]
                assert ("✓ Right" if letter == q.answer else "✗ Not quite") in a["feedback"]
        else:   # typed letters: every ordering has check's feedback; anything else the default hint
            assert jq["type"] == "string" and "Type the letters of the" in jq["question"]
            assert {a["answer"] for a in answers} == set(wrong_answers(q)) | {q.answer}
            for a in answers:
                in_place = sum(x == y for x, y in zip(a["answer"], q.answer))
                assert ("✓ Right" in a["feedback"]) == a["correct"] and (a["correct"] or f"has {in_place} of" in a["feedback"])
            assert jq["answers"][-1]["type"] == "default"
    special = quiz._escape("a <b> & $5 for `x`")
    assert special == "a &lt;b&gt; &amp; &#36;5 for <code>x</code>"   # HTML- and TeX-safe for jupyterquiz


def test_quiz_html_carries_the_question_hidden_and_keeps_the_random_state(shell):
    import base64
    import random

    random.seed(7)
    state = random.getstate()
    blocks = [quiz.quiz_html("q01_order_steps"), quiz.quiz_html("q01_order_steps")]
    assert random.getstate() == state   # a quiz cell does not shift a seeded lesson's random numbers
    ids = [re.search(r'<div id="(\w+)" data-shufflequestions', b).group(1) for b in blocks]
    assert ids[0] != ids[1]             # two quizzes on one page do not share a container
    for qid in ("q01_order_steps", "q06_startup"):
        block, q = quiz.quiz_html(qid), quiz.get(qid)
        assert block.startswith(f'<div class="course-quiz" data-quiz="{qid}">') and f"Self-check {qid} " in block
        assert block.count("<div") == block.count("</div>") and "<script" in block and "atob(" in block
        readable = [q.text, *q.options.values(), *q.explanations.values()]
        assert not [t for t in readable if " ".join(t.split()[:6]) in block], qid   # nothing of the question as text
        payload = re.search(r'atob\("([A-Za-z0-9+/=]+)"\)', block).group(1)
        assert json.loads(base64.b64decode(payload)) == [quiz.jupyterquiz_question(qid)]


def test_show_outside_a_notebook_prints_the_question(capsys):
    assert quiz.show("q02_params") is None
    out = capsys.readouterr().out
    assert "Self-check q02_params" in out and 'quiz.check("q02_params"' in out


def test_show_without_jupyterquiz_falls_back_to_text(monkeypatch, capsys):
    monkeypatch.setattr(quiz, "_in_notebook", lambda: True)
    monkeypatch.setitem(sys.modules, "jupyterquiz", None)  # import jupyterquiz -> ImportError
    quiz.show("q06_startup")
    out = capsys.readouterr().out
    assert "jupyterquiz is not installed" in out and 'quiz.check("q06_startup"' in out
    with pytest.raises(quiz.UnknownQuestionError):
        quiz.show("q06_start")


def test_show_displays_a_quiz_in_a_kernel(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell('from finetune_utils import quiz\nquiz.show("q01_deploy")')]
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    (output,) = nb.cells[0].outputs   # one output: HTML that runs itself, and the text for text-only viewers
    assert output["data"]["text/html"].startswith('<div class="course-quiz" data-quiz="q01_deploy">')
    assert output["data"]["text/plain"] == quiz._question_text(quiz.get("q01_deploy"))
