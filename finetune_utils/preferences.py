"""Learning from preferences: pairs of replies, a reward model, sampling, best-of-n and DPO (lesson 10).

A preference pair is a prompt x with a *chosen* reply y_w and a *rejected* one y_l. Two ways to learn from
such pairs, both here:

- **A reward model** r(x, y): the packaged encoder with a scalar head, trained with the Bradley-Terry loss
  −log σ(r(x, y_w) − r(x, y_l)) (:func:`bradley_terry_loss`, :func:`train_reward_model`); it then scores
  free text, e.g. to pick the best of n sampled replies (:func:`sample_replies`, :func:`best_of_n`).
- **DPO** (direct preference optimisation) trains the chat model itself, with no reward model and no
  sampling: with per-sequence log-probabilities of the response tokens under the policy π and a frozen
  reference π_ref (:func:`sequence_logps`; lesson 07's loss mask), the loss is
  −log σ(β[(log π(y_w|x) − log π_ref(y_w|x)) − (log π(y_l|x) − log π_ref(y_l|x))]) (:func:`dpo_loss`).
  With LoRA the reference is the same model with its adapter disabled (:func:`train_dpo`).

The data set is ``data/support_preferences`` (:func:`load_pairs`).
"""

from __future__ import annotations

import json
import math

import numpy as np

from . import env, models, sft

KINDS = ("curt", "wrong_detail", "wrong_format", "padded", "over_promising")
FIELDS = ("id", "topic", "kind", "prompt", "chosen", "rejected")
NAME = "support_preferences"


# --------------------------------------------------------------------------- data


def load_pairs(split: str | None = None, name: str = NAME):
    """The preference pairs: a dict split -> list of rows (``split=None``), or one split's list. Taught in lesson 10.

    Each row has ``id``, ``topic``, ``kind`` (why the rejected reply is worse, one of :data:`KINDS`),
    ``prompt`` (the customer's message), ``chosen`` and ``rejected`` (two replies). Rows are checked:
    a missing field, an unknown kind, or identical replies raise ``ValueError`` naming the line.
    """
    from . import data

    splits = data.SPLITS if split is None else (split,)
    out = {}
    for s in splits:
        if s not in data.SPLITS:
            raise ValueError(f"split must be one of {data.SPLITS}, got {s!r}")
        path = env.data_dir() / name / f"{s}.jsonl"
        rows = []
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            row = json.loads(line)
            missing = [f for f in FIELDS if not isinstance(row.get(f), str) or not row.get(f).strip()]
            if missing:
                raise ValueError(f"{path}: line {lineno}: missing or empty fields {missing}")
            if row["kind"] not in KINDS:
                raise ValueError(f"{path}: line {lineno}: unknown kind {row['kind']!r}; expected one of {KINDS}")
            if row["chosen"] == row["rejected"]:
                raise ValueError(f"{path}: line {lineno}: chosen and rejected replies are identical")
            rows.append(row)
        out[s] = rows
    return out if split is None else out[split]


def chat(prompt: str, reply: str | None = None) -> list[dict]:
    """The prompt as a one-turn chat (no system message: the template's default applies), with the reply if given.

    Taught in lesson 10."""
    messages = [{"role": "user", "content": prompt}]
    return messages + ([{"role": "assistant", "content": reply}] if reply is not None else [])


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval for a proportion (95 % by default): better than ±z·√(p(1−p)/n) near 0 or 1.

    Taught in lesson 10."""
    if n <= 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n and n > 0, got {successes} of {n}")
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def preference_accuracy(score_chosen, score_rejected) -> float:
    """Share of pairs whose chosen reply scores higher (a tie counts half). Taught in lesson 10."""
    a, b = np.asarray(score_chosen, dtype=float), np.asarray(score_rejected, dtype=float)
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"need two equally long, non-empty score arrays, got {a.shape} and {b.shape}")
    return float(np.mean((a > b) + 0.5 * (a == b)))


def longer_reply_scores(rows) -> tuple[np.ndarray, np.ndarray]:
    """The "prefer the longer reply" baseline as scores: each reply's number of words. Taught in lesson 10."""
    return (np.array([len(r["chosen"].split()) for r in rows], dtype=float),
            np.array([len(r["rejected"].split()) for r in rows], dtype=float))


