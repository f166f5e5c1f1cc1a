"""Preference learning helpers (lesson 10): data, Bradley-Terry, Wilson interval, sampling, DPO pieces.

The DPO loss is checked against a second, independent computation (float64 NumPy, from per-token
log-probabilities), since TRL does not install next to the packages Colab ships (it needs datasets >= 4.7).
"""

import math

import numpy as np
import pytest
import torch

from finetune_utils import preferences as P
from finetune_utils import sft


def test_the_data_set_has_its_kinds_splits_and_no_shared_prompt():
    pairs = P.load_pairs()
    assert set(pairs) == {"train", "validation", "test"}
    rows = [r for s in pairs.values() for r in s]
    assert len(rows) >= 300 and len({r["id"] for r in rows}) == len(rows)
    prompts = [{r["prompt"] for r in s} for s in pairs.values()]
    assert not (prompts[0] & prompts[1]) and not (prompts[0] & prompts[2]) and not (prompts[1] & prompts[2])
    for split in pairs.values():
        assert {r["kind"] for r in split} == set(P.KINDS)
    shorter = np.mean([len(r["chosen"].split()) < len(r["rejected"].split()) for r in rows])
    assert 0.25 <= shorter <= 0.6, "length alone must not solve the set"
    c, r = P.longer_reply_scores(pairs["test"])
    assert P.preference_accuracy(c, r) < 0.6


def test_load_pairs_names_a_bad_line(tmp_path, monkeypatch):
    folder = tmp_path / "support_preferences"
    folder.mkdir()
    (folder / "train.jsonl").write_text('{"id": "a", "topic": "t", "kind": "rude", "prompt": "p", "chosen": "x", "rejected": "y"}\n')
    monkeypatch.setenv("FINETUNE_UTILS_DATA", str(tmp_path))
    with pytest.raises(ValueError, match="line 1: unknown kind 'rude'"):
        P.load_pairs("train")


def test_bradley_terry_loss_is_the_mean_negative_log_sigmoid_of_the_margin():
    rc, rr = torch.tensor([2.0, -1.0, 0.0, 30.0]), torch.tensor([0.5, 1.0, 0.0, -30.0])
    expected = np.mean([math.log1p(math.exp(-(a - b))) for a, b in zip(rc.tolist(), rr.tolist())])
    assert abs(P.bradley_terry_loss(rc, rr).item() - expected) < 1e-6
    assert abs(P.bradley_terry_loss(torch.tensor([0.0]), torch.tensor([0.0])).item() - math.log(2)) < 1e-7
    big = P.bradley_terry_loss(torch.tensor([-200.0]), torch.tensor([0.0]))
    assert torch.isfinite(big) and abs(big.item() - 200.0) < 1e-3  # stable far from 0
    with pytest.raises(ValueError, match="one chosen and one rejected"):
        P.bradley_terry_loss(torch.zeros(2), torch.zeros(3))


def test_wilson_interval_and_accuracy():
    lo, hi = P.wilson_interval(50, 100)
    assert abs(lo - 0.4038) < 1e-3 and abs(hi - 0.5962) < 1e-3
    assert P.wilson_interval(0, 10)[0] == 0.0 and P.wilson_interval(10, 10)[1] == 1.0
    assert P.preference_accuracy([1, 2, 3], [0, 2, 4]) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        P.wilson_interval(3, 2)


def _independent_dpo(pol_c, pol_r, ref_c, ref_r, mask_c, mask_r, beta):
    """DPO from per-token log-probabilities, in float64 NumPy: a computation independent of the package."""
    s = lambda lp, m: (np.asarray(lp, dtype=np.float64) * np.asarray(m, dtype=np.float64)).sum(-1)  # noqa: E731
    z = beta * ((s(pol_c, mask_c) - s(ref_c, mask_c)) - (s(pol_r, mask_r) - s(ref_r, mask_r)))
    return float(np.mean(np.logaddexp(0.0, -z)))


@pytest.mark.parametrize("beta", [0.05, 0.1, 0.5])
def test_dpo_loss_matches_an_independent_computation(beta):
    g = torch.Generator().manual_seed(3)
    shape = (5, 9)
    tok = {k: -torch.rand(shape, generator=g) * 4 for k in ("pc", "pr", "rc", "rr")}
    mask_c, mask_r = (torch.rand(shape, generator=g) > 0.3), (torch.rand(shape, generator=g) > 0.3)
    seq = lambda lp, m: (lp * m).sum(-1)  # noqa: E731
    loss, chosen, rejected = P.dpo_loss(seq(tok["pc"], mask_c), seq(tok["pr"], mask_r), seq(tok["rc"], mask_c),
                                        seq(tok["rr"], mask_r), beta)
    expected = _independent_dpo(tok["pc"], tok["pr"], tok["rc"], tok["rr"], mask_c, mask_r, beta)
    assert abs(loss.item() - expected) < 1e-5
    torch.testing.assert_close(chosen, beta * (seq(tok["pc"], mask_c) - seq(tok["rc"], mask_c)))
    # at the start of training policy == reference: every implicit reward is 0 and the loss is log 2
    same, _, _ = P.dpo_loss(seq(tok["pc"], mask_c), seq(tok["pr"], mask_r), seq(tok["pc"], mask_c), seq(tok["pr"], mask_r), beta)
    assert abs(same.item() - math.log(2)) < 1e-6


