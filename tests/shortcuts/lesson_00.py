"""Lazy answers to lesson 00's exercise; its check must refuse each (tests/shortcut_suite.py)."""

SHORTCUTS = {
    1: [
        ("generate through the model's class",
         "return type(lm).generate(lm, input_ids=input_ids, max_new_tokens=n_new, do_sample=False)[0, input_ids.shape[1]:]"),
        ("generate through transformers' GenerationMixin",
         "from transformers import GenerationMixin\n"
         "return GenerationMixin.generate(lm, input_ids=input_ids, max_new_tokens=n_new, do_sample=False)[0, input_ids.shape[1]:]"),
        ("section 3's reply, copied", "return new_tokens[:n_new]"),
        ("the argmax of the prompt's last position, repeated",
         "return lm(input_ids=input_ids).logits[0, -1].argmax().repeat(n_new)"),
    ],
}
