"""diagnostics: sentence embeddings and the similarity skill, imbalance helpers, strategy helpers.

Real encoder and data; the one training run is a few steps on 32 short examples.
"""

import matplotlib
import numpy as np
import pytest
import torch

from finetune_utils import data, diagnostics, freezing, heads, models, training

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def encoder_and_tokenizer():
    return models.load_encoder()


@pytest.fixture(scope="module")
def sentiment():
    return data.load("support_sentiment")


# --------------------------------------------------------------------------- paraphrase pairs


def test_paraphrase_pairs_are_distinct_and_labelled():
    pairs = diagnostics.PARAPHRASE_PAIRS
    assert len(pairs) == len(diagnostics.PARAPHRASE_SENTIMENT) == 24
    sentences = [s for pair in pairs for s in pair]
    assert len(set(sentences)) == len(sentences)
    assert all(a != b and a.strip() and b.strip() for a, b in pairs)
    assert {s: diagnostics.PARAPHRASE_SENTIMENT.count(s) for s in set(diagnostics.PARAPHRASE_SENTIMENT)} == {
        "negative": 8, "neutral": 8, "positive": 8}


# --------------------------------------------------------------------------- embeddings


def test_sentence_embeddings_match_a_hand_computed_mean(encoder_and_tokenizer):
    encoder, tokenizer = encoder_and_tokenizer
    texts = ["Where is my order?", "The refund arrived, thank you very much for the quick help!"]
    emb = diagnostics.sentence_embeddings(encoder, tokenizer, texts)
    assert emb.shape == (2, encoder.config.hidden_size)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    # by hand, one sentence at a time (no padding at all)
    for text, row in zip(texts, emb):
        batch = tokenizer([text], return_tensors="pt")
        with torch.no_grad():
            mean = encoder(**batch).last_hidden_state[0].mean(0)
        assert np.allclose(row, torch.nn.functional.normalize(mean, dim=0).numpy(), atol=1e-5)


def test_classifier_and_lora_models_embed_with_their_encoder(encoder_and_tokenizer, sentiment):
    encoder, tokenizer = encoder_and_tokenizer
    _, labels = sentiment
    texts = list(diagnostics.PARAPHRASE_PAIRS[0])
    plain = diagnostics.sentence_embeddings(encoder, tokenizer, texts)
    model = heads.classifier(labels, seed=0)
    assert np.allclose(diagnostics.sentence_embeddings(model, tokenizer, texts), plain, atol=1e-5)
    lora = freezing.apply_lora(heads.classifier(labels, seed=0))
    assert np.allclose(diagnostics.sentence_embeddings(lora, tokenizer, texts), plain, atol=1e-5)  # B starts at 0
    assert model.training is False or model.training is True  # mode restored, no exception
    model.train()
    diagnostics.sentence_embeddings(model, tokenizer, texts)
    assert model.training, "sentence_embeddings must restore the model's training mode"


def test_sentence_embeddings_reject_bad_input(encoder_and_tokenizer):
    encoder, tokenizer = encoder_and_tokenizer
    with pytest.raises(ValueError, match="empty"):
        diagnostics.sentence_embeddings(encoder, tokenizer, [])
    with pytest.raises(ValueError, match="positions \\[1\\]"):
        diagnostics.sentence_embeddings(encoder, tokenizer, ["fine", "  "])
    with pytest.raises(TypeError, match="wrap it"):
        diagnostics.sentence_embeddings(encoder, tokenizer, "one string")
    with pytest.raises(ValueError, match="BERT-style encoder"):
        diagnostics.sentence_embeddings(torch.nn.Linear(2, 2), tokenizer, ["x"])


# --------------------------------------------------------------------------- similarity scores


