"""Drafter config parsing, validation against the target, and z-lab checkpoint round trips."""
import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from sglang_dflash.config import (DFlashConfigError, build_target_layer_ids, load_drafter_config,
                                  parse_drafter_config, raw_config_file, validate_against_target)
from sglang_dflash.model import DFlashDrafter
from sglang_dflash.testing import random_drafter, tiny_target

TARGET = dict(hidden_size=64, num_hidden_layers=4, vocab_size=256, num_attention_heads=4)


def zlab_qwen3_8b_like():
    """The layout of the first z-lab drafters: block_size at top level."""
    return {
        "architectures": ["DFlashDraftModel"], "model_type": "qwen3", "hidden_size": 64,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
        "intermediate_size": 128, "vocab_size": 256, "rms_norm_eps": 1e-6, "rope_theta": 1000000,
        "max_position_embeddings": 4096, "num_target_layers": 4, "block_size": 16,
        "dflash_config": {"mask_token_id": 3, "target_layer_ids": [1, 2]},
    }


def test_layouts_old_and_new():
    old = parse_drafter_config(zlab_qwen3_8b_like())
    new_raw = zlab_qwen3_8b_like()
    del new_raw["block_size"]
    new_raw["dflash_config"]["block_size"] = 16
    new = parse_drafter_config(new_raw)
    assert old.block_size == new.block_size == 16 and old.target_layer_ids == (1, 2)
    assert old.mask_token_id == 3 and old.num_key_value_heads == 2


def test_default_target_layer_ids():
    assert build_target_layer_ids(36, 5) == [1, 9, 17, 25, 33]
    assert build_target_layer_ids(24, 5) == [1, 6, 11, 16, 21]
    assert build_target_layer_ids(60, 6) == [1, 12, 23, 35, 46, 57]
    assert build_target_layer_ids(28, 1) == [14]
    raw = zlab_qwen3_8b_like()
    del raw["dflash_config"]["target_layer_ids"]
    raw["num_target_layers"] = 36
    assert parse_drafter_config(raw).target_layer_ids == (1, 35 - 2)


def test_sliding_and_causal_layers():
    raw = zlab_qwen3_8b_like()
    raw.update(layer_types=["sliding_attention", "full_attention"], sliding_window=8)
    cfg = parse_drafter_config(raw)
    assert cfg.layer_is_causal(0) and not cfg.layer_is_causal(1)
    assert cfg.layer_window(0) == 8 and cfg.layer_window(1) is None
    raw["is_causal"] = False
    cfg = parse_drafter_config(raw)
    assert not cfg.layer_is_causal(0)


def test_raw_config_file_keeps_what_transformers_rewrites(tmp_path):
    """A qwen3-type drafter with sliding layers but no use_sliding_window: transformers'
    Qwen3Config drops its sliding_window; the file itself (what we parse) keeps it."""
    from transformers import AutoConfig

    raw = zlab_qwen3_8b_like()
    raw.update(layer_types=["sliding_attention", "full_attention"], sliding_window=2048)
    (tmp_path / "config.json").write_text(json.dumps(raw))
    assert AutoConfig.from_pretrained(tmp_path).sliding_window is None
    file = raw_config_file(str(tmp_path))
    assert file == str(tmp_path / "config.json")
    assert load_drafter_config(file).layer_window(0) == 2048
    assert raw_config_file(str(tmp_path / "missing")) is None
    assert raw_config_file("no-such-org/no-such-drafter") is None  # not in the HF cache
    assert raw_config_file(None) is None


def mutate(**changes):
    raw = zlab_qwen3_8b_like()
    for key, value in changes.items():
        if key.startswith("dflash_"):
            raw["dflash_config"][key[len("dflash_"):]] = value
        elif value is None:
            raw.pop(key, None)
        else:
            raw[key] = value
    return raw


