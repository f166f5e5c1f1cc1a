"""Lazy answers to lesson 01's exercises; each check must refuse them all (tests/shortcut_suite.py)."""

INIT = """\
self.encoder = encoder
self.head = torch.nn.Linear(encoder.config.hidden_size, n_labels)"""
FORWARD = """\
h = self.encoder(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state
return self.head(h[:, 0])"""
MEAN_POOL = """\
mask = attention_mask.unsqueeze(-1).to(h.dtype)
return (h * mask).sum(dim=1) / mask.sum(dim=1)"""
W_SHAPE = "return (n_classes, hidden_size)"

SHORTCUTS = {
    1: [
        ("the pooler's output instead of the [CLS] vector",
         [INIT, "return self.head(self.encoder(input_ids=input_ids, attention_mask=attention_mask, "
                "token_type_ids=token_type_ids).pooler_output)"]),
        ("the mean of the token vectors instead of the [CLS] vector",
         [INIT, "return self.head(self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state.mean(1))"]),
        ("the lesson's sizes hard-coded (384 -> 5)",
         ["self.encoder = encoder\nself.head = torch.nn.Linear(384, 5)", FORWARD]),
        ("the package's classifier inside, the encoder received left unused",
         ["from finetune_utils import heads\n"
          "self.encoder = encoder\n"
          "self.full = heads.classifier(legal_labels)\n"
          "self.head = self.full.classifier",
          "return self.full(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits"]),
        ("a freshly loaded encoder instead of the one received",
         ["self.encoder = models.load_encoder(with_tokenizer=False)\n"
          "self.head = torch.nn.Linear(self.encoder.config.hidden_size, n_labels)", FORWARD]),
        ("zeros of the right shape", [INIT, "return torch.zeros(len(input_ids), self.head.out_features)"]),
    ],
    2: [
        ("torch.softmax on a tensor", "return torch.softmax(torch.as_tensor(z), dim=-1).numpy()"),
        ("the tensor's own softmax method", "return torch.from_numpy(np.array(z, dtype=float)).softmax(-1).numpy()"),
        ("the package's evaluation.softmax", "return evaluation.softmax(z)"),
        ("scipy's softmax", "from scipy.special import softmax\nreturn softmax(z, axis=1)"),
        ("scikit-learn's softmax under another name",
         "from sklearn.utils.extmath import softmax as normalise\nreturn normalise(np.array(z, dtype=float))"),
        ("exp of z minus scipy's logsumexp",
         "from scipy.special import logsumexp\nreturn np.exp(z - logsumexp(z, axis=1, keepdims=True))"),
        ("the lesson's two rows of probabilities, hard-coded",
         "return np.array([[0.6590, 0.2424, 0.0986], [0.2447, 0.6652, 0.0900]])"),
        ("no row maximum subtracted", "e = np.exp(z)\nreturn e / e.sum(axis=1, keepdims=True)"),
    ],
    3: [
        ("a plain mean: padding counted", ["return h.mean(dim=1)", W_SHAPE]),
        ("the [CLS] vector instead of the mean", ["return h[:, 0]", W_SHAPE]),
        ("masked sum divided by the padded length",
         ["return (h * attention_mask.unsqueeze(-1)).sum(dim=1) / h.shape[1]", W_SHAPE]),
        ("the first n tokens, as if padding were always on the right",
         ["n = attention_mask.sum(dim=1)\nreturn torch.stack([h[i, : n[i]].mean(0) for i in range(len(h))])", W_SHAPE]),
        ("the lesson's shape, hard-coded", [MEAN_POOL, "return (3, 384)"]),
        ("W transposed (hidden, classes)", [MEAN_POOL, "return (hidden_size, n_classes)"]),
    ],
}
