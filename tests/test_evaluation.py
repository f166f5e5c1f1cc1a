"""finetune_utils.evaluation: exact values on small arrays worked out by hand."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from finetune_utils import data, evaluation  # noqa: E402

# --------------------------------------------------------------------------- scores


def test_scores_on_a_known_case():
    # class 0: tp 2, fp 0, fn 1 -> P 1, R 2/3, F1 0.8; class 1: tp 1, fp 1, fn 0 -> P 1/2, R 1, F1 2/3
    # class 2: tp 1, fp 0, fn 0 -> F1 1.  macro = (0.8 + 2/3 + 1) / 3; micro = accuracy = 4/5
    s = evaluation.scores([0, 0, 0, 1, 2], [0, 0, 1, 1, 2])
    assert s["macro_f1"] == pytest.approx((0.8 + 2 / 3 + 1) / 3)
    assert s["micro_f1"] == pytest.approx(0.8)
    assert s["accuracy"] == pytest.approx(0.8)


def test_macro_f1_punishes_a_missed_rare_class_more_than_micro():
    y_true = [0] * 9 + [1]
    y_pred = [0] * 10  # never predicts the rare class
    s = evaluation.scores(y_true, y_pred)
    assert s["accuracy"] == pytest.approx(0.9)
    assert s["macro_f1"] == pytest.approx((18 / 19 + 0) / 2)


@pytest.mark.parametrize(
    "y_true, y_pred, match",
    [([0, 1, 1], [0, 1], "3 labels but y_pred has 2"), ([], [], "empty"), ([[0, 1]], [[0, 1]], "1-D")],
)
def test_scores_rejects_bad_input(y_true, y_pred, match):
    with pytest.raises(ValueError, match=match):
        evaluation.scores(y_true, y_pred)


def test_report_lists_every_class_even_if_never_predicted():
    text = evaluation.report([0, 1, 2], [0, 0, 0], ["neg", "neu", "pos"])
    assert all(name in text for name in ("neg", "neu", "pos"))


def test_group_accuracy_orders_worst_first_and_counts_none():
    out = evaluation.group_accuracy([0, 1, 1, 0, 2], [0, 0, 1, 1, 2], ["a", "b", "b", "a", None])
    assert list(out) == ["a", "b", "(none)"]
    assert out["a"] == {"n": 2, "accuracy": 0.5}
    assert out["b"] == {"n": 2, "accuracy": 0.5}
    assert out["(none)"] == {"n": 1, "accuracy": 1.0}
    with pytest.raises(ValueError, match="one per example"):
        evaluation.group_accuracy([0, 1], [0, 1], ["a"])


# --------------------------------------------------------------------------- softmax


def test_softmax_rows_sum_to_one_and_match_the_formula():
    logits = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    p = evaluation.softmax(logits)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    np.testing.assert_allclose(p[0], np.exp([1, 2, 3]) / np.exp([1, 2, 3]).sum())
    np.testing.assert_allclose(p[1], [1 / 3] * 3)


def test_softmax_is_stable_for_huge_logits():
    p = evaluation.softmax(np.array([[1000.0, 1000.0], [1e6, -1e6], [-1e4, -1e4 + np.log(3)]]))
    assert np.all(np.isfinite(p))
    np.testing.assert_allclose(p, [[0.5, 0.5], [1.0, 0.0], [0.25, 0.75]], atol=1e-12)


def test_softmax_temperature_keeps_the_argmax_and_softens():
    logits = np.array([[2.0, 0.0], [0.0, 1.0]])
    hot, cold = evaluation.softmax(logits, temperature=2.0), evaluation.softmax(logits, temperature=0.5)
    np.testing.assert_allclose(hot[0], evaluation.softmax([[1.0, 0.0]])[0])
    assert (hot.argmax(1) == cold.argmax(1)).all()
    assert hot.max(1)[0] < evaluation.softmax(logits).max(1)[0] < cold.max(1)[0]
    with pytest.raises(ValueError, match="temperature"):
        evaluation.softmax(logits, temperature=0)


# --------------------------------------------------------------------------- calibration


def test_ece_of_a_perfectly_calibrated_toy_case_is_zero():
    # 10 predictions at confidence 0.8, 8 of them right; 4 at confidence 0.5 (binary), 2 right
    probs = np.array([[0.8, 0.2]] * 10 + [[0.5, 0.5]] * 4)
    y = np.array([0] * 8 + [1] * 2 + [0, 0, 1, 1])
    assert evaluation.expected_calibration_error(probs, y) == pytest.approx(0.0, abs=1e-12)


def test_ece_of_a_known_case_equals_the_hand_computed_value():
    # bin (0.9, 1.0]: confidences 0.95, 0.95, 0.95, 0.95 -> mean 0.95, accuracy 2/4 -> gap 0.45
    # bin (0.6, 0.7]: confidences 0.7, 0.7 -> mean 0.7, accuracy 1/2 -> gap 0.2
    # ECE = (4 * 0.45 + 2 * 0.2) / 6
    probs = np.array([[0.95, 0.05]] * 4 + [[0.3, 0.7]] * 2)
    y = np.array([0, 0, 1, 1, 1, 0])
    assert evaluation.expected_calibration_error(probs, y) == pytest.approx((4 * 0.45 + 2 * 0.2) / 6)


def test_calibration_bins_counts_means_and_edges():
    probs = np.array([[0.55, 0.45], [0.6, 0.4], [0.61, 0.39], [1.0, 0.0], [0.25, 0.75]])
    y = np.array([0, 1, 0, 0, 1])
    conf, acc, count = evaluation.calibration_bins(probs, y, n_bins=5)
    # bins (0,.2] (.2,.4] (.4,.6] (.6,.8] (.8,1]: 0.55 and 0.6 -> bin 2; 0.61, 0.75 -> bin 3; 1.0 -> bin 4
    assert count.tolist() == [0, 0, 2, 2, 1]
    assert count.sum() == len(y)
    np.testing.assert_allclose(conf[2:], [0.575, 0.68, 1.0])
    np.testing.assert_allclose(acc[2:], [0.5, 1.0, 1.0])
    assert np.isnan(conf[:2]).all() and np.isnan(acc[:2]).all()


def test_calibration_rejects_logits_and_bad_shapes():
    with pytest.raises(ValueError, match="softmax"):
        evaluation.expected_calibration_error(np.array([[2.0, -1.0], [0.5, 3.0]]), [0, 1])
    with pytest.raises(ValueError, match="3 rows but y_true has 2"):
        evaluation.calibration_bins(np.full((3, 2), 0.5), [0, 1])
    with pytest.raises(ValueError, match=r"\(n, classes\)"):
        evaluation.calibration_bins(np.array([0.2, 0.8]), [1, 0])
    with pytest.raises(ValueError, match="class ids 0..1"):
        evaluation.calibration_bins(np.full((2, 2), 0.5), [0, 2])
    with pytest.raises(ValueError, match="n_bins"):
        evaluation.calibration_bins(np.full((2, 2), 0.5), [0, 1], n_bins=0)


# --------------------------------------------------------------------------- errors


def test_most_confident_mistakes_order_and_content():
    probs = np.array([[0.9, 0.1], [0.3, 0.7], [0.2, 0.8], [0.6, 0.4], [0.05, 0.95]])
    y = np.array([0, 0, 0, 1, 1])  # wrong: rows 1 (0.7), 2 (0.8), 3 (0.6)
    out = evaluation.most_confident_mistakes(probs, y, ["a", "b", "c", "d", "e"], ["neg", "pos"], k=2)
    assert [m["index"] for m in out] == [2, 1]
    assert out[0] == {"index": 2, "text": "c", "true": "neg", "predicted": "pos", "confidence": pytest.approx(0.8)}
    assert len(evaluation.most_confident_mistakes(probs, y, list("abcde"), ["neg", "pos"], k=10)) == 3
    with pytest.raises(ValueError, match="texts has 4"):
        evaluation.most_confident_mistakes(probs, y, list("abcd"), ["neg", "pos"])


# --------------------------------------------------------------------------- plots


def test_plot_functions_return_axes():
    probs = evaluation.softmax(np.random.default_rng(0).normal(size=(30, 3)) * 3)
    y = np.arange(30) % 3
    ax = evaluation.plot_confusion(y, probs.argmax(1), ["a", "b", "c"], normalize="true", title="t")
    assert ax.get_title() == "t" and len(ax.texts) == 9
    ax = evaluation.plot_reliability(probs, y)
    assert ax.get_title() == f"ECE = {evaluation.expected_calibration_error(probs, y):.3f}"
    history = {"step": [1, 2, 3, 4], "loss": [1.0, 0.8, 0.6, 0.5], "epoch_step": [2, 4], "val_macro_f1": [0.5, 0.7]}
    assert evaluation.plot_history(history, title="h").get_title() == "h"
    plt.close("all")


# --------------------------------------------------------------------------- entities


def test_bio_spans_from_strings_and_ids():
    tags = ["O", "B-DATE", "I-DATE", "O", "B-AMOUNT", "B-AMOUNT", "I-PRODUCT", "I-PRODUCT", "I-DATE"]
    assert evaluation.bio_spans(tags) == [("DATE", 1, 3), ("AMOUNT", 4, 5), ("AMOUNT", 5, 6), ("PRODUCT", 6, 8), ("DATE", 8, 9)]
    names = data.bio_names(["PRODUCT", "ORDER_ID", "DATE", "AMOUNT"])  # O, B-PRODUCT, I-PRODUCT, B-ORDER_ID, ...
    ids = [-100, names.index("B-ORDER_ID"), names.index("I-ORDER_ID"), -100]
    assert evaluation.bio_spans(ids, names) == [("ORDER_ID", 1, 3)]
    with pytest.raises(ValueError, match="tag_names"):
        evaluation.bio_spans([0, 1])
    with pytest.raises(ValueError, match="not a BIO tag"):
        evaluation.bio_spans(["O", "DATE"])


def test_span_scores_exact_match():
    gold = [[("DATE", 1, 3), ("AMOUNT", 5, 6)], [("PRODUCT", 0, 2)], []]
    pred = [[("DATE", 1, 3), ("AMOUNT", 4, 6)], [("PRODUCT", 0, 2)], [("DATE", 0, 1)]]
    s = evaluation.span_scores(gold, pred)
    # correct: DATE(1,3), PRODUCT(0,2) -> 2 of 4 predicted, 2 of 3 gold (a boundary error counts as wrong)
    assert (s["n_correct"], s["n_true"], s["n_pred"]) == (2, 3, 4)
    assert s["precision"] == pytest.approx(0.5) and s["recall"] == pytest.approx(2 / 3)
    assert s["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert s["per_label"]["AMOUNT"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert s["per_label"]["DATE"]["precision"] == pytest.approx(0.5) and s["per_label"]["DATE"]["recall"] == 1.0
    assert evaluation.span_scores(gold, gold)["f1"] == 1.0
    with pytest.raises(ValueError, match="one list of spans per example"):
        evaluation.span_scores(gold, pred[:2])


def test_entity_scores_from_logits_skip_special_tokens_and_padding():
    names = ["O", "B-DATE", "I-DATE"]
    labels = [[-100, 1, 2, 0, -100], [-100, 0, 1, -100]]
    logits = np.full((2, 5, 3), np.nan)  # padded like training.predict pads token tasks
    for i, guess in enumerate([[0, 1, 2, 0, 1], [1, 0, 0, 0]]):  # row 1 misses its DATE
        logits[i, : len(guess)] = np.eye(3)[guess]
    s = evaluation.entity_scores(logits, labels, names)
    assert (s["n_correct"], s["n_true"], s["n_pred"]) == (1, 2, 1)
    with pytest.raises(ValueError, match=r"\(n, tokens, tags\)"):
        evaluation.entity_scores(logits[0], labels, names)
    with pytest.raises(ValueError, match="2 tag names for 3"):
        evaluation.entity_scores(logits, labels, names[:2])


# --------------------------------------------------------------------------- inference on new text


def test_unlabelled_text_tokenizes_and_predicts():
    """training.tokenize(..., label_field=None) (lesson 04's inference on new text) feeds training.predict."""
    from datasets import Dataset

    from finetune_utils import heads, models, training

    tokenizer = models.load_encoder_tokenizer()
    texts = ["the parcel never arrived", "thanks, all sorted now!", "what time do you open?"]
    enc = training.tokenize(Dataset.from_dict({"text": texts}), tokenizer, max_length=32, label_field=None)
    assert "labels" not in enc.column_names and "input_ids" in enc.column_names
    model = heads.classifier(["negative", "neutral", "positive"])
    probs = evaluation.softmax(training.predict(model, enc, tokenizer, batch_size=2))
    assert probs.shape == (3, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
