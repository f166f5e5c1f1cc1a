"""Prompting a chat model: prompts in its chat template, label scoring, generation.

Adapting a model by prompting changes no parameter: the task is stated in text
(an instruction, optionally a few labelled demonstrations) and the model's answer
is read off. For a classification task we do not parse free text; we ask the model
how likely each label is as its reply and take the most likely one::

    score(label) = log p(label tokens, <|im_end|> | chat prompt)
                 = Σ_t log p(token_t | prompt, token_<t)

:func:`score_labels` computes these log-likelihoods for many prompts at once. It
runs the part shared by every prompt (system prompt, instruction, demonstrations)
once and reuses its key/value cache, runs each prompt's own tokens in padded
batches, and scores the label tokens on top of that cache.
:func:`score_labels_one_at_a_time` is the textbook version (one forward pass per
prompt and label), kept as the reference it must agree with.
"""

from __future__ import annotations

import copy
import inspect
import random

import numpy as np

#: How the user turn of a classification prompt is laid out by default.
USER_TEMPLATE = "{instruction}\n\nMessage: {text}"


class ChatTemplateError(ValueError):
    """The tokenizer has no chat template, so chat prompts cannot be built."""


# --------------------------------------------------------------------------- prompts


def require_chat_template(tokenizer) -> None:
    """Raise :class:`ChatTemplateError` unless ``tokenizer`` has a chat template.

    Instruct models ship one (it says how system, user and assistant turns are
    marked with special tokens); base models usually do not.
    """
    if not getattr(tokenizer, "chat_template", None):
        name = getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__
        raise ChatTemplateError(
            f"The tokenizer {name!r} has no chat template (tokenizer.chat_template is None), so it cannot "
            "lay out system/user/assistant turns. Base (non-instruct) models usually have none: use the "
            "instruct model's tokenizer, or borrow its template with "
            "tokenizer.chat_template = models.load_causal_lm_tokenizer().chat_template."
        )


