"""Which parameters train: full fine-tuning, a frozen encoder, the last k layers, or LoRA.

Fine-tuning updates the pre-trained parameters θ̂ → θ̃ together with the new head ω.
Freezing keeps (part of) θ̂ fixed: fewer parameters to update, less memory for
optimizer state, faster epochs, at some cost in accuracy. LoRA keeps θ̂ frozen and
learns a low-rank update ΔW = B·A beside chosen weight matrices.

    from finetune_utils import freezing, heads
    model = heads.classifier(label_names)
    model = freezing.apply_strategy(model, "last_k", k=2)
    freezing.trainable_summary(model)      # {'trainable': ..., 'total': ..., 'trainable_share': ...}
    freezing.trainable_by_block(model)     # which blocks train: embeddings, layer.0 … layer.5, pooler, head
"""

from __future__ import annotations

import re

from . import models

STRATEGIES = ("full", "head_only", "last_k", "lora")

#: peft task types, by the end of the model's class name (used when ``task_type`` is not given).
_PEFT_TASK_TYPES = {
    "ForSequenceClassification": "SEQ_CLS",
    "ForTokenClassification": "TOKEN_CLS",
    "ForCausalLM": "CAUSAL_LM",
    "ForQuestionAnswering": "QUESTION_ANS",
}


def unwrap(model):
    """The plain transformers model inside a peft wrapper (or the model itself)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) and hasattr(model, "peft_config") else model


def _encoder(model):
    """The pre-trained body (e.g. ``model.bert``) of a task model."""
    model = unwrap(model)
    base = getattr(model, "base_model_prefix", None)
    if base and hasattr(model, base):
        return getattr(model, base)
    raise ValueError(
        f"{type(model).__name__} has no pre-trained body to freeze (no base_model_prefix attribute): "
        "pass a task model such as heads.classifier(...), not a bare encoder."
    )


def _layers(body):
    """The stack of transformer layers of a pre-trained body (BERT: ``encoder.layer``; Llama: ``layers``)."""
    encoder = getattr(body, "encoder", None)
    for layers in (getattr(encoder, "layer", None), getattr(body, "layers", None), getattr(body, "h", None)):
        if layers is not None:
            return list(layers)
    raise ValueError(f"cannot find the transformer layers of {type(body).__name__} (looked for encoder.layer, layers, h)")


def freeze_encoder(model):
    """Freeze every pre-trained parameter; only the new head trains. Returns the model. Taught in lesson 02."""
    for param in _encoder(model).parameters():
        param.requires_grad = False
    return model


def unfreeze_all(model):
    """Make every parameter trainable again (full fine-tuning). Returns the model."""
    for param in model.parameters():
        param.requires_grad = True
    return model


def unfreeze_last_layers(model, k: int):
    """Freeze the encoder except its last ``k`` transformer layers (and the pooler).

    ``k=0`` is the same as :func:`freeze_encoder`; ``k`` equal to the number of layers
    trains every layer but the embeddings. The head always stays trainable.
    """
    body = _encoder(model)
    layers = _layers(body)
    if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= len(layers):
        raise ValueError(
            f"k must be an int between 0 and {len(layers)} (the encoder's layers), got {k!r}; "
            f"k=0 freezes the whole encoder, k={len(layers)} trains every layer but the embeddings."
        )
    freeze_encoder(model)
    for layer in layers[len(layers) - k :]:
        for param in layer.parameters():
            param.requires_grad = True
    if k > 0 and getattr(body, "pooler", None) is not None:
        for param in body.pooler.parameters():
            param.requires_grad = True
    return model


def apply_lora(
    model,
    r: int = 8,
    alpha: int = 16,
    dropout: float = 0.1,
    target_modules=("query", "value"),
    task_type: str | None = None,
    layers=None,
):
    """Wrap ``model`` with LoRA adapters (peft); the new head stays fully trainable. Taught in lesson 03.

    Every linear layer whose name ends with one of ``target_modules`` (BERT's attention
    ``query`` and ``value`` by default) gets a low-rank update ΔW = (alpha / r) · B·A,
    with A: (r, in) and B: (out, r), so r·(in + out) new parameters per matrix; the
    original weights are frozen. ``task_type`` ("SEQ_CLS", "TOKEN_CLS", "CAUSAL_LM")
    is taken from the model's class when not given; for classification tasks peft keeps
    the head (``classifier``) trainable. ``layers`` (layer indices) restricts the
    adapters to some transformer blocks; adapting only the top blocks also saves the
    backward pass through the blocks below them. Returns the ``PeftModel``.
    """
    import warnings

    from peft import LoraConfig, get_peft_model

    if hasattr(model, "peft_config"):
        raise ValueError("the model already has LoRA adapters: apply LoRA to a fresh model (heads.classifier(...))")
    if isinstance(r, bool) or not isinstance(r, int) or r < 1:
        raise ValueError(f"the LoRA rank r must be a positive int, got {r!r}")
    if isinstance(target_modules, str):
        target_modules = (target_modules,)
    if task_type is None:
        name = type(model).__name__
        task_type = next((t for end, t in _PEFT_TASK_TYPES.items() if name.endswith(end)), None)
        if task_type is None:
            raise ValueError(f"cannot tell the peft task type of {name}; pass task_type (e.g. 'SEQ_CLS')")
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(target_modules),
                        task_type=task_type, layers_to_transform=list(layers) if layers is not None else None)
    with warnings.catch_warnings():  # peft calls a transformers method that transformers 5 deprecates
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return get_peft_model(model, config)


def apply_strategy(model, strategy: str, k: int = 2, **lora_kwargs):
    """Apply one of :data:`STRATEGIES` and return the model to train. Taught in lesson 02.

    - ``"full"``: every parameter trains (θ̂ → θ̃ and ω̃);
    - ``"head_only"``: the encoder is frozen, only the new head trains;
    - ``"last_k"``: the last ``k`` layers, the pooler and the head train;
    - ``"lora"``: LoRA adapters (``lora_kwargs`` go to :func:`apply_lora`) and the head train.

    For ``"lora"`` the returned object is a new ``PeftModel`` wrapping ``model``: train that one.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"Unknown strategy {strategy!r}; choose one of {STRATEGIES}")
    if lora_kwargs and strategy != "lora":
        raise ValueError(f"{sorted(lora_kwargs)} only apply to strategy='lora', not {strategy!r}")
    if strategy == "full":
        return unfreeze_all(model)
    if strategy == "head_only":
        return freeze_encoder(model)
    if strategy == "last_k":
        return unfreeze_last_layers(model, k)
    return apply_lora(model, **lora_kwargs)


