"""Lazy answers to lesson 04's exercises; their checks must refuse each (tests/shortcut_suite.py)."""

_SCORES = """
classes = list(range(len(model.config.id2label)))
return {"macro_f1": float(f1_score(y_true, y_pred, labels=classes, average="macro", zero_division=0)),
        "confusion": confusion_matrix(y_true, y_pred, labels=classes)}
"""
_BY_HAND = """
predictions = []
with torch.no_grad():
    for start in range(0, len(texts), batch_size):
        inputs = tokenizer(list(texts[start:start + batch_size]), padding=True, truncation=True,
                           max_length=MAX_LENGTH, return_tensors="pt").to(model.device)
        predictions.append(model(**inputs).logits.argmax(dim=-1).cpu())
y_pred = torch.cat(predictions).numpy()
"""
_THRESHOLD = """
confidence = probs.max(axis=1)
right = probs.argmax(axis=1) == y_true
for t in np.unique(confidence):
    if right[confidence >= t].mean() >= target:
        return float(t)
return None
"""
_COVER = """
kept = probs_scaled.max(axis=1) >= threshold if threshold is not None else np.zeros(len(y_test), dtype=bool)
coverage = float(kept.mean())
kept_accuracy = float((pred_test[kept] == y_test[kept]).mean()) if kept.any() else float("nan")
"""

SHORTCUTS = {
    1: [
        ("the package's ECE", "return evaluation.expected_calibration_error(probs, y_true, n_bins=n_bins)"),
        ("the package's calibration bins",
         "conf, acc, count = evaluation.calibration_bins(probs, y_true, n_bins)\nused = count > 0\n"
         "return float(np.sum(count[used] * np.abs(acc[used] - conf[used])) / count.sum())"),
        ("scikit-learn's calibration_curve",
         "from sklearn.calibration import calibration_curve\n"
         "probs, y_true = np.asarray(probs), np.asarray(y_true)\n"
         "conf, right = probs.max(1), (probs.argmax(1) == y_true).astype(int)\n"
         "acc, mean_conf = calibration_curve(right, conf, n_bins=n_bins)\n"
         "counts = np.histogram(conf, bins=np.linspace(0, 1, n_bins + 1))[0]\n"
         "counts = counts[counts > 0]\n"
         "return float(np.sum(counts * np.abs(acc - mean_conf)) / len(conf))"),
        ("the six predictions' ECE, hard-coded", "return 19 / 60"),
        ("the bins' gaps, not weighted by their size",
         "probs, y_true = np.asarray(probs), np.asarray(y_true)\n"
         "conf, right = probs.max(1), probs.argmax(1) == y_true\n"
         "edges = np.linspace(0, 1, n_bins + 1)\ngaps = []\n"
         "for lo, hi in zip(edges[:-1], edges[1:]):\n    b = (conf > lo) & (conf <= hi)\n"
         "    if b.any():\n        gaps.append(abs(right[b].mean() - conf[b].mean()))\n"
         "return float(np.mean(gaps))"),
        ("always 10 bins",
         "probs, y_true = np.asarray(probs), np.asarray(y_true)\n"
         "conf, right = probs.max(1), probs.argmax(1) == y_true\n"
         "edges = np.linspace(0, 1, 11)\ntotal = 0.0\n"
         "for lo, hi in zip(edges[:-1], edges[1:]):\n    b = (conf > lo) & (conf <= hi)\n"
         "    if b.any():\n        total += b.mean() * abs(right[b].mean() - conf[b].mean())\n"
         "return float(total)"),
        ("one bin: |accuracy - mean confidence| over everything",
         "probs, y_true = np.asarray(probs), np.asarray(y_true)\n"
         "return float(abs((probs.argmax(1) == y_true).mean() - probs.max(1).mean()))"),
    ],
    2: [
        ("training.predict, then scikit-learn",
         "from datasets import Dataset\n"
         "y_pred = training.predict(model, training.tokenize(Dataset.from_dict({'text': list(texts)}), tokenizer, "
         "max_length=MAX_LENGTH, label_field=None), tokenizer).argmax(1)\n" + _SCORES),
        ("a transformers pipeline",
         "from transformers import pipeline\n"
         "model.eval()\n"
         "run = pipeline('text-classification', model=model, tokenizer=tokenizer, device=model.device)\n"
         "y_pred = np.array([model.config.label2id[out['label']] for out in run(list(texts), truncation=True)])\n" + _SCORES),
        ("section 4's predict_in_order", "y_pred = predict_in_order(list(texts)).argmax(1)\n" + _SCORES),
        ("dropout left on (no model.eval())", _BY_HAND + _SCORES),
        ("all-zeros predictions", "y_pred = np.zeros(len(texts), dtype=int)\n" + _SCORES),
        ("the lesson's three classes, whatever the model",
         "model.eval()\n" + _BY_HAND + _SCORES.replace("range(len(model.config.id2label))", "range(len(labels))")),
        ("the validation result, copied", "return val_result"),
        ("the last, shorter batch dropped",
         "model.eval()\n" + _BY_HAND.replace("range(0, len(texts), batch_size)", "range(0, len(texts) - batch_size + 1, batch_size)")
         + "y_true = np.asarray(y_true)[:len(y_pred)]\n" + _SCORES),
    ],
    3: [
        ("the target as threshold", ["return TARGET", _COVER]),
        ("the largest confidence", ["return float(probs.max(axis=1).max())", _COVER]),
        ("the smallest confidence (keep everything)", ["return float(probs.max(axis=1).min())", _COVER]),
        ("scan down from the top, stop at the first miss",
         ["confidence = probs.max(axis=1)\nright = probs.argmax(axis=1) == y_true\nbest = None\n"
          "for t in np.unique(confidence)[::-1]:\n    if right[confidence >= t].mean() < target:\n        break\n    best = float(t)\n"
          "return best", _COVER]),
        ("the threshold chosen on the test set",
         [_THRESHOLD, "threshold = choose_threshold(probs_scaled, y_test, TARGET)\n" + _COVER]),
        ("the lesson's validation threshold, whatever the input",
         [_THRESHOLD.replace("probs.max(axis=1)", "probs_val.max(axis=1)").replace("probs.argmax(axis=1) == y_true",
                                                                                    "probs_val.argmax(axis=1) == y_val")
          .replace("target:", "TARGET:"), _COVER]),
        ("every test message kept",
         [_THRESHOLD, "coverage = 1.0\nkept_accuracy = float((pred_test == y_test).mean())"]),
    ],
}