def user_turn(instruction: str, text: str, template: str = USER_TEMPLATE) -> str:
    """The user's message: the instruction and the input text, laid out by ``template``. Taught in lesson 06."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("text is empty: every prompt needs the input to classify")
    if "{text}" not in template:
        raise ValueError(f"template must contain '{{text}}' (and usually '{{instruction}}'), got {template!r}")
    return template.format(instruction=instruction.strip(), text=text.strip())


def classification_messages(
    instruction: str,
    text: str,
    demonstrations=(),
    system: str | None = None,
    template: str = USER_TEMPLATE,
) -> list[dict]:
    """A chat for in-context classification: demonstrations as earlier turns, then the query. Taught in lesson 06.

    ``demonstrations`` is a sequence of ``(text, label)`` pairs. Each becomes a user
    turn (the same instruction and layout as the query) followed by an assistant turn
    holding just the label, so the model sees k worked examples of the exact answer
    format before the message it must classify. k = 0 gives a zero-shot prompt.
    ``system`` replaces the chat template's default system prompt when given.
    """
    messages = [] if system is None else [{"role": "system", "content": system}]
    for demo_text, demo_label in demonstrations:
        messages.append({"role": "user", "content": user_turn(instruction, demo_text, template)})
        messages.append({"role": "assistant", "content": str(demo_label)})
    messages.append({"role": "user", "content": user_turn(instruction, text, template)})
    return messages


def chat_prompt(tokenizer, messages: list[dict]) -> str:
    """The text the model sees for ``messages``, ending with the assistant's turn opened. Taught in lesson 06.

    This is ``apply_chat_template(..., add_generation_prompt=True)``: the reply the
    model writes (or the label we score) comes right after it.
    """
    require_chat_template(tokenizer)
    if not messages or messages[-1].get("role") != "user":
        raise ValueError("the last message of a prompt must be the user's (the model answers it)")
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def sample_demonstrations(texts, labels, k: int, seed: int = 0, label_names=None, balanced: bool = True) -> list[tuple[str, str]]:
    """Draw ``k`` labelled demonstrations ``(text, label)`` from a training set. Taught in lesson 06.

    With ``balanced=True`` the labels take turns (in a random order of classes), so
    that k = 3 shows each class once and no draw of k ≥ 2 shows only one class; the
    examples within a class and the final order are random. ``labels`` are ints
    (with ``label_names``) or strings. The same ``seed`` gives the same draw.
    """
    if not isinstance(k, int) or k < 0:
        raise ValueError(f"k must be a non-negative int, got {k!r}")
    if len(texts) != len(labels):
        raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
    if k > len(texts):
        raise ValueError(f"cannot draw {k} demonstrations from {len(texts)} examples")
    names = [label_names[y] if label_names is not None else y for y in labels]
    rng = random.Random(seed)
    if not balanced:
        picked = rng.sample(range(len(texts)), k)
    else:
        pools: dict = {}
        for i, name in enumerate(names):
            pools.setdefault(name, []).append(i)
        classes = sorted(pools, key=str)
        rng.shuffle(classes)
        for pool in pools.values():
            rng.shuffle(pool)
        picked, turn = [], 0
        while len(picked) < k:
            pool = pools[classes[turn % len(classes)]]
            if pool:
                picked.append(pool.pop())
            turn += 1
        rng.shuffle(picked)
    return [(texts[i], names[i]) for i in picked]


# --------------------------------------------------------------------------- scoring


def _token_ids(tokenizer, text: str) -> list[int]:
    # The chat template already wrote every special token: add none.
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def end_of_turn_id(tokenizer) -> int:
    """The token that closes an assistant turn (``<|im_end|>`` for SmolLM2: its EOS)."""
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no eos_token: pass end_of_turn=False or set tokenizer.eos_token")
    return tokenizer.eos_token_id


def pad_token_id(tokenizer) -> int:
    """The id used to pad batches: the tokenizer's pad token, else its EOS token (taught in lesson 07).

    Falling back to EOS is safe here: padded positions have attention mask 0 and
    label -100, so neither the model's outputs at real positions nor the loss ever
    depend on the pad id (in generation: on left-padded positions). A tokenizer with
    neither token raises a ``ValueError``.
    """
    if tokenizer.pad_token_id is not None:
        return tokenizer.pad_token_id
    if tokenizer.eos_token_id is not None:
        return tokenizer.eos_token_id
    raise ValueError(
        "The tokenizer has neither a pad token nor an EOS token, so batches cannot be padded: "
        "set one, e.g. tokenizer.pad_token = tokenizer.eos_token or tokenizer.add_special_tokens({'pad_token': '<pad>'})."
    )


def _continuations(tokenizer, labels, end_of_turn: bool) -> list[list[int]]:
    labels = list(labels)
    if len(labels) < 2 or len(set(labels)) != len(labels):
        raise ValueError(f"need at least two distinct labels to score, got {labels}")
    out = []
    for label in labels:
        if not isinstance(label, str) or not label.strip():
            raise ValueError(f"every label must be a non-empty string, got {label!r}")
        ids = _token_ids(tokenizer, label) + ([end_of_turn_id(tokenizer)] if end_of_turn else [])
        out.append(ids)
    return out


def score_labels_one_at_a_time(model, tokenizer, prompts, labels, end_of_turn: bool = True) -> np.ndarray:
    """Log-likelihood of each label after each prompt, one forward pass per (prompt, label). Taught in lesson 06.

    The reference implementation: for prompt x and label y (tokens y_1..y_m, plus the
    end-of-turn token when ``end_of_turn``), run the model on x + y and add up
    log p(y_t | x, y_<t). Returns an array (n_prompts, n_labels). Slow; see :func:`score_labels`.
    """
    import torch

    continuations = _continuations(tokenizer, labels, end_of_turn)
    device = next(model.parameters()).device
    out = np.zeros((len(prompts), len(continuations)))
    model.eval()
    with torch.inference_mode():
        for i, prompt in enumerate(prompts):
            prompt_ids = _token_ids(tokenizer, prompt)
            for j, cont in enumerate(continuations):
                ids = torch.tensor([prompt_ids + cont], device=device)
                logprobs = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
                positions = torch.arange(len(prompt_ids) - 1, ids.shape[1] - 1, device=device)
                out[i, j] = logprobs[positions, ids[0, len(prompt_ids):]].sum().item()
    return out


def _cache_kwarg(module) -> str:
    """transformers 5 calls the KV cache argument ``cache``; 4.x called it ``past_key_values``."""
    return "cache" if "cache" in inspect.signature(module.forward).parameters else "past_key_values"


def _run(decoder, cache_name, ids, mask, positions, cache):
    out = decoder(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, **{cache_name: cache})
    new_cache = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
    return out.last_hidden_state, new_cache


def _common_prefix_length(sequences) -> int:
    first = sequences[0]
    n = min(len(s) for s in sequences)
    for seq in sequences[1:]:
        m = 0
        while m < n and seq[m] == first[m]:
            m += 1
        n = m
    return n


def score_labels(
    model,
    tokenizer,
    prompts,
    labels,
    batch_size: int = 16,
    end_of_turn: bool = True,
    share_prefix: bool = True,
    progress: bool = False,
) -> np.ndarray:
    """Log-likelihood of each label as the reply to each prompt, batched: (n_prompts, n_labels). Taught in lesson 06.

    The same numbers as :func:`score_labels_one_at_a_time` (up to float rounding),
    computed with far fewer token evaluations:

    1. the token prefix shared by all prompts (system prompt, instruction, the
       few-shot demonstrations) runs once; its key/value cache is copied to every batch
       (``share_prefix=False`` turns this off);
    2. the rest of each prompt runs in right-padded batches of ``batch_size`` prompts of
       similar length (padding masked out, positions given explicitly); only the last real position of each
       prompt goes through the output layer, giving log p(first label token | prompt);
    3. the remaining label tokens (with ``end_of_turn``, the closing ``<|im_end|>``) run
       in one small pass per label on the batch's cache, cropped back after each.

    ``end_of_turn=True`` scores the label followed by the token that closes the
    assistant's turn, so that a label only scores high if the model would stop
    after it ("neutral", not "neutral, but ..."). Works for Llama-style models from
    transformers (a decoder from ``get_decoder()`` and an output layer).
    """
    import torch
    from tqdm.auto import tqdm

    prompts = list(prompts)
    if not prompts:
        raise ValueError("no prompts to score")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    continuations = _continuations(tokenizer, labels, end_of_turn)
    ids = [_token_ids(tokenizer, p) for p in prompts]
    if any(len(x) == 0 for x in ids):
        raise ValueError("a prompt is empty")
    device = next(model.parameters()).device
    decoder, head = model.get_decoder(), model.get_output_embeddings()
    cache_name = _cache_kwarg(decoder)
    n_labels, first = len(continuations), torch.tensor([c[0] for c in continuations], device=device)
    model.eval()

    out = np.zeros((len(prompts), n_labels))
    with torch.inference_mode():
        # 1. the shared prefix (leave at least one token per prompt to predict the label from)
        prefix_len = min(_common_prefix_length(ids), min(len(x) for x in ids) - 1) if share_prefix else 0
        prefix_cache = None
        if prefix_len > 0:
            prefix = torch.tensor([ids[0][:prefix_len]], device=device)
            _, prefix_cache = _run(decoder, cache_name, prefix, torch.ones_like(prefix), torch.arange(prefix_len, device=device)[None], None)
        # batches of prompts of similar length waste little on padding
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        starts = range(0, len(prompts), batch_size)
        for start in tqdm(starts, desc="scoring", disable=not progress, leave=False, mininterval=1.0):
            members = order[start : start + batch_size]
            rows = [ids[i] for i in members]
            b = len(rows)
            lengths = torch.tensor([len(r) - prefix_len for r in rows], device=device)
            width = int(lengths.max())
            suffix = torch.full((b, width), pad_token_id(tokenizer), dtype=torch.long, device=device)
            suffix_mask = torch.zeros((b, width), dtype=torch.long, device=device)
            for r, row in enumerate(rows):
                suffix[r, : len(row) - prefix_len] = torch.tensor(row[prefix_len:], device=device)
                suffix_mask[r, : len(row) - prefix_len] = 1
            cache = None
            if prefix_cache is not None:
                cache = copy.deepcopy(prefix_cache)
                cache.batch_repeat_interleave(b)
            mask = torch.cat([torch.ones((b, prefix_len), dtype=torch.long, device=device), suffix_mask], dim=1)
            positions = (prefix_len + torch.arange(width, device=device)).expand(b, width)
            # 2. the prompts' own tokens; the output layer only at each prompt's last token
            hidden, cache = _run(decoder, cache_name, suffix, mask, positions, cache)
            last = hidden[torch.arange(b, device=device), lengths - 1]
            logprobs = torch.log_softmax(head(last).float(), dim=-1)  # (b, vocab)
            scores = logprobs[:, first]  # (b, n_labels)
            # 3. the remaining label tokens (e.g. <|im_end|>): one small pass per label on the
            #    batch's cache, which is cropped back afterwards (no copy per label)
            for j, cont in enumerate(continuations):
                m = len(cont) - 1
                if m == 0:
                    continue
                inputs = torch.tensor(cont[:-1], device=device).expand(b, m)
                cont_mask = torch.cat([mask, torch.ones((b, m), dtype=torch.long, device=device)], dim=1)
                cont_pos = (prefix_len + lengths)[:, None] + torch.arange(m, device=device)
                hidden, cache = _run(decoder, cache_name, inputs, cont_mask, cont_pos, cache)
                logprobs = torch.log_softmax(head(hidden).float(), dim=-1)  # (b, m, vocab)
                targets = torch.tensor(cont[1:], device=device).expand(b, m)
                scores[:, j] += logprobs.gather(-1, targets[..., None])[..., 0].sum(-1)
                cache.crop(-m)  # a negative length removes the last m tokens
            out[members] = scores.cpu().numpy()
    return out


# --------------------------------------------------------------------------- generation


def generate(
    model,
    tokenizer,
    conversations,
    max_new_tokens: int = 48,
    batch_size: int = 8,
    progress: bool = False,
) -> list[str]:
    """Greedy replies to chats (lists of messages ending with the user's turn). Taught in lesson 06.

    Prompts are built with the chat template and left-padded in batches (so that
    every prompt ends where generation starts). Generation stops at the
    end-of-turn token or after ``max_new_tokens``; special tokens are removed.
    Greedy decoding makes the output repeat exactly, run after run.
    """
    import torch
    from tqdm.auto import tqdm

    prompts = [chat_prompt(tokenizer, c) for c in conversations]
    device = next(model.parameters()).device
    pad_id = pad_token_id(tokenizer)
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    replies = []
    model.eval()
    try:
        for start in tqdm(range(0, len(prompts), batch_size), desc="generating", disable=not progress, leave=False, mininterval=1.0):
            batch = tokenizer(prompts[start : start + batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
            batch = {k: v.to(device) for k, v in batch.items()}
            with torch.inference_mode():
                output = model.generate(
                    **batch,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    pad_token_id=pad_id,
                    eos_token_id=end_of_turn_id(tokenizer),
                    temperature=None,
                    top_p=None,
                    top_k=None,
                )
            new = output[:, batch["input_ids"].shape[1] :]
            replies.extend(t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True))
    finally:
        tokenizer.padding_side = side
    return replies
