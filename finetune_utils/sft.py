"""Instruction fine-tuning (SFT) of a chat model: data, loss masking, LoRA, training, evaluation.

An SFT example is a chat: the user's instruction and the response we want. Laid
out with the model's chat template it becomes one token sequence::

    <|im_start|>system ... <|im_end|>\\n<|im_start|>user\\n{instruction}<|im_end|>\\n<|im_start|>assistant\\n{response}<|im_end|>\\n
    └──────────────────────────── prompt: label -100 (not trained) ───────────────────────────┘└──── trained ─────┘

The loss is the usual next-token cross-entropy, but only on the response tokens
and the ``<|im_end|>`` that closes them: every other position gets the label
-100, which the cross-entropy ignores. The model learns to *answer*, not to
reproduce prompts. :func:`build_example` makes the ids and labels,
:class:`Collator` pads batches dynamically (LoRA comes from
``freezing.apply_lora``), :func:`train` runs the course's one loop, and :func:`response_loss`, :func:`json_metrics`
and :func:`label_metrics` evaluate without an external judge.
"""

from __future__ import annotations

import json
import math
import random

import numpy as np

from . import data, env
from .data import IGNORE_INDEX  # noqa: F401  (lesson 07 reads sft.IGNORE_INDEX)
from .prompting import chat_prompt, end_of_turn_id, pad_token_id, require_chat_template  # noqa: F401 (sft.pad_token_id: lesson 07)
from .training import MAX_GRAD_NORM, GroupedSampler, adamw, loop, new_state



class SequenceTooLongError(ValueError):
    """An SFT example does not fit in ``max_length`` tokens."""


# --------------------------------------------------------------------------- examples


def build_example(tokenizer, messages, max_length: int | None = 256) -> dict:
    """Token ids and loss labels for one chat, with the loss on the final response only. Taught in lesson 07.

    The prompt (every turn before the last, plus the opened assistant turn) is
    tokenized on its own, exactly as at generation time, then the rest (response,
    ``<|im_end|>``, the template's trailing newline). Labels are -100 on the prompt,
    the token ids on the response and its closing end-of-turn token, and -100 after
    it. Returns ``input_ids``, ``attention_mask``, ``labels`` (lists) and
    ``prompt_length``. Raises :class:`SequenceTooLongError` above ``max_length``.
    """
    require_chat_template(tokenizer)
    data.check_messages(messages, "the SFT example")
    messages = [{"role": m["role"], "content": m["content"]} for m in messages]
    prompt_text = chat_prompt(tokenizer, messages[:-1]) if messages[-2]["role"] == "user" else tokenizer.apply_chat_template(
        messages[:-1], add_generation_prompt=True, tokenize=False
    )
    full_text = tokenizer.apply_chat_template(messages, tokenize=False)
    if not full_text.startswith(prompt_text):
        raise ValueError(
            "The chat template does not lay out the conversation as prompt + response "
            "(the text with the response does not start with the prompt text), so the response "
            "tokens cannot be located; use a template whose generation prompt opens the assistant turn."
        )
    prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    rest_ids = tokenizer(full_text[len(prompt_text) :], add_special_tokens=False)["input_ids"]
    end = end_of_turn_id(tokenizer)
    if end not in rest_ids:
        raise ValueError(
            f"The chat template does not close the assistant's turn with the EOS token {tokenizer.eos_token!r}; "
            "the model would never learn to stop. Set tokenizer.eos_token to the template's end-of-turn token."
        )
    n_trained = rest_ids.index(end) + 1
    input_ids = prompt_ids + rest_ids
    labels = [IGNORE_INDEX] * len(prompt_ids) + rest_ids[:n_trained] + [IGNORE_INDEX] * (len(rest_ids) - n_trained)
    if max_length is not None and len(input_ids) > max_length:
        raise SequenceTooLongError(
            f"the example has {len(input_ids)} tokens (prompt {len(prompt_ids)}), more than max_length={max_length}; "
            "raise max_length or drop the example (build_examples drops and counts them)."
        )
    return {
        "input_ids": input_ids,
        "attention_mask": [1] * len(input_ids),
        "labels": labels,
        "prompt_length": len(prompt_ids),
    }


