"""Instruction fine-tuning helpers on the real SmolLM2-135M-Instruct: masks, batches, LoRA, metrics."""

import json
import math

import pytest
import torch

from finetune_utils import data, freezing, models, prompting, sft

CHAT = [
    {"role": "user", "content": "Which department handles this? Answer billing, shipping, technical, account or returns.\n\nI was charged twice."},
    {"role": "assistant", "content": "billing"},
]
CHAT_LONG = [
    {"role": "user", "content": "Rewrite politely: 'No. Read the manual.'"},
    {"role": "assistant", "content": "I'm sorry, that isn't possible; the manual explains the steps in detail."},
]


@pytest.fixture(scope="module")
def lm():
    return models.load_causal_lm()


@pytest.fixture()
def tokenizer():
    return models.load_causal_lm_tokenizer()


def test_mask_trains_exactly_the_response_and_its_closing_token(tokenizer):
    example = sft.build_example(tokenizer, CHAT_LONG)
    prompt_text = tokenizer.apply_chat_template(CHAT_LONG[:1], add_generation_prompt=True, tokenize=False)
    prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    response_ids = tokenizer(CHAT_LONG[1]["content"], add_special_tokens=False)["input_ids"]
    p, r = len(prompt_ids), len(response_ids)
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    ids, labels = example["input_ids"], example["labels"]
    assert example["prompt_length"] == p and ids[:p] == prompt_ids
    assert labels[:p] == [-100] * p  # every prompt token: system, user turn, "<|im_start|>assistant\n"
    assert labels[p : p + r] == response_ids == ids[p : p + r]  # the response, trained
    assert labels[p + r] == ids[p + r] == im_end  # the closing <|im_end|>, trained: the model learns to stop
    assert labels[p + r + 1 :] == [-100] and tokenizer.decode(ids[p + r + 1 :]) == "\n"  # template glue, not trained
    assert len(ids) == len(labels) == len(example["attention_mask"]) == p + r + 2
    trained = [t for t in labels if t != -100]
    assert tokenizer.decode(trained) == CHAT_LONG[1]["content"] + "<|im_end|>"


def test_only_the_last_assistant_turn_is_trained(tokenizer):
    chat = CHAT + [{"role": "user", "content": "And this one? My parcel is late."}, {"role": "assistant", "content": "shipping"}]
    example = sft.build_example(tokenizer, chat)
    trained = tokenizer.decode([t for t in example["labels"] if t != -100])
    assert trained == "shipping<|im_end|>"
    assert "billing" in tokenizer.decode(example["input_ids"])  # the earlier answer is context only
    rows = sft.show_mask(tokenizer, example)
    assert len(rows) == len(example["input_ids"]) and sum(t for _, _, t in rows) == 3  # "sh", "ipping", <|im_end|>


def test_build_example_rejects_bad_chats(tokenizer):
    with pytest.raises(ValueError, match="last message must be the assistant"):
        sft.build_example(tokenizer, CHAT[:1] + [{"role": "user", "content": "again"}])
    with pytest.raises(ValueError, match="response is empty"):
        sft.build_example(tokenizer, [CHAT[0], {"role": "assistant", "content": "  "}])
    with pytest.raises(sft.SequenceTooLongError, match="max_length=10"):
        sft.build_example(tokenizer, CHAT, max_length=10)
    kept = sft.build_examples(tokenizer, [CHAT, CHAT_LONG], max_length=60, verbose=False)
    assert len(kept) == 1  # the longer chat was dropped
    with pytest.raises(ValueError, match="no example fits"):
        sft.build_examples(tokenizer, [CHAT], max_length=5)


def test_missing_chat_template_is_a_clear_error(tokenizer):
    tokenizer.chat_template = None
    with pytest.raises(prompting.ChatTemplateError, match="no chat template"):
        sft.build_example(tokenizer, CHAT)