def test_similarity_scores_on_constructed_embeddings():
    eye = np.eye(4)
    perfect = diagnostics.similarity_scores(eye, eye)
    assert perfect["ranking_accuracy"] == 1.0 and perfect["recall_at_1"] == 1.0 and perfect["mrr"] == 1.0
    assert perfect["paraphrase_cosine"] == 1.0 and perfect["unrelated_cosine"] == 0.0 and perfect["margin"] == 1.0
    # every paraphrase is the least similar candidate: rank n, no win
    worst = diagnostics.similarity_scores(eye, 1 - eye)
    assert worst["ranking_accuracy"] == 0.0 and worst["recall_at_1"] == 0.0
    assert np.isclose(worst["mrr"], 1 / 4)
    # all candidates equally similar: ties count half, the rank is the best one
    same = np.ones((3, 2)) / np.sqrt(2)
    tied = diagnostics.similarity_scores(same, same)
    assert tied["ranking_accuracy"] == 0.5 and np.isclose(tied["margin"], 0.0)
    # groups: only same-group candidates count; here the paraphrase is beaten inside its own group
    a = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    b = np.array([[0.6, 0.8], [0.8, 0.6], [0.0, 1.0], [1.0, 0.0]])
    grouped = diagnostics.similarity_scores(a, b, groups=["x", "x", "y", "y"])
    assert grouped["same_group_ranking_accuracy"] == 0.0  # within each group the other sentence wins
    assert np.isclose(grouped["same_group_cosine"], (0.8 + 0.8 + 1.0 + 1.0) / 4)
    assert "same_group_ranking_accuracy" not in diagnostics.similarity_scores(a, b)
    with pytest.raises(ValueError, match="one per pair"):
        diagnostics.similarity_scores(a, b, groups=["x", "y"])
    with pytest.raises(ValueError, match="share a group"):
        diagnostics.similarity_scores(a, b, groups=["p", "q", "r", "s"])
    with pytest.raises(ValueError, match="same shape"):
        diagnostics.similarity_scores(eye, eye[:3])
    with pytest.raises(ValueError, match="at least 2"):
        diagnostics.similarity_scores(eye[:1], eye[:1])


def test_pretrained_encoder_has_the_similarity_skill(encoder_and_tokenizer):
    encoder, tokenizer = encoder_and_tokenizer
    skill = diagnostics.similarity_skill(encoder, tokenizer)
    # all-MiniLM-L6-v2 was trained for exactly this: paraphrases rank far above unrelated sentences
    assert skill["ranking_accuracy"] > 0.95 and skill["recall_at_1"] > 0.8 and skill["margin"] > 0.3
    # a shuffled pairing destroys it: the scores measure the pairing, not the sentences
    pairs = diagnostics.PARAPHRASE_PAIRS
    shuffled = [(a, pairs[(i + 5) % len(pairs)][1]) for i, (a, _) in enumerate(pairs)]
    assert diagnostics.similarity_skill(encoder, tokenizer, shuffled)["recall_at_1"] < 0.2
    with pytest.raises(ValueError, match="tuples"):
        diagnostics.similarity_skill(encoder, tokenizer, [("only one",), ("a", "b")])


def test_fine_tuning_with_a_huge_learning_rate_damages_the_skill(encoder_and_tokenizer, sentiment):
    _, tokenizer = encoder_and_tokenizer
    ds, labels = sentiment
    model = heads.classifier(labels, seed=0)
    before = diagnostics.similarity_skill(model, tokenizer)
    train = training.tokenize(ds["train"].select(range(32)), tokenizer, max_length=24)
    training.train(model, train, tokenizer, epochs=1, lr=5e-3, batch_size=8, warmup_ratio=0.0, progress=False)
    after = diagnostics.similarity_skill(model, tokenizer)
    assert after["margin"] < before["margin"] - 0.1, (before, after)


# --------------------------------------------------------------------------- imbalance


def test_downsample_class_keeps_a_fraction_of_one_class(sentiment):
    ds, _ = sentiment
    train = ds["train"]
    counts = np.bincount(train["label"])
    small = diagnostics.downsample_class(train, label=2, keep=0.1, seed=0)
    new = np.bincount(small["label"], minlength=3)
    assert new[0] == counts[0] and new[1] == counts[1] and new[2] == round(0.1 * counts[2])
    kept_ids = set(small["id"])
    assert kept_ids <= set(train["id"])
    assert list(small["id"]) == [i for i in train["id"] if i in kept_ids]  # original order
    assert set(diagnostics.downsample_class(train, 2, 0.1, seed=1)["id"]) != kept_ids  # the seed draws
    assert len(diagnostics.downsample_class(train, 2, 1e-6)) == counts[0] + counts[1] + 1  # at least one
    with pytest.raises(ValueError, match="fraction"):
        diagnostics.downsample_class(train, 2, 0.0)
    with pytest.raises(ValueError, match="no example"):
        diagnostics.downsample_class(train, 7, 0.5)
    with pytest.raises(ValueError, match="no column"):
        diagnostics.downsample_class(train, 2, 0.5, label_field="labels")