# --------------------------------------------------------------------------- the reward model


def bradley_terry_loss(r_chosen, r_rejected):
    """Mean of −log σ(r_chosen − r_rejected): the Bradley–Terry negative log-likelihood of the preferences.

    Taught in lesson 10."""
    import torch.nn.functional as F

    if r_chosen.shape != r_rejected.shape:
        raise ValueError(f"need one chosen and one rejected score per pair, got shapes {tuple(r_chosen.shape)} and {tuple(r_rejected.shape)}")
    return -F.logsigmoid(r_chosen - r_rejected).mean()


def reward_model(name_or_path=None, seed: int = 0):
    """The pre-trained encoder with a new scalar head (one output, no activation): r(x, y). Returns (model, tokenizer).

    Taught in lesson 10."""
    from . import heads

    source, _ = models.resolve(name_or_path, models.ENCODER, models.encoder_path)
    env.seed_everything(seed)
    with models.hub_errors(source), heads.quiet_transformers():
        model = heads.model_class("pair").from_pretrained(str(source), num_labels=1)
    return model, models.load_encoder_tokenizer(name_or_path)


def _encode(tokenizer, prompts, replies, max_length):
    return tokenizer(list(prompts), list(replies), truncation="only_first", max_length=max_length, padding=True, return_tensors="pt")


def reward_scores(model, tokenizer, prompts, replies, batch_size: int = 32, max_length: int = 160) -> np.ndarray:
    """r(x, y) for each (prompt, reply), the two texts encoded as a pair ([CLS] x [SEP] y [SEP]).

    Taught in lesson 10."""
    import torch

    prompts, replies = list(prompts), list(replies)
    if len(prompts) != len(replies):
        raise ValueError(f"need one prompt per reply, got {len(prompts)} and {len(replies)}")
    model.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(prompts), batch_size):
            enc = _encode(tokenizer, prompts[start:start + batch_size], replies[start:start + batch_size], max_length)
            out.append(model(**enc).logits[:, 0].float())
    return torch.cat(out).numpy() if out else np.zeros(0)


def train_reward_model(model, tokenizer, rows, loss_fn=bradley_terry_loss, *, epochs: float = 1, lr: float = 5e-5,
                       batch_size: int = 16, max_length: int = 160, seed: int = 0) -> dict:
    """Train ``model`` on preference rows with ``loss_fn(r_chosen, r_rejected)``; AdamW, a constant rate.

    Each step scores the batch's chosen and rejected replies in one forward pass. Returns ``loss`` and
    ``accuracy`` (share of the batch's pairs ranked right, before the step) per step.
    Taught in lesson 10.
    """
    import random

    import torch

    rows = list(rows)
    if not rows:
        raise ValueError("no preference pairs to train on")
    env.seed_everything(seed)
    order = []
    for epoch in range(math.ceil(epochs)):
        idx = list(range(len(rows)))
        random.Random(seed + epoch).shuffle(idx)
        order += [idx[i:i + batch_size] for i in range(0, len(idx), batch_size)]
    order = order[: max(1, round(epochs * len(rows) / batch_size))]
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    history = {"loss": [], "accuracy": []}
    model.train()
    for batch in order:
        b = [rows[i] for i in batch]
        prompts = [r["prompt"] for r in b]
        enc = _encode(tokenizer, prompts + prompts, [r["chosen"] for r in b] + [r["rejected"] for r in b], max_length)
        scores = model(**enc).logits[:, 0]
        chosen, rejected = scores[: len(b)], scores[len(b):]
        loss = loss_fn(chosen, rejected)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        history["loss"].append(float(loss.detach()))
        history["accuracy"].append(float((chosen > rejected).float().mean()))
    model.eval()
    return history


# --------------------------------------------------------------------------- sampling and best-of-n