def test_pad_token_falls_back_to_eos_and_errors_without_either(tokenizer):
    assert sft.pad_token_id(tokenizer) == tokenizer.pad_token_id == 2
    tokenizer.pad_token = None
    assert tokenizer.pad_token_id is None
    assert sft.pad_token_id(tokenizer) == tokenizer.eos_token_id  # safe: padded positions are masked
    tokenizer.eos_token = None
    with pytest.raises(ValueError, match="neither a pad token nor an EOS token"):
        sft.pad_token_id(tokenizer)


def test_collator_pads_with_the_pad_id_and_ignored_labels(tokenizer):
    short, long = sft.build_example(tokenizer, CHAT), sft.build_example(tokenizer, CHAT_LONG)
    n_short, n_long = len(short["input_ids"]), len(long["input_ids"])
    for pad_id in (2, 0):
        batch = sft.Collator(pad_id)([short, long])
        assert batch["input_ids"].shape == (2, n_long)  # dynamic: the longest in the batch
        assert batch["input_ids"][0, n_short:].eq(pad_id).all()
        assert batch["attention_mask"][0, n_short:].eq(0).all() and batch["attention_mask"][0, :n_short].eq(1).all()
        assert batch["labels"][0, n_short:].eq(-100).all()
        assert batch["labels"][0, :n_short].tolist() == short["labels"]
        assert batch["input_ids"][1].tolist() == long["input_ids"]
    fixed = sft.Collator(2, pad_to=128)([short, long])
    assert fixed["input_ids"].shape == (2, 128) and fixed["labels"][:, n_long:].eq(-100).all()
    with pytest.raises(sft.SequenceTooLongError):
        sft.Collator(2, pad_to=n_short)([short, long])
    with pytest.raises(ValueError, match="pad_id"):
        sft.Collator(None)


def test_batch_loss_equals_transformers_loss_and_ignores_padding(lm):
    model, tokenizer = lm
    examples = [sft.build_example(tokenizer, CHAT), sft.build_example(tokenizer, CHAT_LONG)]
    dynamic = sft.Collator(2)(examples)
    with torch.no_grad():
        reference = model(**dynamic).loss
        ours = sft.batch_loss(model, dynamic)
        fixed = sft.batch_loss(model, sft.Collator(0, pad_to=96)(examples))
        total, n = sft.batch_loss(model, dynamic, reduction="sum")
    assert torch.allclose(ours, reference, atol=1e-4)
    assert torch.allclose(fixed, reference, atol=1e-4)  # padding (any id) changes nothing
    assert n == sum(t != -100 for e in examples for t in e["labels"]) and torch.allclose(total / n, ours)
    result = sft.response_loss(model, examples, pad_id=2, batch_size=1)
    assert result["tokens"] == n and result["loss"] == pytest.approx(ours.item(), abs=1e-4)
    assert result["perplexity"] == pytest.approx(math.exp(result["loss"]))


def test_perplexity():
    assert sft.perplexity(math.log(10)) == pytest.approx(10)
    assert sft.perplexity(0.0) == 1.0
    with pytest.raises(ValueError, match="never negative"):
        sft.perplexity(-0.1)