def build_examples(tokenizer, conversations, max_length: int | None = 256, verbose: bool = True) -> list[dict]:
    """:func:`build_example` for many chats; those longer than ``max_length`` are dropped (and counted).

    Taught in lesson 07."""
    out, dropped = [], 0
    for messages in conversations:
        try:
            out.append(build_example(tokenizer, messages, max_length))
        except SequenceTooLongError:
            dropped += 1
    if verbose and dropped:
        print(f"dropped {dropped} of {dropped + len(out)} examples longer than {max_length} tokens")
    if not out:
        raise ValueError(f"no example fits in max_length={max_length} tokens")
    return out


def show_mask(tokenizer, example: dict, width: int = 18) -> list[tuple[str, int, bool]]:
    """(token text, label, trained?) for every position of an example: what the loss sees. Taught in lesson 07."""
    rows = []
    for token_id, label in zip(example["input_ids"], example["labels"]):
        rows.append((tokenizer.decode([token_id])[:width], label, label != IGNORE_INDEX))
    return rows


# --------------------------------------------------------------------------- batches


class Collator:
    """Pads a list of examples into a batch: ``input_ids`` with ``pad_id``, mask 0, labels -100. Taught in lesson 07.

    By default each batch is padded to its longest example (dynamic padding);
    ``pad_to`` pads every batch to that fixed length instead (what a static-shape
    pipeline does), and rejects longer examples.
    """

    def __init__(self, pad_id: int, pad_to: int | None = None):
        if not isinstance(pad_id, int) or pad_id < 0:
            raise ValueError(f"pad_id must be a token id (int >= 0), got {pad_id!r}; see sft.pad_token_id(tokenizer)")
        self.pad_id, self.pad_to = pad_id, pad_to

    def __call__(self, examples: list[dict]) -> dict:
        import torch

        if not examples:
            raise ValueError("cannot collate an empty batch")
        longest = max(len(e["input_ids"]) for e in examples)
        width = longest if self.pad_to is None else self.pad_to
        if longest > width:
            raise SequenceTooLongError(f"an example has {longest} tokens, more than pad_to={self.pad_to}")
        batch = {
            "input_ids": torch.full((len(examples), width), self.pad_id, dtype=torch.long),
            "attention_mask": torch.zeros((len(examples), width), dtype=torch.long),
            "labels": torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long),
        }
        for row, e in enumerate(examples):
            n = len(e["input_ids"])
            if len(e["labels"]) != n:
                raise ValueError(f"example {row}: {n} input ids but {len(e['labels'])} labels")
            batch["input_ids"][row, :n] = torch.tensor(e["input_ids"])
            batch["attention_mask"][row, :n] = 1
            batch["labels"][row, :n] = torch.tensor(e["labels"])
        return batch


# --------------------------------------------------------------------------- model


def _decoder_and_head(model):
    return model.get_decoder(), model.get_output_embeddings()


def batch_loss(model, batch, reduction: str = "mean"):
    """Next-token cross-entropy on the trained positions (labels != -100) of a padded batch. Taught in lesson 07.

    The same value as ``model(**batch).loss`` in transformers (labels shifted by one,
    mean over trained tokens), but the output layer (576 → 49 152 for SmolLM2) is
    applied only at the positions that predict a trained token: with the loss on the
    responses only, most positions need no logits at all. ``reduction="sum"``
    returns the summed loss and the number of trained tokens.
    """
    import torch
    import torch.nn.functional as F

    decoder, head = _decoder_and_head(model)
    labels = batch["labels"]
    hidden = decoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).last_hidden_state
    targets = labels[:, 1:]
    keep = targets != IGNORE_INDEX
    if not keep.any():
        raise ValueError("the batch has no trained token (every label is -100)")
    logits = head(hidden[:, :-1][keep]).float()
    total = F.cross_entropy(logits, targets[keep], reduction="sum")
    n = int(keep.sum())
    if reduction == "sum":
        return total, n
    return total / n


def response_loss(model, examples, pad_id: int, batch_size: int = 8) -> dict:
    """Held-out loss on response tokens: mean NLL per trained token, its perplexity, the token count.

    Perplexity = exp(mean loss): the model is, on average, as unsure of the next
    response token as a uniform choice among that many tokens.
    Taught in lesson 07.
    """
    import torch

    collate = Collator(pad_id)
    device = next(model.parameters()).device
    total, tokens = 0.0, 0
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(examples), batch_size):
            batch = {k: v.to(device) for k, v in collate(examples[start : start + batch_size]).items()}
            loss_sum, n = batch_loss(model, batch, reduction="sum")
            total, tokens = total + float(loss_sum), tokens + n
    mean = total / tokens
    return {"loss": mean, "perplexity": perplexity(mean), "tokens": tokens}