def processed_probs(logits, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None):
    """Next-token probabilities after transformers' own logits processors (temperature, then top-k, then top-p).

    The order is the one ``generate(do_sample=True)`` uses. ``logits``: (vocab,) or (batch, vocab).
    Taught in lesson 10.
    """
    import torch
    from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    scores = logits.float().clone()
    squeeze = scores.dim() == 1
    scores = scores.unsqueeze(0) if squeeze else scores
    steps = LogitsProcessorList()
    if temperature != 1.0:
        steps.append(TemperatureLogitsWarper(temperature))
    if top_k is not None:
        steps.append(TopKLogitsWarper(top_k))
    if top_p is not None and top_p < 1.0:
        steps.append(TopPLogitsWarper(top_p))
    probs = torch.softmax(steps(torch.zeros((scores.shape[0], 1), dtype=torch.long), scores), dim=-1)
    return probs[0] if squeeze else probs


def sample_replies(model, tokenizer, conversations, n: int = 4, *, temperature: float = 1.0, top_p: float | None = None,
                   top_k: int | None = None, max_new_tokens: int = 48, seed: int = 0, batch_size: int = 16) -> list[list[str]]:
    """n sampled replies per chat (``do_sample=True``), reproducible with ``seed``. Returns one list of n per chat.

    Taught in lesson 10."""
    import torch

    from .prompting import chat_prompt, end_of_turn_id, pad_token_id

    prompts = [chat_prompt(tokenizer, c) for c in conversations]
    flat = [p for p in prompts for _ in range(n)]
    pad_id = pad_token_id(tokenizer)
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    replies = []
    model.eval()
    try:
        torch.manual_seed(seed)
        for start in range(0, len(flat), batch_size):
            batch = tokenizer(flat[start:start + batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
            with torch.inference_mode():
                output = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=True, temperature=temperature,
                                        top_p=top_p, top_k=top_k if top_k is not None else 0, pad_token_id=pad_id,
                                        eos_token_id=end_of_turn_id(tokenizer))
            new = output[:, batch["input_ids"].shape[1]:]
            replies.extend(t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True))
    finally:
        tokenizer.padding_side = side
    return [replies[i * n:(i + 1) * n] for i in range(len(prompts))]


def best_of_n(candidates, scores):
    """For each prompt, the candidate with the highest score (the first on a tie). Returns (replies, indices).

    Taught in lesson 10."""
    picked, indices = [], []
    for cands, s in zip(candidates, scores):
        s = np.asarray(s, dtype=float)
        if len(cands) != len(s) or not len(cands):
            raise ValueError(f"need one score per candidate, got {len(cands)} candidates and {len(s)} scores")
        i = int(np.argmax(s))
        picked.append(cands[i])
        indices.append(i)
    return picked, indices


# --------------------------------------------------------------------------- DPO


def pair_examples(tokenizer, rows, max_length: int = 192) -> list[tuple[dict, dict]]:
    """(chosen, rejected) SFT examples per row (sft.build_example: labels -100 except on the reply and its end).

    Taught in lesson 10."""
    return [(sft.build_example(tokenizer, chat(r["prompt"], r["chosen"]), max_length),
             sft.build_example(tokenizer, chat(r["prompt"], r["rejected"]), max_length)) for r in rows]


def token_logps(logits, labels):
    """Per-token log-probabilities of the labelled tokens and their mask, shifted as the SFT loss is.

    ``logits`` (batch, length, vocab), ``labels`` (batch, length) with -100 where not trained. Returns
    (logps, mask), both (batch, length − 1); logps is 0 where mask is 0.
    Taught in lesson 10.
    """
    import torch

    targets = labels[:, 1:]
    mask = targets != sft.IGNORE_INDEX
    logps = torch.log_softmax(logits[:, :-1].float(), dim=-1).gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return logps * mask, mask