BAD_CONFIGS = [
    (mutate(architectures=["DFlash2DraftModel"]), "architectures", "DFlash2DraftModel"),
    (mutate(architectures=["MuseGlimmerAssistantModel"]), "architectures", "MuseGlimmerAssistantModel"),
    (mutate(architectures=["LlamaForCausalLM"]), "architectures", "LlamaForCausalLM"),
    (mutate(block_size=1), "block_size", "1"),
    (mutate(block_size="16"), "block_size", "'16'"),
    (mutate(dflash_block_size=8), "dflash_config.block_size", "8"),
    (mutate(dflash_mask_token_id=None), "mask_token_id", "None"),
    (mutate(dflash_mask_token_id=300), "mask_token_id", "300"),
    (mutate(dflash_target_layer_ids=[]), "target_layer_ids", "[]"),
    (mutate(dflash_target_layer_ids=[1, 4]), "target_layer_ids", "[1, 4]"),
    (mutate(hidden_size=None), "hidden_size", "None"),
    (mutate(num_key_value_heads=3), "num_key_value_heads", "3"),
    (mutate(hidden_act="gelu"), "hidden_act", "gelu"),
    (mutate(layer_types=["full_attention"]), "layer_types", "full_attention"),
    (mutate(layer_types=["sliding_attention", "full_attention"]), "sliding_window", "None"),
    (mutate(layer_types=["local", "full_attention"]), "layer_types", "local"),
    (mutate(is_causal="yes"), "is_causal", "yes"),
    (mutate(rms_norm_eps=0), "rms_norm_eps", "0"),
    ([1, 2], "<root>", "list"),
]


@pytest.mark.parametrize("raw, field, actual", BAD_CONFIGS)
def test_malformed_configs_name_the_field(raw, field, actual):
    with pytest.raises(DFlashConfigError) as err:
        parse_drafter_config(raw)
    message = str(err.value)
    assert field in message and "expected" in message and actual in message


@pytest.mark.parametrize("target_change, field", [
    (dict(hidden_size=128), "hidden_size"),
    (dict(num_hidden_layers=3), "num_target_layers"),
    (dict(vocab_size=200), "vocab_size"),
])
def test_mismatched_target(target_change, field):
    cfg = parse_drafter_config(zlab_qwen3_8b_like())
    validate_against_target(cfg, TARGET)
    with pytest.raises(DFlashConfigError, match=field):
        validate_against_target(cfg, {**TARGET, **target_change})


def test_mask_id_beyond_target_vocab():
    raw = zlab_qwen3_8b_like()
    del raw["vocab_size"]
    raw["dflash_config"]["mask_token_id"] = 255
    cfg = parse_drafter_config(raw)
    with pytest.raises(DFlashConfigError, match="mask_token_id"):
        validate_against_target(cfg, {**TARGET, "vocab_size": 200})


def test_layer_ids_beyond_target_depth():
    raw = zlab_qwen3_8b_like()
    del raw["num_target_layers"]
    cfg = parse_drafter_config(raw)
    with pytest.raises(DFlashConfigError, match="target_layer_ids"):
        validate_against_target(cfg, {**TARGET, "num_hidden_layers": 2})


def test_multimodal_target_config_uses_text_config():
    cfg = parse_drafter_config(zlab_qwen3_8b_like())
    validate_against_target(cfg, {"model_type": "wrapper", "text_config": TARGET})


def test_unreadable_files(tmp_path):
    with pytest.raises(DFlashConfigError, match="config.json"):
        load_drafter_config(str(tmp_path))
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(DFlashConfigError, match="valid JSON"):
        load_drafter_config(str(tmp_path))


def outputs(drafter, seed=0):
    g = torch.Generator().manual_seed(seed)
    H = drafter.config.hidden_size
    K = drafter.config.num_context_layers
    dtype = next(drafter.parameters()).dtype
    feats = torch.randn(2, 6, K * H, generator=g, dtype=dtype)
    ctx = drafter.context_kv(drafter.project_context(feats), torch.arange(6).expand(2, -1))
    noise = torch.randn(2, 4, H, generator=g, dtype=dtype)
    return drafter(noise, torch.arange(6, 10).expand(2, -1), ctx)


