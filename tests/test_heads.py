"""Prediction networks on the packaged encoder (real weights, real data, no fakes)."""

import pytest
import torch

from finetune_utils import data, heads, models

SENTIMENT = ["negative", "neutral", "positive"]


@pytest.fixture(scope="module")
def tokenizer():
    return models.load_encoder_tokenizer()


@pytest.fixture(scope="module")
def sentiment_model():
    return heads.classifier(SENTIMENT, seed=0)


def test_checkpoint_has_no_pretraining_head():
    """What ships is the encoder alone: no MLM / NSP head (it was discarded), a pooler."""
    names = heads.checkpoint_names()
    assert any(n.startswith("encoder.layer.5.") for n in names)
    assert {"pooler.dense.weight", "pooler.dense.bias"} <= names
    head_like = [n for n in names if n.startswith("cls.") or "predictions" in n or "seq_relationship" in n]
    assert head_like == [], f"pre-training head parameters in the checkpoint: {head_like}"


def test_classifier_shapes_and_label_names(sentiment_model, tokenizer):
    model = sentiment_model
    assert type(model).__name__ == "BertForSequenceClassification"
    assert model.config.num_labels == 3
    assert model.config.id2label == {0: "negative", 1: "neutral", 2: "positive"}
    assert model.config.label2id == {"negative": 0, "neutral": 1, "positive": 2}
    assert tuple(model.classifier.weight.shape) == (3, 384)  # W: (num_labels, hidden)
    assert tuple(model.classifier.bias.shape) == (3,)
    ds, _ = data.load("support_sentiment")
    batch = tokenizer(ds["validation"]["text"][:4], padding=True, return_tensors="pt")
    model.eval()
    with torch.no_grad():
        logits = model(**batch).logits
    assert tuple(logits.shape) == (4, 3)
    probs = logits.softmax(-1)
    assert torch.allclose(probs.sum(-1), torch.ones(4), atol=1e-6)


def test_new_parameters_are_exactly_the_classifier(sentiment_model):
    assert heads.new_parameter_names(sentiment_model) == ["classifier.weight", "classifier.bias"]
    token_model = heads.classifier(data.bio_names(["PRODUCT", "DATE"]), task="token")
    assert type(token_model).__name__ == "BertForTokenClassification"
    assert heads.new_parameter_names(token_model) == ["classifier.weight", "classifier.bias"]
    assert tuple(token_model.classifier.weight.shape) == (5, 384)
    encoder = models.load_encoder(with_tokenizer=False)
    assert heads.new_parameter_names(encoder) == []  # the bare encoder has nothing new


def test_pretrained_parameters_are_copied_into_the_classifier(sentiment_model):
    """θ̂: every encoder weight of the classifier equals the packaged checkpoint's."""
    encoder = models.load_encoder(with_tokenizer=False)
    mine = dict(sentiment_model.bert.named_parameters())
    for name, param in encoder.named_parameters():
        assert torch.equal(mine[name], param), f"{name} differs from the pre-trained checkpoint"


def test_seed_makes_the_new_head_repeatable():
    a = heads.classifier(SENTIMENT, seed=3).classifier.weight
    b = heads.classifier(SENTIMENT, seed=3).classifier.weight
    c = heads.classifier(SENTIMENT, seed=4).classifier.weight
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_dropout_is_set_in_the_config():
    model = heads.classifier(SENTIMENT, dropout=0.3)
    assert model.config.classifier_dropout == 0.3
    assert model.dropout.p == 0.3


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(label_names=SENTIMENT, task="regression"), "task must be one of"),
        (dict(label_names=["a", "b", "a"]), r"\['a'\] appear more than once"),
        (dict(label_names=["only"]), "at least two label names"),
        (dict(label_names="negative"), "list of names"),
        (dict(label_names=SENTIMENT, dropout=1.5), "dropout is a probability"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        heads.classifier(**kwargs)
