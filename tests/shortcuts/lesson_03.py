"""Lazy answers to lesson 03's exercises; their checks must refuse each (tests/shortcut_suite.py)."""

_STEP = """
bitfit.train()
bitfit(**small_batch).loss.backward()
ex_opt.step()
"""
_BITFIT_FLAGS = """
for name, param in bitfit.named_parameters():
    param.requires_grad = name.endswith("bias") or name.startswith("classifier.")
"""

_WRAP = """
for layer in ex_lora.bert.encoder.layer:
    attention = layer.attention.self
    attention.query = LoRALinear(attention.query, r=8, alpha=16)
    attention.value = LoRALinear(attention.value, r=8, alpha=16)
"""

SHORTCUTS = {
    1: [
        ("train everything (full fine-tuning, one step)",
         "ex_opt = torch.optim.AdamW(bitfit.parameters(), lr=1e-3)" + _STEP),
        ("the package's head_only strategy, then a step",
         "freezing.apply_strategy(bitfit, 'head_only')\n"
         "ex_opt = torch.optim.AdamW([p for p in bitfit.parameters() if p.requires_grad], lr=1e-3)" + _STEP),
        ("the flags and the optimizer, but no step",
         _BITFIT_FLAGS + "ex_opt = torch.optim.AdamW([p for p in bitfit.parameters() if p.requires_grad], lr=1e-3)"),
        ("the flags right, but AdamW given every parameter",
         _BITFIT_FLAGS + "ex_opt = torch.optim.AdamW(bitfit.parameters(), lr=1e-3)" + _STEP),
        ("the encoder's biases only, the head's weight frozen",
         "for name, param in bitfit.named_parameters():\n    param.requires_grad = name.endswith('bias')\n"
         "ex_opt = torch.optim.AdamW([p for p in bitfit.parameters() if p.requires_grad], lr=1e-3)" + _STEP),
        ("two steps instead of one",
         _BITFIT_FLAGS + "ex_opt = torch.optim.AdamW([p for p in bitfit.parameters() if p.requires_grad], lr=1e-3)"
         + _STEP + _STEP.replace("bitfit.train()\n", "ex_opt.zero_grad()\n")),
        ("the biases nudged by hand, an optimizer that never stepped",
         _BITFIT_FLAGS + "ex_opt = torch.optim.AdamW([p for p in bitfit.parameters() if p.requires_grad], lr=1e-3)\n"
         "with torch.no_grad():\n    for p in bitfit.parameters():\n        if p.requires_grad:\n            p.add_(1e-3)"),
    ],
    2: [
        ("the package's lora strategy (peft)",
         "ex_lora = freezing.apply_strategy(ex_lora, 'lora', r=8, alpha=16, target_modules=('query', 'value'))"),
        ("freezing.apply_lora without dropout",
         "ex_lora = freezing.apply_lora(ex_lora, r=8, alpha=16, dropout=0.0, target_modules=('query', 'value'))"),
        ("peft.get_peft_model directly",
         "import peft\n"
         "ex_lora = peft.get_peft_model(ex_lora, peft.LoraConfig(r=8, lora_alpha=16, target_modules=['query', 'value'], "
         "task_type='SEQ_CLS'))"),
        ("the adapters of section 2 (`ours`), reused",
         "for param in ex_lora.parameters():\n    param.requires_grad = False\n"
         "for i, layer in enumerate(ex_lora.bert.encoder.layer):\n"
         "    layer.attention.self.query, layer.attention.self.value = ours[i, 'query'], ours[i, 'value']\n"
         "for param in ex_lora.classifier.parameters():\n    param.requires_grad = True"),
        ("wrapped, but nothing frozen", _WRAP),
        ("query, key and value wrapped",
         "for param in ex_lora.parameters():\n    param.requires_grad = False\n" + _WRAP
         + "    attention.key = LoRALinear(attention.key, r=8, alpha=16)\n"
         "for param in ex_lora.classifier.parameters():\n    param.requires_grad = True"),
        ("rank 4 instead of 8",
         "for param in ex_lora.parameters():\n    param.requires_grad = False\n" + _WRAP.replace("r=8", "r=4")
         + "for param in ex_lora.classifier.parameters():\n    param.requires_grad = True"),
    ],
    3: [
        ("peft's count on a BERT built with these numbers",
         "from transformers import BertConfig, BertForSequenceClassification\n"
         "tiny = BertForSequenceClassification(BertConfig(vocab_size=64, hidden_size=hidden, num_hidden_layers=n_layers, "
         "num_attention_heads=2, intermediate_size=hidden, num_labels=n_classes))\n"
         "targets = ('query', 'value', 'key', 'attention.output.dense')[:n_targets]\n"
         "return freezing.apply_lora(tiny, r=r, target_modules=targets).get_nb_trainable_parameters()[0]"),
        ("the lesson's classifier, counted with models.count_parameters",
         "model = freezing.apply_lora(heads.classifier(label_names), r=r, target_modules=('query', 'value'))\n"
         "return models.count_parameters(model, trainable_only=True)"),
        ("the lesson's number, hard-coded (r = 4 on MiniLM)", "return 38019"),
        ("the adapters without the head", "return n_layers * n_targets * r * 2 * hidden"),
        ("the full matrices instead of the adapters", "return n_layers * n_targets * hidden * hidden + hidden * n_classes + n_classes"),
        ("A only, not B", "return n_layers * n_targets * r * hidden + hidden * n_classes + n_classes"),
        ("always two targets", "return n_layers * 2 * r * 2 * hidden + hidden * n_classes + n_classes"),
    ],
}
