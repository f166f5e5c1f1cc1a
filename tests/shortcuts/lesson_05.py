"""Lazy answers to lesson 05's exercises; their checks must refuse each (tests/shortcut_suite.py)."""

# Exercise 1 has two answer cells: the head (token_head_logits), then the loss (token_loss).
HEAD = '''hidden = encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                 token_type_ids=batch["token_type_ids"]).last_hidden_state
return hidden @ weight.T + bias'''
LOSS = '''keep = labels != -100
logprobs = torch.log_softmax(logits[keep], dim=-1)
return -logprobs[torch.arange(len(logprobs)), labels[keep]].mean()'''
INPUTS = '{k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")}'

# Exercise 3 has two answer cells: spans, then entity_f1.
SPANS = '''found, start, kind = set(), None, None
for i, tag in enumerate(list(tags) + ["O"]):
    if kind is not None and tag != f"I-{kind}":
        found.add((kind, start, i))
        kind = None
    if tag.startswith("B-"):
        kind, start = tag[2:], i
return found'''
F1 = '''correct = sum(len(spans(g) & spans(p)) for g, p in zip(gold_sequences, pred_sequences))
n_gold = sum(len(spans(g)) for g in gold_sequences)
n_pred = sum(len(spans(p)) for p in pred_sequences)
if correct == 0:
    return 0.0
precision, recall = correct / n_pred, correct / n_gold
return 2 * precision * recall / (precision + recall)'''

SHORTCUTS = {
    1: [
        ("the fine-tuned token_model's own logits (weight and bias unused)",
         [f"return token_model(**{INPUTS}).logits", LOSS]),
        ("BertForTokenClassification's forward through the class",
         [f"return type(token_model).forward(token_model, **{INPUTS}).logits", LOSS]),
        ("a new token classifier from heads.classifier, given the encoder and weights",
         ['''model = heads.classifier([f"tag{i}" for i in range(len(bias))], task="token").to(device).eval()
model.bert = encoder
with torch.no_grad():
    model.classifier.weight.copy_(weight)
    model.classifier.bias.copy_(bias)
return model(**''' + INPUTS + ").logits", LOSS]),
        ("the lesson's token_model.bert instead of the encoder given",
         ['''hidden = token_model.bert(**''' + INPUTS + ''').last_hidden_state
return hidden @ weight.T + bias''', LOSS]),
        ("the loss by F.cross_entropy, whose default ignore_index is -100",
         [HEAD, "import torch.nn.functional as F\nreturn F.cross_entropy(logits.flatten(0, 1), labels.flatten())"]),
        ("the loss by torch.nn.CrossEntropyLoss",
         [HEAD, "return torch.nn.CrossEntropyLoss()(logits.flatten(0, 1), labels.flatten())"]),
        ("the loss by F.nll_loss on log_softmax",
         [HEAD, "import torch.nn.functional as F\n"
                "return F.nll_loss(torch.log_softmax(logits, dim=-1).flatten(0, 1), labels.flatten())"]),
    ],
    2: [
        ("every piece gets its word's tag (the package's convention)",
         "return [-100 if w is None else word_tags[w] for w in word_ids]"),
        ("the package's data.spans_to_bio on word positions",
         '''entities_ = [{"start": s, "end": e, "label": label} for label, s, e in evaluation.bio_spans(list(word_tags), tag_names)]
offsets = [(0, 0) if w is None else (w, w + 1) for w in word_ids]
return data.spans_to_bio(entities_, offsets, entity_types)'''),
        ("the first training message's package labels, copied",
         'return list(enc_ents["train"][0]["labels"])'),
        ("every piece ignored", "return [-100] * len(word_ids)"),
        ("one label per word, [CLS] and [SEP] around", "return [-100] + list(word_tags) + [-100]"),
    ],
    3: [
        ("the package's bio_spans and span_scores",
         ["return set(evaluation.bio_spans(tags))",
          "return evaluation.span_scores([evaluation.bio_spans(g) for g in gold_sequences], "
          "[evaluation.bio_spans(p) for p in pred_sequences])['f1']"]),
        ("the lesson's F1 hard-coded (3 of 4 found, 5 predicted)",
         ["return set(evaluation.bio_spans(tags))", "return 2 / 3"]),
        ("an entity matched by its B- tag only (ends ignored)",
         ['return {(tag[2:], i) for i, tag in enumerate(tags) if tag.startswith("B-")}', F1]),
        ("token-level micro F1 from scikit-learn",
         [SPANS, '''from sklearn.metrics import f1_score
gold = [t for seq in gold_sequences for t in seq]
pred = [t for seq in pred_sequences for t in seq]
return f1_score(gold, pred, average="micro")''']),
        ("precision instead of F1",
         [SPANS, '''correct = sum(len(spans(g) & spans(p)) for g, p in zip(gold_sequences, pred_sequences))
return correct / max(1, sum(len(spans(p)) for p in pred_sequences))''']),
    ],
}
