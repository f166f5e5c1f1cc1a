"""Tokenization, batching, the training loop, Trainer and prediction, on real data with the real encoder.

Small slices (32-64 examples, max_length 32, one or two short epochs) keep every test to a few seconds.
"""

import inspect
from pathlib import Path

import numpy as np
import pytest
import torch

from finetune_utils import data, heads, models, training


@pytest.fixture(scope="module")
def tokenizer():
    return models.load_encoder_tokenizer()


@pytest.fixture(scope="module")
def sentiment():
    return data.load("support_sentiment")


@pytest.fixture(scope="module")
def small(sentiment, tokenizer):
    """64 training and 32 validation messages, tokenized to at most 32 tokens."""
    ds, labels = sentiment
    train = training.tokenize(ds["train"].select(range(64)), tokenizer, max_length=32)
    val = training.tokenize(ds["validation"].select(range(32)), tokenizer, max_length=32)
    return train, val, labels


# --------------------------------------------------------------------------- tokenize and batches


def test_tokenize_truncates_and_pads_nothing(sentiment, tokenizer):
    ds, _ = sentiment
    raw = ds["train"].select(range(64))
    tok = training.tokenize(raw, tokenizer, max_length=16)
    assert set(tok.column_names) == {"input_ids", "token_type_ids", "attention_mask", "labels"}
    lengths = [len(ids) for ids in tok["input_ids"]]
    full = [len(ids) for ids in tokenizer(list(raw["text"]))["input_ids"]]
    assert max(lengths) == 16 and min(lengths) < 16  # truncated, and not padded to a common length
    assert lengths == [min(n, 16) for n in full]
    for ids in tok["input_ids"]:
        assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
        assert tokenizer.pad_token_id not in ids
    assert list(tok["labels"]) == list(raw["label"])


def test_tokenize_pairs_and_dataset_dicts(tokenizer):
    ds, labels = data.load("support_answers")
    tok = training.tokenize(ds, tokenizer, text_field="question", pair_field="answer", max_length=48)
    assert set(tok) == {"train", "validation", "test"}
    row = tok["train"][0]
    assert row["input_ids"].count(tokenizer.sep_token_id) == 2  # [CLS] question [SEP] answer [SEP]
    assert set(row["token_type_ids"]) == {0, 1}
    assert max(len(ids) for ids in tok["train"]["input_ids"]) <= 48


def test_tokenize_rejects_bad_arguments(sentiment, tokenizer):
    ds, _ = sentiment
    with pytest.raises(ValueError, match="max_length must be an int >= 8"):
        training.tokenize(ds["train"], tokenizer, max_length=4)
    with pytest.raises(ValueError, match="no column 'question'"):
        training.tokenize(ds["train"], tokenizer, text_field="question")


def test_loader_pads_each_batch_to_its_longest(small, tokenizer):
    train, _, _ = small
    lengths = [len(ids) for ids in train["input_ids"]]
    widths = []
    for k, batch in enumerate(training.loader(train, tokenizer, batch_size=16)):
        longest = max(lengths[16 * k : 16 * (k + 1)])
        assert batch["input_ids"].shape == (16, longest)
        assert batch["attention_mask"].sum(1).tolist() == lengths[16 * k : 16 * (k + 1)]
        assert batch["labels"].shape == (16,)
        widths.append(longest)
    assert len(widths) == 4
    fixed = next(iter(training.loader(train, tokenizer, batch_size=16, pad_to=32)))
    assert fixed["input_ids"].shape == (16, 32)


def test_loader_shuffles_repeatably(small, tokenizer):
    train, _, _ = small
    first = [b["labels"].tolist() for b in training.loader(train, tokenizer, 16, shuffle=True, seed=1)]
    again = [b["labels"].tolist() for b in training.loader(train, tokenizer, 16, shuffle=True, seed=1)]
    ordered = [b["labels"].tolist() for b in training.loader(train, tokenizer, 16)]
    assert first == again
    assert first != ordered
    assert sorted(sum(first, [])) == sorted(train["labels"])


# --------------------------------------------------------------------------- the loop


def _mean_loss(model, ds, tokenizer):
    logits = torch.as_tensor(training.predict(model, ds, tokenizer))
    return torch.nn.functional.cross_entropy(logits, torch.as_tensor(ds["labels"])).item()


