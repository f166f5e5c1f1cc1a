"""Lazy answers to lesson 07's exercises; each check must refuse them (tests/shortcut_suite.py).

Exercise 1's shortcuts stay cheap: the lesson's exercise cell calls ``train_steps`` on the whole pass, so
each of them trains on at most one batch per call (or not at all).
"""

SHORTCUTS = {
    1: [  # train_steps(m, examples, batches, optimizer): the training loop
        ("no training at all: the untrained model", "return [0.0] * len(batches)"),
        ("the package's loop, sft.train (on one batch, to stay cheap)",
         "history = sft.train(m, [examples[i] for i in batches[0]], pad_id, epochs=1, lr=LR, batch_size=len(batches[0]),\n"
         "                    warmup_steps=0, max_grad_norm=float('inf'), progress=False)\n"
         "return (history['loss'] * len(batches))[: len(batches)]"),
        ("the package's loop, training.loop (on one batch)",
         "from torch.utils.data import DataLoader\n"
         "loader = DataLoader([examples[i] for i in batches[0]], batch_size=len(batches[0]), collate_fn=sft.Collator(pad_id))\n"
         "scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)\n"
         "history = training.loop(m, loader, optimizer, scheduler, sft.batch_loss, max_grad_norm=float('inf'), progress=False)\n"
         "return (history['loss'] * len(batches))[: len(batches)]"),
        ("the pre-trained weights trained too (the top layer unfrozen for a step, then frozen again)",
         "params = [p for n, p in m.named_parameters() if '.layers.29.' in n]\n"
         "for p in params:\n"
         "    p.requires_grad_(True)\n"
         "full = torch.optim.SGD(params, lr=1e-3)\n"
         "loss = sft.batch_loss(m, sft.Collator(pad_id)([examples[batches[0][0]]]))\n"
         "loss.backward()\n"
         "full.step()\n"
         "full.zero_grad(set_to_none=True)\n"
         "for n, p in m.named_parameters():\n"
         "    p.requires_grad_('lora_' in n)\n"
         "return [loss.item()] * len(batches)"),
        ("section 6's adapters (the 32-chat run), copied into the new model",
         "with torch.no_grad():\n"
         "    for n, p in m.named_parameters():\n"
         "        if n in trainable:\n"
         "            p.copy_(trainable[n])\n"
         "return [0.0] * len(batches)"),
        ("section 5's single step, once per call instead of once per batch",
         "loss = sft.batch_loss(m, sft.Collator(pad_id)([examples[i] for i in batches[0]]))\n"
         "loss.backward()\n"
         "optimizer.step()\n"
         "optimizer.zero_grad(set_to_none=True)\n"
         "return [loss.item()] * len(batches)"),
    ],
    2: [  # label_mask(tokenizer, chat) -> (input_ids, labels)
        ("the package's sft.build_example",
         "example = sft.build_example(tokenizer, chat, None)\n"
         "return example['input_ids'], example['labels']"),
        ("sft.build_example kept (in a list) from the first call, before the check blocks it",
         "global _kept_builder\n"
         "if '_kept_builder' not in globals():\n"
         "    _kept_builder = [sft.build_example]\n"
         "example = _kept_builder[0](tokenizer, chat, None)\n"
         "return example['input_ids'], example['labels']"),
        ("section 2's example, copied", "return example['input_ids'], example['labels']"),
        ("everything after the prompt trained (the final newline too)",
         "prompt_text = tokenizer.apply_chat_template(chat[:-1], add_generation_prompt=True, tokenize=False)\n"
         "full_text = tokenizer.apply_chat_template(chat, tokenize=False)\n"
         "prompt_ids = tokenizer(prompt_text, add_special_tokens=False)['input_ids']\n"
         "rest_ids = tokenizer(full_text[len(prompt_text):], add_special_tokens=False)['input_ids']\n"
         "return prompt_ids + rest_ids, [-100] * len(prompt_ids) + rest_ids"),
        ("the response without its closing <|im_end|>",
         "prompt_text = tokenizer.apply_chat_template(chat[:-1], add_generation_prompt=True, tokenize=False)\n"
         "full_text = tokenizer.apply_chat_template(chat, tokenize=False)\n"
         "prompt_ids = tokenizer(prompt_text, add_special_tokens=False)['input_ids']\n"
         "rest_ids = tokenizer(full_text[len(prompt_text):], add_special_tokens=False)['input_ids']\n"
         "n = rest_ids.index(tokenizer.convert_tokens_to_ids('<|im_end|>'))\n"
         "return prompt_ids + rest_ids, [-100] * len(prompt_ids) + rest_ids[:n] + [-100] * (len(rest_ids) - n)"),
        ("the prompt taken from the first message only (right for a one-exchange chat without a system message)",
         "ids = tokenizer(tokenizer.apply_chat_template(chat, tokenize=False), add_special_tokens=False)['input_ids']\n"
         "prompt = tokenizer.apply_chat_template(chat[:1], add_generation_prompt=True, tokenize=False)\n"
         "n_prompt = len(tokenizer(prompt, add_special_tokens=False)['input_ids'])\n"
         "n_response = len(tokenizer(chat[-1]['content'], add_special_tokens=False)['input_ids']) + 1\n"
         "return ids, [-100] * n_prompt + ids[n_prompt:n_prompt + n_response] + [-100] * (len(ids) - n_prompt - n_response)"),
    ],
    3: [  # masked_sft_loss(logits, labels) without F.cross_entropy
        ("F.cross_entropy with ignore_index",
         "return F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), labels[:, 1:].reshape(-1), ignore_index=-100)"),
        ("section 3's sft_loss", "return sft_loss(logits, labels)"),
        ("torch.nn.CrossEntropyLoss",
         "return torch.nn.CrossEntropyLoss(ignore_index=-100)(logits[:, :-1].reshape(-1, logits.size(-1)), labels[:, 1:].reshape(-1))"),
        ("F.nll_loss on log_softmax",
         "logprobs = torch.log_softmax(logits[:, :-1], dim=-1)\n"
         "return F.nll_loss(logprobs.reshape(-1, logits.size(-1)), labels[:, 1:].reshape(-1), ignore_index=-100)"),
        ("torch's C++ cross-entropy, called directly",
         "return torch._C._nn.cross_entropy_loss(logits[:, :-1].reshape(-1, logits.size(-1)), labels[:, 1:].reshape(-1), None, 1, -100, 0.0)"),
        ("lesson 10's preferences.token_logps",
         "from finetune_utils import preferences\n"
         "logps, mask = preferences.token_logps(logits, labels)\n"
         "return -logps.sum() / mask.sum()"),
        ("the model's own loss on the lesson's batch", "return peft_model(**ex_batch).loss"),
        ("mean of the per-chat means",
         "logprobs = torch.log_softmax(logits[:, :-1].float(), dim=-1)\n"
         "targets = labels[:, 1:]\n"
         "keep = targets != -100\n"
         "picked = logprobs.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)\n"
         "return -((picked * keep).sum(1) / keep.sum(1)).mean()"),
    ],
    4: [  # perplexity_from_sum(total_nats, n_tokens) -> (mean_loss, ppl); uniform_perplexity(vocab_size)
        ("the lesson's numbers, hard-coded",
         ["return 1530.0 / 1200, math.exp(1530.0 / 1200)", "return len(tokenizer)"]),
        ("the package's sft.perplexity",
         ["mean_loss = total_nats / n_tokens\nreturn mean_loss, sft.perplexity(mean_loss)",
          "return sft.perplexity(math.log(vocab_size))"]),
        ("bits instead of nats (2 ** loss)",
         ["mean_loss = total_nats / n_tokens\nreturn mean_loss, 2 ** mean_loss", "return float(vocab_size)"]),
        ("the uniform model's loss instead of its perplexity",
         ["mean_loss = total_nats / n_tokens\nreturn mean_loss, math.exp(mean_loss)", "return math.log(vocab_size)"]),
    ],
}
