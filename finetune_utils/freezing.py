"""Which parameters train: full fine-tuning, a frozen encoder, the last k layers, or LoRA.

Fine-tuning updates the pre-trained parameters θ̂ → θ̃ together with the new head ω.
Freezing keeps (part of) θ̂ fixed: fewer parameters to update, less memory for
optimizer state, faster epochs, at some cost in accuracy. LoRA keeps θ̂ frozen and
learns a low-rank update ΔW = B·A beside chosen weight matrices.
"""

from __future__ import annotations

STRATEGIES = ("full", "head_only", "last_k", "lora")


def _encoder(model):
    """The pre-trained body (e.g. ``model.bert``) of a task model."""
    base = getattr(model, "base_model_prefix", None)
    if base and hasattr(model, base):
        return getattr(model, base)
    raise ValueError(f"{type(model).__name__} has no pre-trained body to freeze (base_model_prefix)")


def freeze_encoder(model):
    """Freeze every pre-trained parameter; only the new head trains. Returns the model."""
    for param in _encoder(model).parameters():
        param.requires_grad = False
    return model


def unfreeze_last_layers(model, k: int):
    """Freeze the encoder except its last ``k`` transformer layers (and the pooler).

    ``k=0`` is the same as :func:`freeze_encoder`; ``k`` equal to the number of layers
    trains every layer but the embeddings.
    """
    body = _encoder(model)
    layers = body.encoder.layer
    if not isinstance(k, int) or not 0 <= k <= len(layers):
        raise ValueError(f"k must be an int between 0 and {len(layers)} (the encoder's layers), got {k!r}")
    freeze_encoder(model)
    for layer in list(layers)[len(layers) - k :]:
        for param in layer.parameters():
            param.requires_grad = True
    if k > 0 and getattr(body, "pooler", None) is not None:
        for param in body.pooler.parameters():
            param.requires_grad = True
    return model


def apply_lora(model, r: int = 8, alpha: int = 16, dropout: float = 0.1, target_modules=("query", "value"), task_type="SEQ_CLS"):
    """Wrap ``model`` with LoRA adapters (peft); the new head stays fully trainable.

    Returns the ``PeftModel``. ``target_modules`` names the linear layers that get
    a low-rank update (BERT's attention ``query`` and ``value`` by default).
    """
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(target_modules), task_type=task_type
    )
    return get_peft_model(model, config)


def apply_strategy(model, strategy: str, k: int = 2, **lora_kwargs):
    """Apply one of :data:`STRATEGIES` ("full", "head_only", "last_k", "lora")."""
    if strategy == "full":
        return model
    if strategy == "head_only":
        return freeze_encoder(model)
    if strategy == "last_k":
        return unfreeze_last_layers(model, k)
    if strategy == "lora":
        return apply_lora(model, **lora_kwargs)
    raise ValueError(f"Unknown strategy {strategy!r}; choose one of {STRATEGIES}")


def trainable_summary(model) -> dict:
    """Trainable and total parameter counts (shared tensors counted once)."""
    from .models import count_parameters

    total = count_parameters(model)
    trainable = count_parameters(model, trainable_only=True)
    return {"trainable": trainable, "total": total, "trainable_share": trainable / total}
