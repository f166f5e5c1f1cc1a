"""Benchmark: SFT training throughput (dynamic vs fixed padding) and label-scoring throughput (batched vs one at a time).

    python bench/sft_and_scoring_throughput.py [--steps 4] [--messages 24]

Both on the packaged SmolLM2-135M-Instruct, in this one process:

1. SFT with LoRA (r=8 on q_proj, v_proj), batches of 8 instruction chats: real (non-pad)
   tokens trained per second when each batch is padded to its longest chat and chats of
   similar length are batched together (lesson 07's set-up), versus every batch padded to
   a fixed 256 tokens. The same chats, the same number of optimizer steps.
2. Zero-shot sentiment classification by label log-likelihood: test messages scored per
   second by ``prompting.score_labels`` (shared prefix + batches of 16) versus
   ``prompting.score_labels_one_at_a_time`` (one forward pass per message and label),
   and the largest difference between their scores.

Prints both ratios side by side. On a busy machine, absolute numbers drop; the ratios hold better.
"""

from __future__ import annotations

import argparse
import time


def sft_throughput(model, tokenizer, steps: int, batch_size: int = 8) -> dict:
    from finetune_utils import data, freezing, sft

    ds, _ = data.load("instructions")
    chats = ds["train"].shuffle(seed=0).select(range(steps * batch_size))["messages"]
    examples = sft.build_examples(tokenizer, chats, max_length=256)
    pad_id = sft.pad_token_id(tokenizer)
    out = {}
    for name, kwargs in (("dynamic padding, grouped by length", {"group_by_length": True}), ("fixed padding to 256", {"pad_to": 256, "group_by_length": False})):
        peft_model = freezing.apply_lora(model, r=8, dropout=0.0, target_modules=("q_proj", "v_proj"))
        history = sft.train(peft_model, examples, pad_id, epochs=1, lr=1e-3, batch_size=batch_size, progress=False, **kwargs)
        out[name] = {
            "tokens_per_s": history["tokens_per_s"],
            "padded_share": 1 - history["tokens"] / history["padded_tokens"],
            "seconds": history["seconds"],
        }
        model = peft_model.unload()  # the base model without adapters, for the next set-up
    return out


def scoring_throughput(model, tokenizer, n_messages: int) -> dict:
    import numpy as np

    from finetune_utils import data, prompting

    ds, labels = data.load("support_sentiment")
    instruction = "Classify the sentiment of this customer message as negative, neutral or positive."
    prompts = [
        prompting.chat_prompt(tokenizer, prompting.classification_messages(instruction, t))
        for t in ds["test"]["text"][:n_messages]
    ]
    out, scores = {}, {}
    for name, fn in (
        ("batched (shared prefix, 16 per batch)", lambda: prompting.score_labels(model, tokenizer, prompts, labels, batch_size=16)),
        ("one at a time (a pass per label)", lambda: prompting.score_labels_one_at_a_time(model, tokenizer, prompts, labels)),
    ):
        start = time.perf_counter()
        scores[name] = fn()
        seconds = time.perf_counter() - start
        out[name] = {"examples_per_s": len(prompts) / seconds, "seconds": seconds}
    a, b = scores.values()
    out["max_abs_difference"] = float(np.abs(a - b).max())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4, help="optimizer steps per SFT set-up (batches of 8 chats)")
    parser.add_argument("--messages", type=int, default=24, help="test messages to score")
    args = parser.parse_args()

    import torch

    from finetune_utils import env, models

    env.seed_everything(0)
    model, tokenizer = models.load_causal_lm()
    print(f"SmolLM2-135M-Instruct on {env.pick_device()}, {torch.get_num_threads()} threads\n")

    sft_rows = sft_throughput(model, tokenizer, args.steps)
    model.eval()
    score_rows = scoring_throughput(model, tokenizer, args.messages)

    print(f"SFT with LoRA, {args.steps} steps of 8 chats each:")
    print(f"  {'set-up':<40} {'real tokens/s':>13} {'pad share':>9} {'seconds':>8}")
    for name, r in sft_rows.items():
        print(f"  {name:<40} {r['tokens_per_s']:>13.0f} {r['padded_share']:>9.0%} {r['seconds']:>8.1f}")
    print(f"\nLabel scoring, {args.messages} messages x 3 labels:")
    print(f"  {'method':<40} {'examples/s':>13} {'seconds':>8}")
    for name, r in score_rows.items():
        if isinstance(r, dict):
            print(f"  {name:<40} {r['examples_per_s']:>13.2f} {r['seconds']:>8.1f}")
    print(f"  largest score difference between the two: {score_rows['max_abs_difference']:.1e}")

    dyn, fixed = (r["tokens_per_s"] for r in sft_rows.values())
    batched, single = (r["examples_per_s"] for k, r in score_rows.items() if isinstance(r, dict))
    print("\nRatios (measured in this run):")
    print(f"  SFT tokens/s, dynamic / fixed padding:       {dyn / fixed:5.2f}x")
    print(f"  scoring examples/s, batched / one at a time: {batched / single:5.2f}x")


if __name__ == "__main__":
    main()