def test_checkpoint_round_trip(tmp_path):
    target = tiny_target("qwen3")
    drafter = random_drafter(target, layers=2, block_size=8)
    drafter.save_pretrained(str(tmp_path))
    names = set(load_file(str(tmp_path / "model.safetensors")))
    assert "fc.weight" in names and "layers.1.self_attn.k_norm.weight" in names
    assert not any("embed" in n or "lm_head" in n or "rotary" in n for n in names)
    raw = json.loads((tmp_path / "config.json").read_text())
    assert raw["architectures"] == ["DFlashDraftModel"] and raw["dflash_config"]["mask_token_id"] == 1
    loaded = DFlashDrafter.from_pretrained(str(tmp_path), dtype=torch.float64, target_config=target.config)
    assert loaded.config == drafter.config
    assert torch.equal(outputs(loaded), outputs(drafter))


def test_checkpoint_prefix_and_errors(tmp_path):
    target = tiny_target("qwen3")
    drafter = random_drafter(target)
    drafter.save_pretrained(str(tmp_path))
    state = load_file(str(tmp_path / "model.safetensors"))
    save_file({"model." + k: v for k, v in state.items()}, str(tmp_path / "model.safetensors"))
    loaded = DFlashDrafter.from_pretrained(str(tmp_path), dtype=torch.float64)
    assert torch.equal(outputs(loaded), outputs(drafter))

    broken = dict(state)
    broken["fc.weight"] = broken["fc.weight"][:, :10].contiguous()
    save_file(broken, str(tmp_path / "model.safetensors"))
    with pytest.raises(DFlashConfigError, match=r"fc.weight.*shape"):
        DFlashDrafter.from_pretrained(str(tmp_path))
    missing = {k: v for k, v in state.items() if k != "norm.weight"}
    save_file(missing, str(tmp_path / "model.safetensors"))
    with pytest.raises(DFlashConfigError, match="missing"):
        DFlashDrafter.from_pretrained(str(tmp_path))
    extra = {**state, "layers.0.self_attn.sinks": torch.zeros(4)}
    save_file(extra, str(tmp_path / "model.safetensors"))
    with pytest.raises(DFlashConfigError, match="unexpected"):
        DFlashDrafter.from_pretrained(str(tmp_path))


def test_sliding_layer_mask():
    raw = zlab_qwen3_8b_like()
    raw.update(layer_types=["sliding_attention", "full_attention"], sliding_window=3)
    drafter = DFlashDrafter(parse_drafter_config(raw))
    ctx = drafter.context_kv(torch.zeros(1, 6, 64), torch.arange(6).view(1, -1))
    pos = torch.arange(6, 10).view(1, -1)
    sliding = drafter.layer_mask(0, pos, ctx)[0, 0]
    full = drafter.layer_mask(1, pos, ctx)[0, 0]
    assert full.all()
    # query at position 6 (window 3): context 4, 5 and itself; causal inside the block
    assert sliding[0].tolist() == [False] * 4 + [True, True] + [True, False, False, False]
    assert sliding[3].tolist() == [False] * 6 + [False, True, True, True]


@pytest.mark.parametrize("extra, theta", [
    (dict(rope_theta=1000000.0), 1e6),
    (dict(rope_theta=None, rope_parameters=dict(rope_theta=500000.0, rope_type="default")), 5e5),
])
def test_drafter_rope_uses_its_own_theta(extra, theta):
    from sglang_dflash.model import Rotary
    cfg = parse_drafter_config({**zlab_qwen3_8b_like(), **extra})
    expected = 1.0 / (theta ** (torch.arange(0, 16, 2).float() / 16))
    assert torch.allclose(Rotary(cfg).inv_freq, expected)


def test_drafter_rope_scaling_is_applied():
    from sglang_dflash.model import Rotary
    plain = Rotary(parse_drafter_config(zlab_qwen3_8b_like()))
    yarn = Rotary(parse_drafter_config({**zlab_qwen3_8b_like(), "rope_scaling": dict(
        rope_type="yarn", factor=4.0, original_max_position_embeddings=1024)}))
    assert not torch.allclose(plain.inv_freq, yarn.inv_freq) and yarn.scaling > 1.0
