"""Lazy answers to lesson 10's exercises; each check must refuse them (tests/shortcut_suite.py)."""

SHORTCUTS = {
    1: [
        ("the package's Bradley-Terry loss",
         "return preferences.bradley_terry_loss(r_chosen, r_rejected)"),
        ("F.logsigmoid through an alias",
         "import torch.nn.functional as G\nreturn -G.logsigmoid(r_chosen - r_rejected).mean()"),
        ("softplus via the module class",
         "return torch.nn.Softplus()(r_rejected - r_chosen).mean()"),
        ("the naive log(sigmoid), unstable for large margins",
         "return -torch.log(torch.sigmoid(r_chosen - r_rejected)).mean()"),
        ("the loss computed in NumPy: no gradient",
         "import numpy as _np\n"
         "z = (r_chosen - r_rejected).detach().double().numpy()\n"
         "return torch.tensor(float(_np.mean(_np.log1p(_np.exp(-_np.abs(z))) + _np.clip(-z, 0, None))))"),
        ("torch.logsumexp of 0 and -z (stable, but the library's)",
         "z = r_chosen - r_rejected\nreturn torch.logsumexp(torch.stack([torch.zeros_like(z), -z]), 0).mean()"),
        ("the Tensor method logaddexp", "z = r_chosen - r_rejected\nreturn (-z).logaddexp(torch.zeros_like(z)).mean()"),
        ("torch's private log_sigmoid", "return -torch._C._nn.log_sigmoid(r_chosen - r_rejected).mean()"),
        ("section 3's bt_loss", "return bt_loss(r_chosen, r_rejected)"),
        ("the constant log 2 (equal rewards)", "return torch.tensor(0.6931471805599453, requires_grad=True)"),
        ("the sum over pairs instead of the mean",
         "z = r_chosen - r_rejected\nreturn (torch.clamp(-z, min=0) + torch.log1p(torch.exp(-z.abs()))).sum()"),
    ],
    2: [
        ("the package's DPO loss on masked sums",
         "return preferences.dpo_loss((pol_c * mask_c).sum(-1), (pol_r * mask_r).sum(-1), (ref_c * mask_c).sum(-1), (ref_r * mask_r).sum(-1), beta)[0]"),
        ("section 6's dpo_by_hand on unmasked sums (no mask)",
         "return dpo_by_hand(pol_c.sum(-1), pol_r.sum(-1), ref_c.sum(-1), ref_r.sum(-1), beta)"),
        ("a per-token mean instead of the sum",
         "m = lambda lp, k: (lp * k).sum(-1) / k.sum(-1)\n"
         "return -F.logsigmoid(beta * ((m(pol_c, mask_c) - m(ref_c, mask_c)) - (m(pol_r, mask_r) - m(ref_r, mask_r)))).mean()"),
        ("no reference",
         "return -F.logsigmoid(beta * ((pol_c * mask_c).sum(-1) - (pol_r * mask_r).sum(-1))).mean()"),
        ("beta forgotten",
         "return -F.logsigmoid(((pol_c - ref_c) * mask_c).sum(-1) - ((pol_r - ref_r) * mask_r).sum(-1)).mean()"),
        ("the constant log 2 (policy = reference)", "return torch.tensor(0.6931471805599453)"),
    ],
    3: [
        ("transformers' warpers",
         "from transformers import TemperatureLogitsWarper, TopPLogitsWarper\n"
         "return torch.softmax(TopPLogitsWarper(top_p)(None, TemperatureLogitsWarper(temperature)(None, logits[None].clone())), -1)[0]"),
        ("transformers' LogitsProcessorList",
         "from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopPLogitsWarper\n"
         "steps = LogitsProcessorList([TemperatureLogitsWarper(temperature), TopPLogitsWarper(top_p)])\n"
         "return torch.softmax(steps(None, logits[None].clone()), -1)[0]"),
        ("the package's processed_probs", "return preferences.processed_probs(logits, temperature, None, top_p)"),
        ("section 4's step_probs", "return step_probs(logits, temperature, None, top_p)"),
        ("temperature only, no top-p", "return torch.softmax(logits / temperature, -1)"),
        ("top-p before the temperature",
         "probs = torch.softmax(logits.float(), -1)\n"
         "p_sorted, order = probs.sort(descending=True)\n"
         "keep = p_sorted.cumsum(0) - p_sorted < top_p\n"
         "z = torch.full_like(logits, float('-inf')).scatter(0, order[keep], logits[order[keep]])\n"
         "return torch.softmax(z / temperature, -1)"),
        ("kept probabilities not renormalised",
         "probs = torch.softmax(logits.float() / temperature, -1)\n"
         "p_sorted, order = probs.sort(descending=True)\n"
         "keep = p_sorted.cumsum(0) - p_sorted < top_p\n"
         "return torch.zeros_like(probs).scatter(0, order[keep], p_sorted[keep])"),
    ],
}
