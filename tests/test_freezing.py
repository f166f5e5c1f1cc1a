"""Freezing strategies on the real packaged encoder (heads.classifier): which parameters train."""

import pytest
import torch

from finetune_utils import data, freezing, heads, models, training

LABELS = ["negative", "neutral", "positive"]


@pytest.fixture
def model():
    return heads.classifier(LABELS)


def trainable_names(model):
    return {n for n, p in model.named_parameters() if p.requires_grad}


def test_head_only_leaves_exactly_the_classifier_trainable(model):
    freezing.apply_strategy(model, "head_only")
    assert trainable_names(model) == {"classifier.weight", "classifier.bias"}
    summary = freezing.trainable_summary(model)
    hidden = model.config.hidden_size
    assert summary["trainable"] == hidden * len(LABELS) + len(LABELS)
    assert summary["total"] == models.count_parameters(model)
    assert 0 < summary["trainable_share"] < 1e-3


@pytest.mark.parametrize("k", [0, 1, 2, 6])
def test_last_k_trains_exactly_the_last_layers_pooler_and_head(model, k):
    n_layers = model.config.num_hidden_layers
    assert n_layers == 6
    freezing.apply_strategy(model, "last_k", k=k)
    for name, param in model.named_parameters():
        if name.startswith("classifier."):
            expected = True
        elif name.startswith("bert.pooler."):
            expected = k > 0
        elif name.startswith("bert.encoder.layer."):
            expected = int(name.split(".")[3]) >= n_layers - k
        else:  # embeddings
            assert name.startswith("bert.embeddings."), name
            expected = False
        assert param.requires_grad is expected, f"{name}: requires_grad should be {expected} for k={k}"


def test_last_k_equal_to_depth_trains_everything_but_the_embeddings(model):
    freezing.unfreeze_last_layers(model, 6)
    blocks = freezing.trainable_by_block(model)
    assert blocks["embeddings"]["trainable"] == 0
    for name, row in blocks.items():
        if name != "embeddings":
            assert row["trainable"] == row["total"] > 0, name


@pytest.mark.parametrize("k", [-1, 7, 1.5, "2", True, None])
def test_bad_k_raises_a_clear_error(model, k):
    with pytest.raises(ValueError, match=r"k must be an int between 0 and 6"):
        freezing.apply_strategy(model, "last_k", k=k)


def test_unknown_strategy_raises(model):
    with pytest.raises(ValueError, match=r"Unknown strategy 'frozen'.*head_only"):
        freezing.apply_strategy(model, "frozen")


def test_lora_options_with_another_strategy_raise(model):
    with pytest.raises(ValueError, match="only apply to strategy='lora'"):
        freezing.apply_strategy(model, "head_only", r=4)


def test_full_unfreezes_a_previously_frozen_model(model):
    freezing.freeze_encoder(model)
    freezing.apply_strategy(model, "full")
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("r", [4, 8])
def test_lora_trainable_count_matches_the_hand_computed_count(model, r):
    cfg = model.config
    d, n_layers, n_labels = cfg.hidden_size, cfg.num_hidden_layers, len(LABELS)
    # query and value are (d -> d) linear layers: A is (r, d), B is (d, r)
    per_matrix = r * (d + d)
    expected = 2 * per_matrix * n_layers + (d * n_labels + n_labels)  # adapters + the classifier
    base_total = models.count_parameters(model)
    lora = freezing.apply_strategy(model, "lora", r=r, target_modules=("query", "value"))
    summary = freezing.trainable_summary(lora)
    assert summary["trainable"] == expected
    # every trainable tensor is an adapter or (a trainable copy of) the classifier
    for name, param in lora.named_parameters():
        if param.requires_grad:
            assert "lora_" in name or "classifier" in name, name
    # peft adds the adapters and keeps a frozen copy of the original classifier beside the trainable one
    assert summary["total"] == base_total + 2 * per_matrix * n_layers + (d * n_labels + n_labels)


def test_lora_on_the_feed_forward_counts_in_and_out_sizes():
    model = heads.classifier(LABELS)
    cfg = model.config
    lora = freezing.apply_lora(model, r=2, target_modules=("intermediate.dense",))
    expected = 2 * (cfg.hidden_size + cfg.intermediate_size) * cfg.num_hidden_layers + (cfg.hidden_size + 1) * 3
    assert freezing.trainable_summary(lora)["trainable"] == expected


def test_lora_rejects_bad_rank_and_double_wrapping(model):
    with pytest.raises(ValueError, match="rank r must be a positive int"):
        freezing.apply_lora(model, r=0)
    lora = freezing.apply_lora(model, r=2)
    with pytest.raises(ValueError, match="already has LoRA adapters"):
        freezing.apply_lora(lora)


def test_trainable_by_block_sees_lora_adapters_inside_the_layers(model):
    lora = freezing.apply_lora(model, r=4)
    blocks = freezing.trainable_by_block(lora)
    assert list(blocks)[:2] == ["embeddings", "layer.0"]
    assert blocks["embeddings"]["trainable"] == 0
    assert blocks["pooler"]["trainable"] == 0
    for i in range(6):
        assert blocks[f"layer.{i}"]["trainable"] == 2 * 4 * (384 + 384)
    assert blocks["head"]["trainable"] == 384 * 3 + 3