def perplexity(mean_loss: float) -> float:
    """exp(mean cross-entropy in nats per token)."""
    if mean_loss < 0:
        raise ValueError(f"a cross-entropy is never negative, got {mean_loss}")
    return float(math.exp(mean_loss))


def train(
    model,
    examples,
    pad_id: int,
    *,
    epochs: float = 1,
    lr: float = 1e-3,
    batch_size: int = 8,
    warmup_steps: int = 2,
    weight_decay: float = 0.0,
    max_grad_norm: float = MAX_GRAD_NORM,
    seed: int = 0,
    pad_to: int | None = None,
    group_by_length: bool = True,
    checkpoints=(),
    on_checkpoint=None,
    progress: bool = True,
) -> dict:
    """Instruction-tune ``model`` (its trainable parameters, e.g. LoRA adapters) on SFT examples. Taught in lesson 07.

    AdamW, linear warm-up over ``warmup_steps`` then a constant learning rate (so that
    the model after n examples is the same whether or not we train further), gradient
    clipping, the loss of :func:`batch_loss`. ``epochs`` may be fractional. Batches
    are padded dynamically (``pad_to`` pads to a fixed length instead) and, with
    ``group_by_length``, built from examples of similar length.

    ``checkpoints``: numbers of examples seen at which ``on_checkpoint(n_seen, model)``
    is called (the model is put in eval mode for the call, then back in train mode):
    one run then gives the model after 8, 32, 128, ... examples.

    The steps run through the package's one loop (``training.loop``), with this
    module's collator and loss. Returns its history plus ``seen`` (examples seen after
    each step), ``tokens`` and ``padded_tokens`` (real and padded), ``seconds`` (the
    total, without the checkpoint calls) and ``tokens_per_s`` (throughput).
    """
    import torch
    from torch.utils.data import DataLoader


    if not examples:
        raise ValueError("no training examples")
    if epochs <= 0 or lr <= 0 or batch_size < 1:
        raise ValueError(f"need epochs > 0, lr > 0 and batch_size >= 1; got {epochs}, {lr}, {batch_size}")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters: add LoRA adapters (freezing.apply_lora) or unfreeze some")
    env.seed_everything(seed)
    # Each epoch's order: batches of similar length (training.GroupedSampler, as the encoder's training) or shuffled.
    sampler = GroupedSampler([len(e["input_ids"]) for e in examples], batch_size, seed=seed)
    order = []
    for epoch in range(math.ceil(epochs)):
        sampler.set_epoch(epoch)
        indices = list(sampler) if group_by_length else random.Random(seed + epoch).sample(range(len(examples)), len(examples))
        order += [indices[i : i + batch_size] for i in range(0, len(indices), batch_size)]
    order = order[: max(1, round(epochs * len(examples) / batch_size))]
    # one pass of the package's loop over this list of batches (fractional epochs included)
    batches = DataLoader(examples, batch_sampler=order, collate_fn=Collator(pad_id, pad_to))
    optimizer = adamw([{"params": params, "weight_decay": weight_decay}], lr, next(model.parameters()).device)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / (warmup_steps + 1)))
    pending = sorted(set(checkpoints))
    counts = {"seen": [], "tokens": 0, "padded_tokens": 0}

    def loss_fn(model, batch):
        counts["tokens"] += int(batch["attention_mask"].sum())
        counts["padded_tokens"] += batch["input_ids"].numel()
        counts["seen"].append((counts["seen"] or [0])[-1] + len(batch["input_ids"]))
        return batch_loss(model, batch)

    def on_step(state, model):
        while pending and counts["seen"][-1] >= pending[0] and on_checkpoint is not None:
            model.eval()
            on_checkpoint(pending.pop(0), model)
            model.train()

    state = new_state()
    history = loop(model, batches, optimizer, scheduler, loss_fn, epochs=1, max_grad_norm=max_grad_norm,
                   device=next(model.parameters()).device, state=state, on_step=on_step, progress=progress, desc="SFT")
    history.update(seen=counts["seen"], tokens=counts["tokens"], padded_tokens=counts["padded_tokens"],
                   seconds=state["seconds"], tokens_per_s=counts["tokens"] / state["seconds"])
    model.eval()
    return history


