import pytest

from finetune_utils import baselines, data


def test_majority_and_scores_on_known_labels():
    result = baselines.majority([0, 0, 1], [0, 1, 1, 0])
    assert result["accuracy"] == 0.5
    assert result["macro_f1"] == pytest.approx((2 / 3 + 0) / 2)


def test_pair_texts_joins_with_sep():
    assert baselines.pair_texts(["q1", "q2"], ["a1", "a2"]) == ["q1 [SEP] a1", "q2 [SEP] a2"]


def test_tfidf_logreg_learns_and_chooses_c_on_validation():
    ds, labels = data.load("support_sentiment")
    train, val, test = ds["train"], ds["validation"], ds["test"]
    model = baselines.tfidf_logreg(train["text"], train["label"], val["text"], val["label"])
    assert model.C_ in (0.1, 1.0, 10.0, 100.0)
    scores = baselines.scores(test["label"], model.predict(test["text"]))
    chance = baselines.majority(train["label"], test["label"])
    assert scores["macro_f1"] > chance["macro_f1"] + 0.3  # it learns something real
    fixed = baselines.tfidf_logreg(train["text"][:60], train["label"][:60])
    assert fixed.C_ == 10.0


def test_tfidf_logreg_equals_the_plain_pipeline_with_the_chosen_c():
    """Fitting the vectorizer once (and one BLAS thread) is only a speed-up: same model as fitting the whole pipeline."""
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    ds, _ = data.load("support_sentiment")
    train, val, test = ds["train"][:200], ds["validation"], ds["test"]
    model = baselines.tfidf_logreg(train["text"], train["label"], val["text"], val["label"], seed=3)
    plain = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1, lowercase=True),
        LogisticRegression(C=model.C_, max_iter=5000, class_weight="balanced", random_state=3),
    ).fit(train["text"], train["label"])
    np.testing.assert_allclose(model.predict_proba(test["text"]), plain.predict_proba(test["text"]), atol=1e-9)


def test_choose_c_keeps_the_best_validation_score_and_the_first_on_ties():
    class Constant:
        def __init__(self, label):
            self.label = label

        def predict(self, inputs):
            return [self.label] * len(inputs)

    val_inputs, val_labels = ["a", "b", "c", "d"], [1, 1, 1, 0]
    # C=1 and C=10 both predict 1 everywhere (the same macro-F1): the first wins; C=0.1 predicts 0 (worse)
    model, c = baselines.choose_c(lambda c: Constant(0 if c < 1 else 1), (0.1, 1.0, 10.0), val_inputs, val_labels)
    assert (c, model.label) == (1.0, 1)
