"""Lazy answers to lesson 08's exercises; their checks must refuse each (tests/shortcut_suite.py)."""

_ALARMS = "\n\nalarm_high = collapsed(hist_high, pred_high, 3)\nalarm_sane = collapsed(hist_sane, pred_sane, 3)"


def _alarm(body: str) -> str:
    return "def collapsed(history, pred, num_classes):\n" + body + _ALARMS


_NEAR = '    near_chance = abs(np.mean(history["loss"][-10:]) - math.log(num_classes)) < 0.1\n'
_ONE = '    one_class = np.bincount(pred, minlength=num_classes).max() / len(pred) > 0.9\n'

_COPY = "copy.deepcopy(model.state_dict())"
_HOOK = '''
def __init__(self, patience):
    self.patience, self.best_score, self.best_state, self.epochs_without_gain = patience, -math.inf, None, 0

def step(self, score, model):
    if score {op} self.best_score:
        self.best_score, self.best_state = score, {state}
        {reset}
    else:
        self.epochs_without_gain += 1
    return self.epochs_without_gain >= self.patience

def restore(self, model):
    model.load_state_dict(self.best_state)
'''


def _hook(op=">", state=_COPY, reset="self.epochs_without_gain = 0"):
    return _HOOK.format(op=op, state=state, reset=reset)


_WEIGHTS = '''counts = np.bincount(np.asarray(labels), minlength=num_classes)
return (len(labels) / (num_classes * counts)).tolist()'''
_LOSS = '''per_example = -torch.log_softmax(logits, dim=-1).gather(1, labels[:, None]).squeeze(1)
w = weights[labels]
return (w * per_example).sum() / w.sum()'''

SHORTCUTS = {
    1: [
        ("always True", "def collapsed(history, pred, num_classes):\n    return True\n\n\nalarm_high, alarm_sane = True, False"),
        ("always False", "def collapsed(history, pred, num_classes):\n    return False\n\n\nalarm_high, alarm_sane = True, False"),
        ("the loss condition only", _alarm(_NEAR + "    return bool(near_chance)")),
        ("the one-class condition only", _alarm(_ONE + "    return bool(one_class)")),
        ("ln 3 whatever the number of classes",
         _alarm('    near_chance = abs(np.mean(history["loss"][-10:]) - math.log(3)) < 0.1\n' + _ONE
                + "    return bool(near_chance and one_class)")),
        ("the last step's loss instead of the mean of the last 10",
         _alarm('    near_chance = abs(history["loss"][-1] - math.log(num_classes)) < 0.1\n' + _ONE
                + "    return bool(near_chance and one_class)")),
        ("the mean loss of the whole run",
         _alarm('    near_chance = abs(np.mean(history["loss"]) - math.log(num_classes)) < 0.1\n' + _ONE
                + "    return bool(near_chance and one_class)")),
        ("at least 90 % in one class instead of more than 90 %",
         _alarm(_NEAR + _ONE.replace("> 0.9", ">= 0.9") + "    return bool(near_chance and one_class)")),
        ("recognise section 1's collapsed run by identity",
         _alarm("    return history is hist_high")),
    ],
    2: [
        ("keeps the live state_dict, not a copy", _hook(state="model.state_dict()")),
        ("the count of epochs without improvement is never reset", _hook(reset="pass")),
        ("a tie counts as an improvement", _hook(op=">=")),
        ("never stops, restores nothing",
         "def __init__(self, patience):\n    pass\n\ndef step(self, score, model):\n    return False\n\n"
         "def restore(self, model):\n    pass"),
        ("transformers' EarlyStoppingCallback does the counting", '''
def __init__(self, patience):
    from types import SimpleNamespace
    from transformers import EarlyStoppingCallback
    self.callback = EarlyStoppingCallback(early_stopping_patience=patience)
    self.args, self.state, self.best_state = SimpleNamespace(greater_is_better=True), SimpleNamespace(best_metric=None), None

def step(self, score, model):
    self.callback.check_metric_value(self.args, self.state, None, score)
    if self.callback.early_stopping_patience_counter == 0:
        self.state.best_metric, self.best_state = score, copy.deepcopy(model.state_dict())
    return self.callback.early_stopping_patience_counter >= self.callback.early_stopping_patience

def restore(self, model):
    model.load_state_dict(self.best_state)
'''),
    ],
    3: [
        ("the package's balanced_class_weights",
         ["return diagnostics.balanced_class_weights(labels, num_classes)", _LOSS]),
        ("scikit-learn's compute_class_weight",
         ["from sklearn.utils.class_weight import compute_class_weight\n"
          "return compute_class_weight('balanced', classes=np.arange(num_classes), y=np.asarray(labels)).tolist()", _LOSS]),
        ("section 4's weights, copied", ["return list(weights)", _LOSS]),
        ("K fixed at 3", [_WEIGHTS.replace("num_classes * counts", "3 * counts"), _LOSS]),
        ("F.cross_entropy with weight=",
         [_WEIGHTS, "return torch.nn.functional.cross_entropy(logits, labels, weight=weights)"]),
        ("nn.CrossEntropyLoss through an alias",
         [_WEIGHTS, "from torch.nn import CrossEntropyLoss as Loss\nreturn Loss(weight=weights)(logits, labels)"]),
        ("F.nll_loss on log_softmax",
         [_WEIGHTS, "return torch.nn.functional.nll_loss(torch.log_softmax(logits, -1), labels, weight=weights)"]),
        ("divided by the number of examples, not the sum of the weights",
         [_WEIGHTS, _LOSS.replace("/ w.sum()", "/ len(labels)")]),
        ("the weights ignored", [_WEIGHTS, _LOSS.replace("(w * per_example).sum() / w.sum()", "per_example.mean()")]),
    ],
}