# --------------------------------------------------------------------------- evaluation without a judge


def parse_json_object(text: str):
    """The JSON object in a reply, leniently: the text itself, else the span from the first '{' to the last '}'.

    Returns a dict, or None. Lenient parsing separates *content* (did the model
    get the fields right?) from *format* (did it reply with the bare object?).
    """
    for candidate in (text.strip(), text[text.find("{") : text.rfind("}") + 1] if "{" in text else ""):
        try:
            obj = json.loads(candidate)
        except (json.JSONDecodeError, TypeError):
            continue
        if isinstance(obj, dict):
            return obj
    return None


def json_metrics(predictions, references, keys=data.EXTRACT_KEYS) -> dict:
    """Format and content scores of JSON extraction replies against the reference answers.

    - ``valid_json``: share of replies that parse, as they are, as a JSON object;
    - ``valid_schema``: share that are exactly a valid answer (``data.json_answer_problem``:
      the four keys in order, allowed values) — format compliance;
    - ``field_<key>``: share whose value for ``key`` equals the reference (lenient
      parsing; a missing or unparseable reply counts as wrong) — content;
    - ``all_fields``: share with every field right.
    """
    predictions, references = list(predictions), list(references)
    if len(predictions) != len(references) or not references:
        raise ValueError(f"need equally many predictions and references, got {len(predictions)} and {len(references)}")
    n = len(references)
    out = {"n": n, "valid_json": 0.0, "valid_schema": 0.0}
    field_hits = {k: 0 for k in keys}
    all_hits = 0
    for pred, ref in zip(predictions, references):
        ref_obj = json.loads(ref) if isinstance(ref, str) else ref
        try:
            out["valid_json"] += isinstance(json.loads(pred.strip()), dict)
        except (json.JSONDecodeError, TypeError):
            pass
        out["valid_schema"] += data.json_answer_problem(pred.strip()) is None
        obj = parse_json_object(pred) or {}
        hits = [k in obj and obj[k] == ref_obj[k] for k in keys]
        for k, hit in zip(keys, hits):
            field_hits[k] += hit
        all_hits += all(hits)
    out["valid_json"] /= n
    out["valid_schema"] /= n
    out.update({f"field_{k}": v / n for k, v in field_hits.items()})
    out["mean_field"] = float(np.mean([field_hits[k] / n for k in keys]))
    out["all_fields"] = all_hits / n
    return out


def label_metrics(predictions, references, labels=data.DEPARTMENTS) -> dict:
    """Format and content scores of one-label replies.

    - ``valid_label``: share of replies that are exactly one of ``labels`` (after
      stripping spaces) — format compliance;
    - ``accuracy``: share exactly equal to the reference label;
    - ``mentioned``: share whose first label word mentioned in the reply is the right one
      (lenient: "This is a billing issue." counts) — content.
    """
    predictions, references = list(predictions), list(references)
    if len(predictions) != len(references) or not references:
        raise ValueError(f"need equally many predictions and references, got {len(predictions)} and {len(references)}")
    import re

    labels = list(labels)
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, labels)) + r")\b", re.IGNORECASE)
    n = len(references)
    valid = sum(p.strip() in labels for p in predictions)
    exact = sum(p.strip() == r for p, r in zip(predictions, references))
    first = [pattern.search(p) for p in predictions]
    mentioned = sum(m is not None and m.group(1).lower() == r for m, r in zip(first, references))
    return {"n": n, "valid_label": valid / n, "accuracy": exact / n, "mentioned": mentioned / n}


def evaluate_replies(checks, predictions, references) -> dict:
    """Scores of generated replies on the checkable instruction tasks. Taught in lesson 07.

    ``checks`` holds each example's ``check`` field ("json", "label" or None):
    JSON rows go to :func:`json_metrics` (keys prefixed ``json_``), label rows to
    :func:`label_metrics` (prefixed ``label_``); other rows are skipped.
    """
    checks, predictions, references = list(checks), list(predictions), list(references)
    out = {}
    for kind, fn in (("json", json_metrics), ("label", label_metrics)):
        rows = [i for i, c in enumerate(checks) if c == kind]
        if rows:
            scores = fn([predictions[i] for i in rows], [references[i] for i in rows])
            out.update({f"{kind}_{k}": v for k, v in scores.items()})
    if not out:
        raise ValueError("no checkable example (check 'json' or 'label') among the replies")
    return out