def trainable_summary(model) -> dict:
    """Trainable and total parameter counts (shared tensors counted once). Taught in lesson 03."""
    total = models.count_parameters(model)
    trainable = models.count_parameters(model, trainable_only=True)
    return {"trainable": trainable, "total": total, "trainable_share": trainable / total}


_LAYER = re.compile(r"\.(?:layer|layers|h)\.(\d+)\.")


def pretrained_name(name: str) -> str:
    """A parameter's name as in the pre-trained encoder: without peft's wrappers and the task model's "bert.".

    peft renames an adapted weight ``...query.weight`` to ``...query.base_layer.weight``
    (the frozen original); that name is mapped back, so the original is compared.
    """
    for prefix in ("base_model.model.", "bert."):
        if name.startswith(prefix):
            name = name[len(prefix):]
    return name.replace(".base_layer.", ".")


def block_of(name: str) -> str:
    """The block a parameter name belongs to: "embeddings", "layer.<i>", "pooler" or "head". Taught in lesson 03.

    LoRA adapters count in the layer they adapt; everything outside the pre-trained
    body's embeddings, layers and pooler (the classifier, a language-model head) is "head".
    """
    match = _LAYER.search(name)
    if match:
        return f"layer.{match.group(1)}"
    if "embeddings." in name or "embed_tokens." in name:
        return "embeddings"
    if "pooler." in name:
        return "pooler"
    return "head"