def sequence_logps(model, batch):
    """log π(y | x) for each sequence of a padded batch: the sum of its response tokens' log-probabilities.

    Taught in lesson 10."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    logps, _ = token_logps(logits, batch["labels"])
    return logps.sum(-1)


def dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta: float = 0.1):
    """The DPO loss from per-sequence log-probabilities; returns (mean loss, chosen rewards, rejected rewards).

    The implicit rewards are β·(log π(y|x) − log π_ref(y|x)); the loss is −log σ(chosen − rejected reward).
    Taught in lesson 10.
    """
    import torch.nn.functional as F

    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    chosen = beta * (policy_chosen - ref_chosen)
    rejected = beta * (policy_rejected - ref_rejected)
    return -F.logsigmoid(chosen - rejected).mean(), chosen.detach(), rejected.detach()


def _pair_batch(collate, pairs):
    return collate([c for c, _ in pairs] + [r for _, r in pairs])


def reference_logps(model, pairs, pad_id: int, batch_size: int = 8):
    """(chosen, rejected) log-probabilities under the reference: ``model`` with its LoRA adapter disabled.

    Taught in lesson 10."""
    return _pair_logps(model, pairs, pad_id, batch_size, adapter=False)


def policy_logps(model, pairs, pad_id: int, batch_size: int = 8):
    """(chosen, rejected) log-probabilities under the model as it is (adapter on), without gradients.

    Taught in lesson 10."""
    return _pair_logps(model, pairs, pad_id, batch_size, adapter=True)


def _pair_logps(model, pairs, pad_id: int, batch_size: int, adapter: bool):
    import contextlib

    import torch

    collate = sft.Collator(pad_id)
    chosen, rejected = [], []
    model.eval()
    with torch.inference_mode(), (contextlib.nullcontext() if adapter else _adapter_off(model)):
        for start in range(0, len(pairs), batch_size):
            part = pairs[start:start + batch_size]
            lp = sequence_logps(model, _pair_batch(collate, part))
            chosen.append(lp[: len(part)])
            rejected.append(lp[len(part):])
    return torch.cat(chosen), torch.cat(rejected)


class _adapter_off:
    """``model.disable_adapter()`` for a peft model; nothing for a plain model (then it is its own reference)."""

    def __init__(self, model):
        self.ctx = model.disable_adapter() if hasattr(model, "disable_adapter") else None

    def __enter__(self):
        return self.ctx.__enter__() if self.ctx is not None else None

    def __exit__(self, *exc):
        return self.ctx.__exit__(*exc) if self.ctx is not None else False


def train_dpo(model, pairs, pad_id: int, *, beta: float = 0.1, lr: float = 2e-3, steps: int = 10, batch_size: int = 4,
              loss_fn=None, seed: int = 0, reference=None) -> dict:
    """LoRA-DPO: ``steps`` AdamW steps on batches of ``batch_size`` pairs (cycling through ``pairs``).

    The reference log-probabilities are computed once, with the adapter disabled (or passed as
    ``reference`` = (chosen, rejected)). ``loss_fn`` defaults to :func:`dpo_loss`. Returns per step:
    ``loss``, ``margin`` (mean chosen − rejected implicit reward) and ``accuracy`` (share of pairs
    whose chosen reply has the higher implicit reward), all measured on the batch before its step.
    Taught in lesson 10.
    """
    import random

    import torch

    loss_fn = loss_fn or dpo_loss
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters: add a LoRA adapter first (freezing.apply_lora)")
    ref_c, ref_r = reference if reference is not None else reference_logps(model, pairs, pad_id)
    env.seed_everything(seed)
    idx = list(range(len(pairs)))
    random.Random(seed).shuffle(idx)
    collate = sft.Collator(pad_id)
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    history = {"loss": [], "margin": [], "accuracy": []}
    model.train()
    for step in range(steps):
        take = [idx[(step * batch_size + j) % len(idx)] for j in range(batch_size)]
        lp = sequence_logps(model, _pair_batch(collate, [pairs[i] for i in take]))
        loss, chosen, rejected = loss_fn(lp[:batch_size], lp[batch_size:], ref_c[take], ref_r[take], beta)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        history["loss"].append(float(loss.detach()))
        history["margin"].append(float((chosen - rejected).mean()))
        history["accuracy"].append(float((chosen > rejected).float().mean()))
    model.eval()
    return history