def test_token_logps_match_the_cross_entropy_on_the_masked_positions():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 6, 11, generator=g)
    labels = torch.tensor([[-100, -100, 3, 4, 5, -100], [-100, 7, 1, -100, -100, -100]])
    logps, mask = P.token_logps(logits, labels)
    assert logps.shape == mask.shape == (2, 5)
    ce = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 11), labels[:, 1:].reshape(-1), ignore_index=-100, reduction="sum")
    assert abs(-logps.sum().item() - ce.item()) < 1e-5
    assert (logps[~mask] == 0).all() and mask.sum().item() == 5


def test_processed_probs_follow_temperature_top_k_and_top_p():
    logits = torch.tensor([2.0, 1.0, 0.5, -1.0, -3.0])
    p = P.processed_probs(logits, temperature=0.5)
    torch.testing.assert_close(p, torch.softmax(logits / 0.5, -1))
    p = P.processed_probs(logits, top_k=2)
    assert (p[2:] == 0).all() and abs(p.sum().item() - 1) < 1e-6
    full = torch.softmax(logits, -1)  # 0.61, 0.22, 0.14, ...: top-p 0.7 keeps the two first (0.61 < 0.7 <= 0.83)
    p = P.processed_probs(logits, top_p=0.7)
    assert (p > 0).tolist() == [True, True, False, False, False]
    torch.testing.assert_close(p[:2], full[:2] / full[:2].sum())
    assert P.processed_probs(torch.stack([logits, logits]), top_p=0.7).shape == (2, 5)


def test_best_of_n_takes_the_highest_score_per_prompt():
    replies, idx = P.best_of_n([["a", "b", "c"], ["d", "e"]], [[0.1, 0.9, 0.3], [2.0, 2.0]])
    assert replies == ["b", "d"] and idx == [1, 0]
    with pytest.raises(ValueError, match="one score per candidate"):
        P.best_of_n([["a"]], [[1.0, 2.0]])


class _TinyLM(torch.nn.Module):
    """A causal 'LM' whose logits depend on the current token only: enough to test the log-prob plumbing."""

    def __init__(self, vocab=50):
        super().__init__()
        self.emb = torch.nn.Embedding(vocab, vocab)

    def forward(self, input_ids, attention_mask=None):
        return type("Out", (), {"logits": self.emb(input_ids)})()


def test_sequence_logps_sum_the_response_tokens_of_a_padded_batch():
    torch.manual_seed(0)
    lm = _TinyLM()
    examples = [{"input_ids": [1, 2, 3, 4], "attention_mask": [1] * 4, "labels": [-100, -100, 3, 4]},
                {"input_ids": [5, 6, 7], "attention_mask": [1] * 3, "labels": [-100, 6, 7]}]
    batch = sft.Collator(0)(examples)
    got = P.sequence_logps(lm, batch)
    for row, e in enumerate(examples):
        logits = lm(torch.tensor([e["input_ids"]])).logits[0]
        want = sum(torch.log_softmax(logits[t - 1], -1)[e["input_ids"][t]].item() for t in range(len(e["labels"])) if e["labels"][t] != -100)
        assert abs(got[row].item() - want) < 1e-5


def test_train_dpo_moves_the_policy_towards_the_chosen_replies():
    torch.manual_seed(0)
    lm = _TinyLM(20)
    pairs = [({"input_ids": [1, 2, 3], "attention_mask": [1] * 3, "labels": [-100, 2, 3]},
              {"input_ids": [1, 2, 9], "attention_mask": [1] * 3, "labels": [-100, 2, 9]})] * 4
    ref = P.policy_logps(lm, pairs, pad_id=0)  # a plain model: the reference is the model before training
    history = P.train_dpo(lm, pairs, pad_id=0, beta=0.5, lr=0.1, steps=8, batch_size=2, reference=ref)
    assert history["loss"][0] == pytest.approx(math.log(2), abs=1e-5)
    assert history["loss"][-1] < history["loss"][0] and history["margin"][-1] > 0