def test_train_reduces_the_loss_and_returns_the_history(small, tokenizer):
    train, val, labels = small
    model = heads.classifier(labels, seed=0)
    before = _mean_loss(model, train, tokenizer)
    history = training.train(model, train, tokenizer, val, epochs=2, lr=1e-4, batch_size=8, progress=False)
    after = _mean_loss(model, train, tokenizer)
    assert after < before - 0.05, f"training loss on the slice went from {before:.3f} to {after:.3f}"
    steps = 2 * 64 // 8
    assert history["step"] == list(range(1, steps + 1))
    assert len(history["loss"]) == len(history["lr"]) == steps
    assert history["epoch"] == [1, 2] and history["epoch_step"] == [steps // 2, steps]
    assert len(history["train_loss"]) == len(history["seconds"]) == 2
    assert np.isclose(history["train_loss"][0], np.mean(history["loss"][: steps // 2]))
    assert history["lr"][-1] == 0.0 and max(history["lr"]) <= 1e-4  # warm-up, then linear decay to 0
    for key in ("val_macro_f1", "val_micro_f1", "val_accuracy"):
        assert len(history[key]) == 2 and all(0 <= v <= 1 for v in history[key])


def test_same_seed_gives_identical_losses(small, tokenizer):
    train, _, labels = small
    runs = []
    for _ in range(2):
        model = heads.classifier(labels, seed=5)
        runs.append(training.train(model, train.select(range(16)), tokenizer, epochs=1, batch_size=8, seed=5, progress=False))
    assert runs[0]["loss"] == runs[1]["loss"]
    other = training.train(
        heads.classifier(labels, seed=6), train.select(range(16)), tokenizer, epochs=1, batch_size=8, seed=6, progress=False
    )
    assert other["loss"] != runs[0]["loss"]


def test_a_head_with_too_few_labels_is_refused(small, tokenizer):
    train, _, _ = small
    two_way = heads.classifier(["negative", "positive"])
    with pytest.raises(ValueError, match=r"predicts 2 classes.*num_labels=3"):
        training.train(two_way, train, tokenizer, epochs=1, progress=False)
    with pytest.raises(ValueError, match=r"predicts 2 classes"):
        training.make_trainer(two_way, train, tokenizer, epochs=1, progress=False)


def test_train_rejects_bad_arguments(small, sentiment, tokenizer):
    train, _, labels = small
    model = heads.classifier(labels)
    with pytest.raises(ValueError, match="no 'labels' column.*tokenize it first"):
        training.train(model, sentiment[0]["train"], tokenizer, progress=False)
    with pytest.raises(ValueError, match="need epochs >= 1"):
        training.train(model, train, tokenizer, epochs=0, progress=False)
    for p in model.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        training.train(model, train, tokenizer, epochs=1, progress=False)


def test_predict_and_evaluate(small, tokenizer):
    _, val, labels = small
    model = heads.classifier(labels, seed=0)
    logits = training.predict(model, val, tokenizer, batch_size=8)
    assert logits.shape == (32, 3) and logits.dtype == np.float32
    backwards = training.predict(model, val.select(range(31, -1, -1)), tokenizer, batch_size=8)
    np.testing.assert_allclose(backwards[::-1], logits, atol=1e-5)  # in order, and padding changes nothing
    result = training.evaluate(model, val, tokenizer)
    assert set(result) == {"macro_f1", "micro_f1", "accuracy"}
    assert result["accuracy"] == pytest.approx(np.mean(logits.argmax(-1) == np.asarray(val["labels"])))


def test_predict_refuses_empty_and_untokenized_data(small, tokenizer, sentiment):
    _, val, labels = small
    model = heads.classifier(labels, seed=0)
    with pytest.raises(ValueError, match="empty: there is nothing to predict"):
        training.predict(model, val.select([]), tokenizer)
    with pytest.raises(ValueError, match="tokenize it first"):
        training.predict(model, sentiment[0]["validation"], tokenizer)


def test_group_by_length_batches_similar_lengths(small, tokenizer):
    train_ds, _, _ = small
    grouped = list(training.loader(train_ds, tokenizer, batch_size=8, group_by_length=True, seed=0))
    plain = list(training.loader(train_ds, tokenizer, batch_size=8, shuffle=True, seed=0))
    assert sum(len(b["labels"]) for b in grouped) == len(train_ds)  # every example once per epoch
    padded = lambda batches: sum(int((b["attention_mask"] == 0).sum()) for b in batches)
    assert padded(grouped) < padded(plain)


# --------------------------------------------------------------------------- token classification


def test_tokenize_tokens_tags_word_pieces_from_the_spans(tokenizer):
    ds, tag_names = data.load("support_entities")
    raw = ds["train"].select(range(40))
    tok = training.tokenize_tokens(raw, tokenizer, max_length=64)
    assert tok["labels"] == training.tokenize_tokens(raw, tokenizer, tag_names, max_length=64)["labels"]
    entity_names = raw.features["entities"].feature["label"].names
    checked_entities = 0
    for row, enc in zip(raw, tok):
        offsets = tokenizer(row["text"], truncation=True, max_length=64, return_offsets_mapping=True)["offset_mapping"]
        ids, tags = enc["input_ids"], enc["labels"]
        assert len(tags) == len(ids) == len(offsets)
        assert tags[0] == -100 and tags[-1] == -100  # [CLS] and [SEP]
        for (start, end), tag in zip(offsets[1:-1], tags[1:-1]):
            inside = [e for e in row["entities"] if e["start"] <= start < e["end"]]
            if not inside:
                assert tag_names[tag] == "O", f"{row['text'][start:end]!r} is outside every entity"
                continue
            ent = inside[0]
            kind = entity_names[ent["label"]]
            first_piece = min(s for s, e in offsets[1:-1] if ent["start"] <= s < ent["end"])
            expected = ("B-" if start == first_piece else "I-") + kind
            assert tag_names[tag] == expected, f"{row['text'][start:end]!r} in {kind} should be {expected}"
        checked_entities += len(row["entities"])
    assert checked_entities > 20


def test_token_classifier_trains_and_predicts(tokenizer):
    ds, tag_names = data.load("support_entities")
    train = training.tokenize_tokens(ds["train"].select(range(32)), tokenizer, max_length=32)
    val = training.tokenize_tokens(ds["validation"].select(range(16)), tokenizer, max_length=32)
    model = heads.classifier(tag_names, task="token", seed=0)
    batch = next(iter(training.loader(train, tokenizer, batch_size=8, task="token")))
    assert batch["labels"].shape == batch["input_ids"].shape
    assert (batch["labels"][batch["attention_mask"] == 0] == -100).all()  # padding is ignored by the loss
    history = training.train(model, train, tokenizer, epochs=1, batch_size=8, lr=1e-4, progress=False)
    assert len(history["loss"]) == 4 and all(np.isfinite(history["loss"]))
    logits = training.predict(model, val, tokenizer)
    assert logits.shape == (16, max(len(x) for x in val["input_ids"]), len(tag_names))
    result = training.evaluate(model, val, tokenizer)
    assert 0 <= result["macro_f1"] <= 1 and 0 <= result["accuracy"] <= 1


# --------------------------------------------------------------------------- Trainer


def test_make_trainer_trains_without_checkpoints_or_telemetry(small, tokenizer):
    train, val, labels = small
    model = heads.classifier(labels, seed=0)
    trainer = training.make_trainer(model, train.select(range(32)), tokenizer, val, epochs=1, batch_size=8, progress=False)
    assert trainer.args.report_to in ([], "none", ["none"])
    assert trainer.args.save_strategy == "no"
    result = trainer.train()
    assert result.global_step == 4 and np.isfinite(result.training_loss)
    metrics = trainer.evaluate()
    assert 0 <= metrics["eval_macro_f1"] <= 1
    written = list(Path(trainer.args.output_dir).rglob("*"))
    assert written == [], f"Trainer wrote files: {written[:5]}"


def test_make_trainer_takes_trains_settings_and_defaults(small, tokenizer):
    train, val, labels = small
    model = heads.classifier(labels, seed=0)
    trainer = training.make_trainer(model, train.select(range(32)), tokenizer, lr=3e-4, progress=False)
    defaults = inspect.signature(training.train).parameters
    assert trainer.args.learning_rate == 3e-4
    assert trainer.args.num_train_epochs == defaults["epochs"].default
    assert trainer.args.per_device_train_batch_size == defaults["batch_size"].default
    assert trainer.args.weight_decay == defaults["weight_decay"].default
    with pytest.raises(TypeError, match="learning_rate"):
        training.make_trainer(model, train, tokenizer, learning_rate=3e-4)


def test_eval_sets_record_scores_per_epoch_on_each_named_set(small, tokenizer):
    """Added for lesson 08 (overfitting: the train/validation gap per epoch)."""
    train, val, labels = small
    tiny = train.select(range(16))
    model = heads.classifier(labels, seed=0)
    history = training.train(
        model, tiny, tokenizer, val, epochs=2, lr=1e-4, batch_size=8, progress=False, eval_sets={"train": tiny}
    )
    for key in ("train_macro_f1", "train_micro_f1", "train_accuracy"):
        assert len(history[key]) == 2 and all(0 <= v <= 1 for v in history[key])
    # the last epoch's entry is the model's score on that set after training
    assert history["train_accuracy"][-1] == training.evaluate(model, tiny, tokenizer)["accuracy"]
    assert len(history["val_macro_f1"]) == 2  # the validation set is still scored as before
    with pytest.raises(TypeError, match="eval_sets must be a dict"):
        training.train(model, tiny, tokenizer, epochs=1, progress=False, eval_sets=tiny)
    with pytest.raises(ValueError, match="head predicts"):
        bad = tiny.map(lambda row: {"labels": 5})
        training.train(model, tiny, tokenizer, epochs=1, progress=False, eval_sets={"bad": bad})


def _lesson_02_loop_cell() -> str:
    """The code cells of lesson 02 that set up the training (model, batches, optimizer, schedule) and write the loop
    out (the lesson's own code, not a copy)."""
    import nbformat

    notebook = nbformat.read(Path(__file__).parents[1] / "solutions" / "02_finetuning_objective.ipynb", as_version=4)
    code = [c.source for c in notebook.cells if c.cell_type == "code"]
    loops = [i for i, c in enumerate(code) if "loss.backward()" in c and "for epoch in range(1, EPOCHS + 1)" in c]
    assert len(loops) == 1, f"lesson 02 should write the loop in one cell, found {len(loops)}"
    setups = [i for i in range(loops[0] + 1) if "optimizer = torch.optim.AdamW(" in code[i] and "batches = " in code[i]]
    assert setups, "lesson 02 should build the model, batches and optimizer in or before the loop's cell"
    return "\n".join(code[i] for i in sorted({setups[-1], loops[0]}))


def test_train_is_lesson_02s_loop(small, tokenizer):
    """Lesson 02 writes the loop in the notebook and says train() is exactly that loop: run the lesson's cell, same losses."""
    import math
    import time

    import torch.nn.functional as F
    from tqdm.std import tqdm  # tqdm.auto's class calls iter() on the loader when built: one more draw of its seed
    from transformers import get_linear_schedule_with_warmup

    from finetune_utils import env, evaluation

    train, val, labels = small
    train = train.select(range(24))
    settings = dict(SEED=0, LR=1e-4, EPOCHS=2, BATCH_SIZE=8, WARMUP=0.1, device=torch.device("cpu"))
    namespace = dict(settings, math=math, time=time, np=np, torch=torch, F=F, tqdm=tqdm,
                     get_linear_schedule_with_warmup=get_linear_schedule_with_warmup, env=env, evaluation=evaluation,
                     heads=heads, training=training, tokenizer=tokenizer, labels=labels,
                     tok={"train": train, "validation": val})
    exec(compile(_lesson_02_loop_cell(), "lesson 02, the training loop", "exec"), namespace)
    packaged = training.train(heads.classifier(labels, seed=0), train, tokenizer, val, epochs=2, lr=1e-4, batch_size=8,
                              warmup_ratio=0.1, seed=0, device=settings["device"], group_by_length=True, progress=False)
    assert namespace["step_loss"] == packaged["loss"]
    assert namespace["step_lr"] == packaged["lr"]
    assert namespace["val_f1"] == packaged["val_macro_f1"]


def test_grouped_sampler_splits_each_global_batch_between_processes_and_reshuffles_per_epoch():
    import random

    rng = random.Random(0)
    lengths = [rng.randint(5, 120) for _ in range(641)]  # sorted in groups of 10 batches

    def batches(replicas, rank, epoch, size=8):
        sampler = training.GroupedSampler(lengths, size, seed=3, num_replicas=replicas, rank=rank)
        sampler.set_epoch(epoch)
        order = list(sampler)
        assert len(order) == len(sampler)
        return [order[i:i + size] for i in range(0, len(order), size)]

    one = batches(1, 0, epoch=1, size=16)
    assert sorted(i for b in one for i in b) == list(range(641))  # every example once
    two = [batches(2, r, epoch=1) for r in (0, 1)]
    assert len(two[0]) == len(two[1]) == len(one)  # the same number of steps on each process
    # the two processes' batches of a step together are the single process's batch (the last one padded by one)
    for k, batch in enumerate(one):
        assert set(two[0][k]) | set(two[1][k]) == set(batch) | ({one[0][0]} if k == len(one) - 1 else set())
    assert batches(1, 0, epoch=1, size=16) == one and batches(1, 0, epoch=2, size=16) != one  # set_epoch reshuffles

    def padding(bs):
        return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in bs)

    shuffled = list(range(641))
    random.Random(1).shuffle(shuffled)
    assert padding(one) < padding([shuffled[i:i + 16] for i in range(0, 641, 16)]) / 2