def test_balanced_class_weights_match_scikit_learn():
    from sklearn.utils.class_weight import compute_class_weight

    labels = np.array([0] * 50 + [1] * 30 + [2] * 5)
    weights = diagnostics.balanced_class_weights(labels, 3)
    assert np.allclose(weights, compute_class_weight("balanced", classes=np.arange(3), y=labels))
    assert np.isclose(np.dot(weights, np.bincount(labels)), len(labels))  # the average weight per example is 1
    assert weights[2] > weights[1] > weights[0]
    with pytest.raises(ValueError, match="no training example"):
        diagnostics.balanced_class_weights([0, 0, 1], 3)
    with pytest.raises(ValueError, match="outside"):
        diagnostics.balanced_class_weights([0, 3], 3)


def test_per_class_recall():
    recall = diagnostics.per_class_recall([0, 0, 1, 1, 2, 2], [0, 0, 1, 0, 1, 1], ["a", "b", "c"])
    assert recall == {"a": 1.0, "b": 0.5, "c": 0.0}


# --------------------------------------------------------------------------- strategy helpers


def test_embedding_logreg_beats_chance_and_picks_c(encoder_and_tokenizer, sentiment):
    encoder, tokenizer = encoder_and_tokenizer
    ds, labels = sentiment
    train, val = ds["train"].select(range(150)), ds["validation"]
    x_train = diagnostics.sentence_embeddings(encoder, tokenizer, train["text"], max_length=48)
    x_val = diagnostics.sentence_embeddings(encoder, tokenizer, val["text"], max_length=48)
    clf = diagnostics.embedding_logreg(x_train, train["label"], x_val, val["label"])
    assert clf.C_ in (0.1, 1.0, 10.0)
    assert (clf.predict(x_val) == np.asarray(val["label"])).mean() > 0.5  # three balanced classes: chance is 1/3
    assert diagnostics.embedding_logreg(x_train, train["label"]).C_ == 1.0
    with pytest.raises(ValueError, match="one label per row"):
        diagnostics.embedding_logreg(x_train, train["label"][:10])


def test_relative_change_is_zero_before_training_and_positive_after(encoder_and_tokenizer, sentiment):
    encoder, tokenizer = encoder_and_tokenizer
    ds, labels = sentiment
    model = heads.classifier(labels, seed=0)
    untouched = diagnostics.relative_change(model, encoder)
    assert set(untouched) == {"embeddings", *(f"layer.{i}" for i in range(6)), "pooler"}  # no "head": ω is new
    assert all(v == 0.0 for v in untouched.values())
    with torch.no_grad():
        model.bert.encoder.layer[5].output.dense.weight.mul_(1.5)
    moved = diagnostics.relative_change(model, encoder)
    assert moved["layer.5"] > 0 and moved["layer.0"] == 0.0 and moved["embeddings"] == 0.0
    with pytest.raises(ValueError, match="share no"):
        diagnostics.relative_change(model, torch.nn.Linear(2, 2))
    # LoRA: the adapted weights are compared through peft's renamed originals (base_layer), and stay put
    lora = freezing.apply_lora(heads.classifier(labels, seed=0), target_modules=("query", "value", "dense"))
    with torch.no_grad():
        for name, param in lora.named_parameters():
            if "lora_B" in name:
                param.add_(0.1)  # the adapters change, the frozen originals do not
    frozen = diagnostics.relative_change(lora, encoder)
    assert set(frozen) == set(untouched) and all(v == 0.0 for v in frozen.values())
    assert freezing.pretrained_name("base_model.model.bert.encoder.layer.0.attention.self.query.base_layer.weight") == (
        "encoder.layer.0.attention.self.query.weight")


def test_plot_decision_guide_draws_regions_and_points():
    ax = diagnostics.plot_decision_guide([{"n": 303, "compute": 0.4, "label": "startup"}])
    texts = [t.get_text() for t in ax.texts]
    assert len(ax.patches) == len(diagnostics.GUIDE_REGIONS)
    assert len(texts) == len({r[0] for r in diagnostics.GUIDE_REGIONS}) + 1  # each strategy labelled once, one point
    assert any("full fine-tuning" in t for t in texts) and any("prompting" in t for t in texts)
    assert np.isclose(ax.lines[0].get_xdata()[0], np.log10(303))
    assert ax.texts[-1].get_text() == "startup"
    moved = diagnostics.plot_decision_guide([{"n": 10, "compute": 1, "label": "x", "offset": (-40, -12)}])
    assert tuple(moved.texts[-1].xyann) == (-40, -12)
    with pytest.raises(ValueError, match="lacks"):
        diagnostics.plot_decision_guide([{"n": 10, "label": "x"}])
    with pytest.raises(ValueError, match=">= 1"):
        diagnostics.plot_decision_guide([{"n": 0, "compute": 1, "label": "x"}])
