"""Lazy answers to lesson 09's exercises; their checks must refuse each (tests/shortcut_suite.py)."""

_BOOT = '''
y_true, pred_a, pred_b = np.asarray(y_true), np.asarray(pred_a), np.asarray(pred_b)
rng = np.random.default_rng({seed})
diffs = []
for _ in range(n_boot):
    rows = {rows}
    other = {other}
    diffs.append(macro_f1(y_true[rows], pred_b[rows]) - macro_f1(y_true[other], pred_a[other]))
low, high = np.percentile(diffs, [{low}, {high}])
return float(low), float(high)
'''


def _boot(seed="seed", rows="rng.integers(0, len(y_true), len(y_true))", other="rows", low=2.5, high=97.5):
    return _BOOT.format(seed=seed, rows=rows, other=other, low=low, high=high)


_DECIDE = 'return "LoRA" if interval[0] > 0 else "frozen encoder"'
_PROBE = '''probe_pilot = diagnostics.embedding_logreg(emb["train"][rows], y["train"][rows])
pred_frozen_pilot = probe_pilot.predict(emb["validation"])
'''
_TRAIN = '''history_pilot = training.train(model_pilot, pilot, tokenizer, epochs={epochs}, batch_size=8, lr=LR["lora"], seed=0,
                               device=device, group_by_length=True, progress=False)
'''
_CHEAP = _PROBE + '''history_pilot = {"loss": [1.0] * 48}
pred_lora_pilot = np.arange(len(y["validation"])) % 3
'''

_COST = '''
gain = table.loc[name, "{col}"] - table.loc[baseline, "{col}"]
extra = table.loc[name, "training seconds (this CPU)"]{minus}
return float(extra / {divide}) if gain > 0 else {worse}
'''


def _cost(col="validation macro-F1", minus=' - table.loc[baseline, "training seconds (this CPU)"]', divide="(gain / 0.01)",
          worse="np.inf"):
    return _COST.format(col=col, minus=minus, divide=divide, worse=worse)


SHORTCUTS = {
    1: [
        ("scipy's bootstrap, paired, percentile method",
         "from scipy import stats\n"
         "result = stats.bootstrap((np.asarray(y_true), np.asarray(pred_a), np.asarray(pred_b)),\n"
         "                         lambda t, a, b: macro_f1(t, b) - macro_f1(t, a), paired=True, vectorized=False,\n"
         "                         n_resamples=n_boot, method='percentile', rng=np.random.default_rng(seed))\n"
         "return float(result.confidence_interval.low), float(result.confidence_interval.high)"),
        ("unpaired: each strategy on its own resample", _boot(other="rng.integers(0, len(y_true), len(y_true))")),
        ("the seed ignored", _boot(seed="0")),
        ("a 90 % interval", _boot(low=5, high=95)),
        ("resampled without replacement", _boot(rows="rng.permutation(len(y_true))")),
        ("the point difference plus or minus 0.05",
         "d = macro_f1(y_true, pred_b) - macro_f1(y_true, pred_a)\nreturn d - 0.05, d + 0.05"),
    ],
    2: [
        ("all-zeros predictions from a trained model",
         [_DECIDE, _PROBE.split("\n")[0] + "\n" + _TRAIN.format(epochs=4)
          + 'pred_frozen_pilot = np.zeros(len(y["validation"]), dtype=int)\n'
            'pred_lora_pilot = np.zeros(len(y["validation"]), dtype=int)']),
        ("the frozen encoder fitted on the test split",
         [_DECIDE, _CHEAP.replace('embedding_logreg(emb["train"][rows], y["train"][rows])',
                                  'embedding_logreg(emb["test"], y["test"])')]),
        ("the frozen encoder fitted on the validation split itself",
         [_DECIDE, _CHEAP.replace('embedding_logreg(emb["train"][rows], y["train"][rows])',
                                  'embedding_logreg(emb["validation"], y["validation"])')]),
        ("section 1's frozen encoder, copied",
         [_DECIDE, _CHEAP.replace('probe_pilot = diagnostics.embedding_logreg(emb["train"][rows], y["train"][rows])',
                                  "probe_pilot = probe")]),
        ("section 1's LoRA model and predictions, copied",
         [_DECIDE, _PROBE + '''model_pilot = finetuned["LoRA"]
history_pilot = {"loss": [1.0] * 48}
pred_lora_pilot = val_pred["LoRA"]''']),
        ("LoRA never trained",
         [_DECIDE, _PROBE + '''history_pilot = {"loss": [1.0] * 48}
pred_lora_pilot = np.asarray(val_pred["LoRA"])''']),
        ("LoRA trained for one epoch only",
         [_DECIDE, _PROBE + _TRAIN.format(epochs=1)
          + 'pred_lora_pilot = training.predict(model_pilot, tok["validation"], tokenizer).argmax(-1)']),
        ("decide on the interval's upper end", ['return "LoRA" if interval[1] > 0 else "frozen encoder"', _CHEAP]),
        ("decide on the interval's midpoint", ['return "LoRA" if sum(interval) > 0 else "frozen encoder"', _CHEAP]),
        ("LoRA whenever the lower end is not below 0", ['return "LoRA" if interval[0] >= 0 else "frozen encoder"', _CHEAP]),
    ],
    3: [
        ("a constant", "return 10.0"),
        ("the test column instead of validation", _cost(col="test macro-F1")),
        ("the baseline's seconds not subtracted", _cost(minus="")),
        ("the gain not in hundredths", _cost(divide="gain")),
        ("no np.inf when there is no gain", _cost(worse="float(extra / (gain / 0.01)) if gain != 0 else 0.0")),
        ("section 1's table instead of the argument",
         'gain = f1_val[name] - f1_val[baseline]\nreturn float((secs[name] - secs[baseline]) / (gain / 0.01)) if gain > 0 else np.inf'),
    ],
}
