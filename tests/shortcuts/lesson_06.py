"""Lazy answers to lesson 06's exercises; their checks must refuse each (tests/shortcut_suite.py)."""

# Exercise 1 has two solution regions: calibrate's body, then cf_scores.
CALIBRATE = '''z = np.asarray(scores, dtype=float) - np.asarray(cf_scores, dtype=float)
z = z - z.max(axis=-1, keepdims=True)
p = np.exp(z)
return p / p.sum(axis=-1, keepdims=True)'''
CF = '''cf_prompt = prompting.chat_prompt(tokenizer, prompting.classification_messages(INSTRUCTION, "N/A"))
cf_scores = prompting.score_labels(lm, tokenizer, [cf_prompt], label_names)[0]'''

# Exercise 3 has two solution regions: my_few_shot_messages' body, then the evaluation.
MESSAGES = '''messages = []
for demo_text, demo_label in demonstrations:
    messages += [{"role": "user", "content": prompting.user_turn(instruction, demo_text)}, {"role": "assistant", "content": demo_label}]
messages.append({"role": "user", "content": prompting.user_turn(instruction, text)})
return messages'''
EVALUATE = '''sub_prompts = [prompting.chat_prompt(tokenizer, my_few_shot_messages(INSTRUCTION, t, demos_ex3)) for t in sub_texts]
sub_pred = prompting.score_labels(lm, tokenizer, sub_prompts, label_names).argmax(1)
sub_acc = float((sub_pred == y_sub).mean())'''

SHORTCUTS = {
    1: [
        ("cf_scores: the mean of the zero-shot scores instead of a content-free prompt",
         [CALIBRATE, 'cf_scores = zero["scores"].mean(axis=0)']),
        ("cf_scores: the first validation message's scores, copied",
         [CALIBRATE, 'cf_scores = zero["scores"][0]']),
        ("calibrate: the softmax of the scores alone (cf_scores unused)",
         ["from scipy.special import softmax\nreturn softmax(np.asarray(scores, dtype=float), axis=-1)", CF]),
        ("calibrate: always the lesson's N/A scores, whatever cf_scores it is given",
         ['''from scipy.special import softmax
cf_prompt_ = prompting.chat_prompt(tokenizer, prompting.classification_messages(INSTRUCTION, "N/A"))
lesson_cf = prompting.score_labels(lm, tokenizer, [cf_prompt_], label_names)[0]
return softmax(np.asarray(scores, dtype=float) - lesson_cf, axis=-1)''', CF]),
        ("calibrate: the subtraction without the softmax",
         ["return np.asarray(scores, dtype=float) - np.asarray(cf_scores, dtype=float)", CF]),
    ],
    2: [
        ("the package's batched scorer",
         'return float(prompting.score_labels(lm, tokenizer, [prompt], [label, label + "!"])[0, 0])'),
        ("the package's one-at-a-time scorer",
         'return float(prompting.score_labels_one_at_a_time(lm, tokenizer, [prompt], [label, label + "!"])[0, 0])'),
        ("the model's own loss with labels=",
         '''prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
label_ids = tokenizer(label, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
ids = torch.tensor([prompt_ids + label_ids])
targets = torch.tensor([[-100] * len(prompt_ids) + label_ids])
with torch.no_grad():
    loss = lm(input_ids=ids, labels=targets).loss
return -loss.item() * len(label_ids)'''),
        ("section 3's score of 'neutral', copied", 'return float(fast[0][label_names.index("neutral")])'),
        ("a constant log-probability", "return -3.0"),
    ],
    3: [
        ("the package's classification_messages",
         ["return prompting.classification_messages(instruction, text, demonstrations)", EVALUATE]),
        ("classification_messages imported under another name",
         ["from finetune_utils.prompting import classification_messages as build\nreturn build(instruction, text, demonstrations)",
          EVALUATE]),
        ("section 6's 2-shot chat, copied", ["return demo_messages", EVALUATE]),
        ("the demonstrations left out (a zero-shot chat)",
         ['return [{"role": "user", "content": prompting.user_turn(instruction, text)}]', EVALUATE]),
        ("sub_pred: the true labels copied",
         [MESSAGES, "sub_pred = np.array(y_sub)\nsub_acc = 1.0"]),
        ("sub_pred: section 4's zero-shot predictions copied",
         [MESSAGES, 'sub_pred = zero["pred"][::3]\nsub_acc = float((sub_pred == y_sub).mean())']),
    ],
}