def test_memory_estimate_counts_adamw_state_for_trainable_parameters_only(model):
    full = freezing.memory_estimate(model)
    n = models.count_parameters(model)
    assert full["weights"] == full["gradients"] == 4 * n  # float32
    assert full["optimizer_state"] == 2 * 4 * n
    assert full["total"] == 4 * 4 * n
    freezing.freeze_encoder(model)
    frozen = freezing.memory_estimate(model)
    assert frozen["weights"] == full["weights"]
    assert frozen["optimizer_state"] == 2 * 4 * (384 * 3 + 3)
    assert freezing.memory_estimate(model, optimizer="sgd")["optimizer_state"] == 0
    with pytest.raises(ValueError, match="optimizer must be one of"):
        freezing.memory_estimate(model, optimizer="lion")


def test_one_training_step_with_a_frozen_encoder_changes_only_the_head(model):
    ds, labels = data.load("support_sentiment")
    tokenizer = models.load_encoder_tokenizer()
    small = training.tokenize(ds["train"].select(range(8)), tokenizer, max_length=32)
    freezing.apply_strategy(model, "head_only")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    # 8 examples, batch 8, 1 epoch: exactly one optimizer step (no warm-up step at lr 0)
    history = training.train(model, small, tokenizer, epochs=1, batch_size=8, lr=1e-2, warmup_ratio=0.0, progress=False)
    assert history["step"] == [1]
    for name, param in model.named_parameters():
        if name.startswith("classifier."):
            assert not torch.equal(param, before[name]), f"{name} did not change after a training step"
        else:
            assert torch.equal(param, before[name]), f"frozen {name} changed during training"


def test_block_of_names_bert_and_causal_lm_parameters():
    assert freezing.block_of("bert.embeddings.word_embeddings.weight") == "embeddings"
    assert freezing.block_of("bert.encoder.layer.5.output.dense.weight") == "layer.5"
    assert freezing.block_of("base_model.model.bert.encoder.layer.0.attention.self.query.lora_A.default.weight") == "layer.0"
    assert freezing.block_of("bert.pooler.dense.bias") == "pooler"
    assert freezing.block_of("classifier.weight") == "head"
    assert freezing.block_of("model.layers.12.self_attn.q_proj.weight") == "layer.12"
    assert freezing.block_of("model.embed_tokens.weight") == "embeddings"
    assert freezing.block_of("lm_head.weight") == "head"


def test_lora_takes_the_task_type_from_the_model_class():
    token_model = heads.classifier(LABELS, task="token")
    lora = freezing.apply_lora(token_model, r=2)
    assert lora.peft_config["default"].task_type == "TOKEN_CLS"
    trainable = {n for n, p in lora.named_parameters() if p.requires_grad}
    assert any("classifier" in n for n in trainable), "the token-classification head must stay trainable"
    assert all("lora_" in n or "classifier" in n for n in trainable)


# --------------------------------------------------------------------------- loading adapters


def _lora_bert(tmp_path):
    model = freezing.apply_lora(heads.classifier(["a", "b", "c"], seed=0), r=4)
    folder = tmp_path / "bert-adapter"
    model.save_pretrained(folder)
    return model, folder


def test_load_adapter_round_trip(tmp_path):
    import torch

    trained, folder = _lora_bert(tmp_path)
    with torch.no_grad():  # give the adapter non-zero B so that it changes the output
        for name, param in trained.named_parameters():
            if "lora_B" in name:
                param.fill_(0.01)
    trained.save_pretrained(folder)
    loaded = freezing.load_adapter(heads.classifier(["a", "b", "c"], seed=0), folder)
    ids = {"input_ids": torch.tensor([[101, 2023, 2003, 102]]), "attention_mask": torch.ones(1, 4, dtype=torch.long)}
    trained.eval(), loaded.eval()
    assert torch.allclose(trained(**ids).logits, loaded(**ids).logits, atol=1e-6)


def test_adapter_for_another_architecture_is_refused(tmp_path):
    from finetune_utils import models

    _, folder = _lora_bert(tmp_path)
    chat = models.load_causal_lm(with_tokenizer=False)
    with pytest.raises(freezing.AdapterMismatchError, match="does not have: it was trained for another model"):
        freezing.load_adapter(chat, folder)


def test_adapter_for_another_size_is_refused(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    from finetune_utils import models

    small = LlamaForCausalLM(LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=4, vocab_size=1000))
    folder = tmp_path / "small-llama-adapter"
    freezing.apply_lora(small, r=4, dropout=0.0, target_modules=("q_proj", "v_proj")).save_pretrained(folder)
    chat = models.load_causal_lm(with_tokenizer=False)
    with pytest.raises(freezing.AdapterMismatchError, match="expects size 64, the layer has 576"):
        freezing.load_adapter(chat, folder)


def test_a_folder_that_is_not_an_adapter(tmp_path):
    with pytest.raises(freezing.AdapterMismatchError, match="no adapter_config.json"):
        freezing.load_adapter(heads.classifier(["a", "b"]), tmp_path)