def trainable_by_block(model) -> dict:
    """Per block (embeddings, layer.0 …, pooler, head): ``{"trainable": n, "total": n}``, in model order.

    Shows at a glance which part of the network a strategy updates.
    Taught in lesson 03.
    """
    blocks = {}
    for name, param in models.unique_parameters(model):
        row = blocks.setdefault(block_of(name), {"trainable": 0, "total": 0})
        row["total"] += param.numel()
        if param.requires_grad:
            row["trainable"] += param.numel()
    return blocks


def memory_estimate(model, optimizer: str = "adamw") -> dict:
    """Bytes that training needs for parameters, gradients and optimizer state (not activations). Taught in lesson 03.

    - ``weights``: every parameter, trainable or not (its dtype's size each);
    - ``gradients``: one value per trainable parameter;
    - ``optimizer_state``: AdamW keeps two running averages (m and v) per trainable
      parameter, plain SGD none (``optimizer="sgd"``).

    Activations kept for the backward pass come on top; they grow with batch size ×
    sequence length and with how deep the backward pass goes.
    """
    states = {"adamw": 2, "adam": 2, "sgd": 0}
    if optimizer not in states:
        raise ValueError(f"optimizer must be one of {sorted(states)}, got {optimizer!r}")
    weights = gradients = 0
    for _, param in models.unique_parameters(model):
        size = param.numel() * param.element_size()
        weights += size
        if param.requires_grad:
            gradients += size
    state = states[optimizer] * gradients
    return {
        "weights": weights,
        "gradients": gradients,
        "optimizer_state": state,
        "total": weights + gradients + state,
    }


class AdapterMismatchError(ValueError):
    """A saved LoRA adapter does not fit the model it is loaded onto."""


def load_adapter(model, adapter_dir, is_trainable: bool = False):
    """Put a saved LoRA adapter (``peft_model.save_pretrained(adapter_dir)``) on ``model``. Taught in lesson 07.

    Before peft loads it, every adapter matrix is checked against the model: the layer
    it adapts must exist and have the matching input and output sizes. An adapter
    trained on another base model (another architecture, or the same one at another
    size) raises :class:`AdapterMismatchError` naming the first layer that does not
    fit, instead of a size-mismatch error from deep inside PyTorch. Only safetensors
    adapters are read. Returns the ``PeftModel``.
    """
    import json
    from pathlib import Path

    from peft import PeftModel
    from safetensors import safe_open

    adapter_dir = Path(adapter_dir)
    config_file = adapter_dir / "adapter_config.json"
    weights = adapter_dir / "adapter_model.safetensors"
    if not config_file.is_file():
        raise AdapterMismatchError(
            f"{adapter_dir} holds no adapter_config.json: it is not a saved adapter "
            "(save one with peft_model.save_pretrained(folder))"
        )
    if not weights.is_file():
        raise AdapterMismatchError(
            f"{adapter_dir} has no adapter_model.safetensors; the course loads adapters only as safetensors "
            "(peft saves them so by default)"
        )
    base_name = json.loads(config_file.read_text()).get("base_model_name_or_path")
    modules = dict(unwrap(model).named_modules())
    with safe_open(str(weights), framework="pt") as tensors:
        for key in tensors.keys():
            if ".lora_A." not in key and ".lora_B." not in key:
                continue
            name = key.split(".lora_")[0].removeprefix("base_model.model.")
            module = modules.get(name)
            where = f"the adapter in {adapter_dir} (trained on {base_name or 'an unnamed model'})"
            if module is None or not hasattr(module, "in_features"):
                raise AdapterMismatchError(
                    f"{where} adapts the layer {name!r}, which {type(unwrap(model)).__name__} does not have: "
                    "it was trained for another model. Load it onto the base model it was trained on."
                )
            shape = tuple(tensors.get_slice(key).get_shape())
            size, expected = (shape[1], module.in_features) if ".lora_A." in key else (shape[0], module.out_features)
            if size != expected:
                raise AdapterMismatchError(
                    f"{where} does not fit {name!r}: the adapter expects size {size}, the layer has {expected}. "
                    "It was trained on a model of another size; load it onto the base model it was trained on."
                )
    return PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=is_trainable)
