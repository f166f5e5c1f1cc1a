"""Lazy answers to lesson 02's exercises; each check must refuse them all (tests/shortcut_suite.py)."""

FREEZE = """\
head = set(heads.new_parameter_names(model))
for name, p in model.named_parameters():
    p.requires_grad = name in head"""
STEP = """\
model.train()
inputs = {k: v for k, v in batch.items() if k != "labels"}
F.cross_entropy(model(**inputs).logits, batch["labels"]).backward()
optimizer.step()
optimizer.zero_grad(set_to_none=True)"""


def groups(head_lr: str, encoder_lr: str, decay: str = "weight_decay if p.ndim >= 2 else 0.0",
           trainable: str = "p.requires_grad") -> str:
    """An AdamW with one group per parameter, from expressions for each group's settings."""
    return ("head = set(heads.new_parameter_names(model))\n"
            "return torch.optim.AdamW([{'params': [p], 'lr': " + head_lr + " if n in head else " + encoder_lr + ", "
            "'weight_decay': " + decay + "} for n, p in model.named_parameters() if " + trainable + "], lr=lr)")


SHORTCUTS = {
    1: [
        ("the package freezes the encoder",
         "from finetune_utils import freezing\n"
         "freezing.freeze_encoder(model)\n"
         "optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)\n" + STEP),
        ("only the head in the optimizer, nothing frozen",
         "optimizer = torch.optim.AdamW(model.classifier.parameters(), lr=lr)\n" + STEP),
        ("frozen, but no step taken", FREEZE),
        ("the head nudged by hand, no gradient",
         FREEZE + "\nwith torch.no_grad():\n    model.classifier.weight -= lr\n    model.classifier.bias += lr"),
        ("a plain gradient step (SGD) instead of AdamW",
         FREEZE + "\noptimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr)\n" + STEP),
        ("two steps for good measure",
         FREEZE + "\noptimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)\n"
         + STEP + "\n" + STEP),
    ],
    2: [
        ("the lesson's numbers hard-coded",
         groups("2e-4", "2e-5", decay="0.01 if p.ndim >= 2 else 0.0")),
        ("one learning rate for everything (the package's weight-decay groups)",
         "return torch.optim.AdamW(training.weight_decay_groups(model.parameters(), weight_decay), lr=lr)"),
        ("the package's optimizer_and_schedule",
         "return training.optimizer_and_schedule(model, lr, weight_decay, 0.0, 10)[0]"),
        ("everything at head_factor × lr", groups("lr * head_factor", "lr * head_factor")),
        ("the factor on the encoder instead of the head", groups("lr", "lr * head_factor")),
        ("frozen parameters put in the groups too", groups("lr * head_factor", "lr", trainable="True")),
        ("weight decay on every tensor", groups("lr * head_factor", "lr", decay="weight_decay")),
    ],
    3: [
        ("transformers' scheduler on a dummy optimizer",
         "probe = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=peak)\n"
         "sched = get_linear_schedule_with_warmup(probe, warmup, total)\n"
         "for _ in range(step):\n    probe.step()\n    sched.step()\n"
         "return sched.get_last_lr()[0]"),
        ("transformers' get_scheduler('linear')",
         "from transformers import get_scheduler\n"
         "probe = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=peak)\n"
         "sched = get_scheduler('linear', probe, num_warmup_steps=warmup, num_training_steps=total)\n"
         "for _ in range(step):\n    probe.step()\n    sched.step()\n"
         "return sched.get_last_lr()[0]"),
        ("the rule inside section 2's scheduler, called directly",
         "return peak * scheduler.lr_lambdas[0].func(step, num_warmup_steps=warmup, num_training_steps=total)"),
        ("PyTorch's LinearLR and SequentialLR",
         "probe = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=peak)\n"
         "up = torch.optim.lr_scheduler.LinearLR(probe, 1e-9, 1.0, total_iters=max(warmup, 1))\n"
         "down = torch.optim.lr_scheduler.LinearLR(probe, 1.0, 0.0, total_iters=total - warmup)\n"
         "sched = torch.optim.lr_scheduler.SequentialLR(probe, [up, down], milestones=[warmup])\n"
         "for _ in range(step):\n    probe.step()\n    sched.step()\n"
         "return sched.get_last_lr()[0]"),
        ("the two values of the lesson, hard-coded", "return {4: 2e-05, 55: 2.5e-05}.get(step, 0.0)"),
        ("section 2's recorded learning rates",
         "return step_lr[min(step, len(step_lr)) - 1] if step else 0.0"),
        ("decay measured from step 0", "return peak * step / warmup if step < warmup else peak * (total - step) / total"),
    ],
}