def test_lora_trains_adapters_only_then_saves_and_reloads_identically(tmp_path):
    from peft import PeftModel

    model, tokenizer = models.load_causal_lm()
    examples = sft.build_examples(tokenizer, [CHAT, CHAT_LONG] * 2)
    batch = sft.Collator(2)(examples[:2])
    with torch.no_grad():
        before = model(**batch).logits
    peft_model = freezing.apply_lora(model, r=8, dropout=0.0, target_modules=("q_proj", "v_proj"))
    # r * (576 + 576) for q_proj (576 -> 576) + r * (576 + 192) for v_proj (576 -> 3 kv heads x 64), 30 layers
    assert models.count_parameters(peft_model, trainable_only=True) == 30 * 8 * (576 + 576 + 576 + 192)
    assert all("lora_" in n for n, p in peft_model.named_parameters() if p.requires_grad)
    with torch.no_grad():
        assert torch.allclose(peft_model(**batch).logits, before, atol=1e-5)  # B = 0: starts as the base model
        loss_before = sft.batch_loss(peft_model, batch).item()
    seen = []
    history = sft.train(
        peft_model, examples, 2, epochs=2, lr=2e-3, batch_size=2, checkpoints=[4, 8],
        on_checkpoint=lambda n, m: seen.append((n, m.training)), progress=False,
    )
    assert seen == [(4, False), (8, False)] and history["seen"] == [2, 4, 6, 8]
    assert history["tokens"] == 2 * sum(len(e["input_ids"]) for e in examples) and history["tokens_per_s"] > 0
    with torch.no_grad():
        after = sft.batch_loss(peft_model, batch).item()
        tuned = peft_model(**batch).logits
    assert after < loss_before - 0.1, (loss_before, after)  # it learned the training chats
    assert not torch.allclose(tuned, before, atol=1e-3)
    peft_model.save_pretrained(tmp_path / "adapter")
    saved = {p.name for p in (tmp_path / "adapter").iterdir()}
    assert "adapter_model.safetensors" in saved and "adapter_config.json" in saved
    reloaded = PeftModel.from_pretrained(models.load_causal_lm(with_tokenizer=False), tmp_path / "adapter")
    reloaded.eval()
    with torch.no_grad():
        assert torch.allclose(reloaded(**batch).logits, tuned, atol=1e-5)


def test_training_rejects_a_model_without_trainable_parameters(lm):
    model, tokenizer = lm
    frozen = [p.requires_grad_(False) for p in model.parameters()]
    try:
        with pytest.raises(ValueError, match="no trainable parameters"):
            sft.train(model, [sft.build_example(tokenizer, CHAT)], 2, progress=False)
    finally:
        for p in frozen:
            p.requires_grad_(True)


REF = '{"product": "Vireo smart thermostat", "order_id": "VR-3390-12", "issue": "technical", "urgent": true}'


def test_json_metrics_on_known_strings():
    preds = [
        REF,  # perfect
        '{"order_id": "VR-3390-12", "product": "Vireo smart thermostat", "issue": "technical", "urgent": true}',  # key order
        '```json\n{"product": "Vireo thermostat", "order_id": "VR-3390-12", "issue": "technical", "urgent": false}\n```',
        "The customer has a technical issue.",
    ]
    m = sft.json_metrics(preds, [REF] * 4)
    assert m["n"] == 4
    assert m["valid_json"] == 0.5  # the first two parse as they are; the fenced one does not
    assert m["valid_schema"] == 0.25  # only the first has the keys in the required order
    assert m["field_product"] == 0.5 and m["field_order_id"] == 0.75 and m["field_issue"] == 0.75
    assert m["field_urgent"] == 0.5 and m["all_fields"] == 0.5
    assert m["mean_field"] == pytest.approx((0.5 + 0.75 + 0.75 + 0.5) / 4)
    assert sft.parse_json_object(preds[2])["product"] == "Vireo thermostat"
    assert sft.parse_json_object("[1, 2]") is None and sft.parse_json_object("{broken") is None
    with pytest.raises(ValueError, match="equally many"):
        sft.json_metrics(preds, [REF])


def test_label_metrics_on_known_strings():
    preds = ["billing", " shipping\n", "This is a Technical issue, not billing.", "refund"]
    refs = ["billing", "shipping", "technical", "returns"]
    m = sft.label_metrics(preds, refs)
    assert m == {"n": 4, "valid_label": 0.5, "accuracy": 0.5, "mentioned": 0.75}
    assert set(data.DEPARTMENTS) == {"billing", "shipping", "technical", "account", "returns"}


def test_evaluate_replies_splits_by_check():
    out = sft.evaluate_replies(["json", "label", None], [REF, "account", "anything"], [REF, "billing", "ref"])
    assert out["json_valid_schema"] == 1.0 and out["json_n"] == 1
    assert out["label_valid_label"] == 1.0 and out["label_accuracy"] == 0.0
    with pytest.raises(ValueError, match="no checkable"):
        sft.evaluate_replies([None], ["x"], ["y"])
    assert json.loads(REF)  # the reference itself is a valid answer
    assert data.json_answer_problem(REF) is None
