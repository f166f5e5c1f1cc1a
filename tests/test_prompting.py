"""Prompting helpers on the real SmolLM2-135M-Instruct: prompts, label scoring, generation."""

import numpy as np
import pytest

from finetune_utils import models, prompting

INSTRUCTION = "Classify the sentiment of this customer message as negative, neutral or positive."
LABELS = ["negative", "neutral", "positive"]


@pytest.fixture(scope="module")
def lm():
    return models.load_causal_lm()


@pytest.fixture()
def tokenizer():
    return models.load_causal_lm_tokenizer()


def test_zero_shot_prompt_is_the_chat_template_with_the_assistant_turn_open(tokenizer):
    messages = prompting.classification_messages(INSTRUCTION, "  The app keeps crashing.  ")
    assert messages == [{"role": "user", "content": INSTRUCTION + "\n\nMessage: The app keeps crashing."}]
    text = prompting.chat_prompt(tokenizer, messages)
    assert text.startswith("<|im_start|>system\n")  # the template's default system prompt
    assert text.endswith("<|im_start|>user\n" + messages[0]["content"] + "<|im_end|>\n<|im_start|>assistant\n")
    assert prompting.end_of_turn_id(tokenizer) == tokenizer.convert_tokens_to_ids("<|im_end|>")


def test_few_shot_prompt_puts_each_demonstration_in_its_own_turns(tokenizer):
    demos = [("Great service!", "positive"), ("Where is my parcel??", "negative")]
    messages = prompting.classification_messages(INSTRUCTION, "I changed my address.", demos, system="Be brief.")
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert [messages[2]["content"], messages[4]["content"]] == ["positive", "negative"]
    text = prompting.chat_prompt(tokenizer, messages)
    assert text.count("<|im_start|>assistant\n") == 3 and "You are a helpful" not in text
    assert text.index("Great service!") < text.index("Where is my parcel??") < text.index("I changed my address.")


def test_prompt_building_rejects_bad_input(tokenizer):
    with pytest.raises(ValueError, match="text is empty"):
        prompting.user_turn(INSTRUCTION, "   ")
    with pytest.raises(ValueError, match="must contain"):
        prompting.user_turn(INSTRUCTION, "hi", template="{instruction} only")
    with pytest.raises(ValueError, match="last message"):
        prompting.chat_prompt(tokenizer, [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}])


def test_missing_chat_template_is_a_clear_error(tokenizer):
    tokenizer.chat_template = None
    with pytest.raises(prompting.ChatTemplateError, match="no chat template"):
        prompting.chat_prompt(tokenizer, [{"role": "user", "content": "hello"}])


def test_demonstrations_are_balanced_and_repeatable():
    texts = [f"text {i}" for i in range(30)]
    labels = [i % 3 for i in range(30)]
    draw = prompting.sample_demonstrations(texts, labels, 3, seed=4, label_names=LABELS)
    assert sorted(label for _, label in draw) == LABELS  # one per class
    assert all(int(t.split()[1]) % 3 == LABELS.index(label) for t, label in draw)  # pairs kept together
    assert draw == prompting.sample_demonstrations(texts, labels, 3, seed=4, label_names=LABELS)
    draws = {tuple(prompting.sample_demonstrations(texts, labels, 4, seed=s, label_names=LABELS)) for s in range(5)}
    assert len(draws) > 1
    counts = np.bincount([LABELS.index(l) for _, l in prompting.sample_demonstrations(texts, labels, 8, seed=0, label_names=LABELS)])
    assert counts.max() - counts.min() <= 1
    assert prompting.sample_demonstrations(texts, labels, 0) == []
    with pytest.raises(ValueError, match="cannot draw"):
        prompting.sample_demonstrations(texts[:2], labels[:2], 3)


def _prompts(tokenizer):
    demos = [("Thanks, all sorted now!", "positive"), ("Still no refund after 3 weeks.", "negative")]
    texts = ["My order arrived broken and nobody answers.", "Please update my billing address.", "Love the new app!"]
    return [prompting.chat_prompt(tokenizer, prompting.classification_messages(INSTRUCTION, t, demos)) for t in texts]


def test_batched_scoring_equals_one_at_a_time(lm):
    model, tokenizer = lm
    prompts = _prompts(tokenizer)
    # "billing" and "shipping" are two tokens each: multi-token labels go through the cache path too
    labels = LABELS + ["billing", "shipping"]
    reference = prompting.score_labels_one_at_a_time(model, tokenizer, prompts, labels)
    assert reference.shape == (3, 5) and np.all(reference < 0)
    for kwargs in ({"batch_size": 2}, {"batch_size": 3, "share_prefix": False}, {"batch_size": 1}):
        batched = prompting.score_labels(model, tokenizer, prompts, labels, **kwargs)
        np.testing.assert_allclose(batched, reference, atol=2e-3, err_msg=str(kwargs))


def test_end_of_turn_adds_the_closing_token_log_probability(lm):
    model, tokenizer = lm
    prompts = _prompts(tokenizer)[:2]
    with_end = prompting.score_labels(model, tokenizer, prompts, LABELS)
    without = prompting.score_labels(model, tokenizer, prompts, LABELS, end_of_turn=False)
    reference = prompting.score_labels_one_at_a_time(model, tokenizer, prompts, LABELS, end_of_turn=False)
    np.testing.assert_allclose(without, reference, atol=2e-3)
    assert np.all(with_end < without)  # one more token, each with probability < 1


def test_scores_follow_the_prompt(lm):
    model, tokenizer = lm
    prompt = prompting.chat_prompt(tokenizer, [{"role": "user", "content": "Reply with exactly the word banana."}])
    scores = prompting.score_labels(model, tokenizer, [prompt], ["banana", "table"])
    assert scores[0, 0] > scores[0, 1] + 2


def test_scoring_rejects_bad_labels_and_prompts(lm):
    model, tokenizer = lm
    prompts = _prompts(tokenizer)[:1]
    for labels, message in ((["neutral"], "at least two"), (["neutral", "neutral"], "distinct"), (["a", " "], "non-empty")):
        with pytest.raises(ValueError, match=message):
            prompting.score_labels(model, tokenizer, prompts, labels)
    with pytest.raises(ValueError, match="no prompts"):
        prompting.score_labels(model, tokenizer, [], LABELS)


def test_generation_is_greedy_and_repeatable(lm):
    model, tokenizer = lm
    chats = [
        [{"role": "user", "content": "Say hello."}],
        [{"role": "user", "content": "Name one colour of the rainbow, in one word."}],
    ]
    first = prompting.generate(model, tokenizer, chats, max_new_tokens=6, batch_size=2)
    assert len(first) == 2 and all(isinstance(r, str) and r for r in first)
    assert first == prompting.generate(model, tokenizer, chats, max_new_tokens=6, batch_size=1)  # padding does not matter
    assert tokenizer.padding_side == "right"  # restored after generating
    assert all("<|im_end|>" not in r for r in first)
