"""HeartBEiT in PyTorch: timm's BEiT layout and names, sizes, masking, checkpoints, state-dict import."""

from __future__ import annotations

import logging

import pytest

torch = pytest.importorskip("torch")

from export.models.heartbeit import (CONFIGS, HeartBEiT, create_model, load_checkpoint,  # noqa: E402
                                     load_timm_state_dict, relative_position_index, save_checkpoint)

torch.set_num_threads(1)

# The keys of timm's beit_base_patch16_224 state dict for block 0 and the stem/head (timm 0.9-1.0).
TIMM_KEYS = {
    "cls_token", "patch_embed.proj.weight", "patch_embed.proj.bias",
    "blocks.0.gamma_1", "blocks.0.gamma_2", "blocks.0.norm1.weight", "blocks.0.norm1.bias",
    "blocks.0.attn.q_bias", "blocks.0.attn.v_bias", "blocks.0.attn.relative_position_bias_table",
    "blocks.0.attn.qkv.weight", "blocks.0.attn.proj.weight", "blocks.0.attn.proj.bias",
    "blocks.0.norm2.weight", "blocks.0.norm2.bias", "blocks.0.mlp.fc1.weight", "blocks.0.mlp.fc1.bias",
    "blocks.0.mlp.fc2.weight", "blocks.0.mlp.fc2.bias", "fc_norm.weight", "fc_norm.bias", "head.weight", "head.bias",
}


def test_base_is_heartbeit_sized():
    m = create_model("base", num_classes=1000)
    n = sum(p.numel() for p in m.parameters()) - m.mask_token.numel()
    assert 86.4e6 < n < 86.6e6  # timm beit_base_patch16_224: 86.53M
    sd = m.state_dict()
    assert TIMM_KEYS <= set(sd)
    assert "blocks.0.attn.k_bias" not in sd and "pos_embed" not in sd and "blocks.0.attn.qkv.bias" not in sd
    assert tuple(sd["blocks.0.attn.relative_position_bias_table"].shape) == (732, 12)
    assert torch.all(sd["blocks.11.gamma_1"] == 0.1) and torch.all(sd["blocks.11.gamma_2"] == 0.1)
    assert len(m.blocks) == 12 and m.num_features == 768


def test_sizes_share_one_structure():
    assert [CONFIGS[s].embed_dim // CONFIGS[s].num_heads for s in ("tiny", "small", "base")] == [64, 64, 64]
    keys = {s: {k.split(".", 2)[-1] if k.startswith("blocks.") else k for k in create_model(s, 2).state_dict()}
            for s in ("tiny", "small")}
    assert keys["tiny"] == keys["small"]
    with pytest.raises(ValueError, match="unknown HeartBEiT size"):
        create_model("huge")


def test_relative_position_index_matches_timm_layout():
    idx = relative_position_index(14)
    num_rel = 27 * 27 + 3
    assert idx.shape == (197, 197)
    assert idx[0, 0] == num_rel - 1 and idx[0, 5] == num_rel - 3 and idx[5, 0] == num_rel - 2
    # patch i to itself is the centre of the (2G-1)^2 table; a patch one row down is 27 further.
    assert idx[1, 1] == 13 * 27 + 13 and idx[1 + 14, 1] == 14 * 27 + 13 and idx[1, 1 + 1] == 13 * 27 + 12
    assert int(idx[1:, 1:].max()) == 27 * 27 - 1


def test_forward_features_and_mask_token():
    m = create_model("tiny", num_classes=4, depth=2).eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        tokens = m.forward_features(x)
        assert tokens.shape == (2, 196, 192)
        assert m(x).shape == (2, 4)
        mask = torch.zeros(2, 196, dtype=torch.bool)
        assert torch.allclose(m.forward_features(x, mask), tokens, atol=1e-6)
        mask[:, :98] = True
        masked = m.forward_features(x, mask)
        # Fully masking changes every token; the masked image's content no longer matters there.
        x2 = x.clone()
        x2[:, :, :112, :] = torch.randn(2, 3, 112, 224)  # rows 0-6 of patches = patches 0..97
        assert torch.allclose(m.forward_features(x2, mask), masked, atol=1e-5)
        assert not torch.allclose(masked, tokens, atol=1e-3)
    with pytest.raises(ValueError, match="mask shape"):
        m.forward_features(x, torch.zeros(2, 10, dtype=torch.bool))
    # The mask token is learned: it gets a gradient.
    m.train()
    m.forward_features(x, mask).sum().backward()
    assert m.mask_token.grad is not None and m.mask_token.grad.abs().sum() > 0


def test_checkpoint_round_trip(tmp_path):
    m = create_model("tiny", num_classes=3, depth=2).eval()
    path = save_checkpoint(m, tmp_path / "m.pt", extra={"labels": ["a", "b", "c"]})
    m2, extra = load_checkpoint(path)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(m(x), m2(x))
    assert extra["labels"] == ["a", "b", "c"] and m2.cfg == m.cfg
    (tmp_path / "bad.pt").write_bytes(path.read_bytes()[:1000])
    from edge_ecg.errors import InputError

    with pytest.raises(InputError, match="bad.pt"):
        load_checkpoint(tmp_path / "bad.pt")
    torch.save({"model": m.state_dict()}, tmp_path / "timm.pt")
    with pytest.raises(InputError, match="load_timm_state_dict"):
        load_checkpoint(tmp_path / "timm.pt")


def _as_beit_pretrain(sd: dict, depth: int) -> dict:
    """What a BEiT/HeartBEiT pretraining checkpoint looks like: shared table, 1000-class head, wrapper."""
    out = {k: v.clone() for k, v in sd.items() if "relative_position_bias_table" not in k}
    out["rel_pos_bias.relative_position_bias_table"] = sd["blocks.0.attn.relative_position_bias_table"].clone()
    out["rel_pos_bias.relative_position_index"] = relative_position_index(14)
    out["head.weight"] = torch.randn(1000, sd["head.weight"].shape[1])
    out["head.bias"] = torch.zeros(1000)
    for i in range(depth):
        out[f"blocks.{i}.attn.relative_position_index"] = relative_position_index(14)
    return {"model": {f"module.{k}": v for k, v in out.items()}}


def test_timm_state_dict_import_shared_table_and_other_head(caplog):
    src = create_model("tiny", num_classes=5, depth=2).eval()
    ckpt = _as_beit_pretrain(src.state_dict(), depth=2)
    dst = create_model("tiny", num_classes=3, depth=2).eval()
    with caplog.at_level(logging.INFO, logger="export.models.heartbeit"):
        report = load_timm_state_dict(dst, ckpt)
    assert report["dropped"] == ["head.bias", "head.weight"] or sorted(report["dropped"]) == ["head.bias", "head.weight"]
    assert "head of another size" in caplog.text and "shared relative position table" in caplog.text
    table = src.state_dict()["blocks.0.attn.relative_position_bias_table"]
    for blk in dst.blocks:
        assert torch.equal(blk.attn.relative_position_bias_table.data, table)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        # Block 1 now uses block 0's table, so compare with a source that shares it too.
        src.blocks[1].attn.relative_position_bias_table.data.copy_(table)
        assert torch.allclose(dst.forward_features(x), src.forward_features(x), atol=1e-6)
    bad = {"blocks.0.attn.relative_position_bias_table": torch.zeros(10, 3)}
    with pytest.raises(ValueError, match="relative_position_bias_table"):
        load_timm_state_dict(dst, bad)


def test_checkpoint_config_with_an_unknown_key_is_refused_not_dropped(tmp_path):
    import torch

    from edge_ecg.errors import ConfigError
    from export.models.heartbeit import create_model, load_checkpoint, save_checkpoint

    path = save_checkpoint(create_model("tiny", num_classes=2), tmp_path / "m.pt")
    ckpt = torch.load(path, weights_only=False)
    ckpt["config"]["use_abs_pos_emb"] = True  # another architecture's switch: must not load silently
    torch.save(ckpt, path)
    with pytest.raises(ConfigError, match=r"m.pt: config.use_abs_pos_emb: unknown key"):
        load_checkpoint(path)


def test_the_model_declares_its_layer_decay_groups():
    from export.train.finetune import FinetuneConfig, _param_groups

    m = create_model("tiny", num_classes=2)
    assert m.layer_id("cls_token") == 0 and m.layer_id("patch_embed.proj.weight") == 0
    assert m.layer_id("blocks.0.attn.qkv.weight") == 1 and m.layer_id("blocks.5.mlp.fc2.bias") == 6
    assert m.layer_id("fc_norm.weight") == m.layer_id("head.weight") == m.num_layers - 1 == 7
    assert {"cls_token", "mask_token", "blocks.0.attn.relative_position_bias_table"} <= m.no_weight_decay()
    groups = _param_groups(m, FinetuneConfig(layer_decay=0.5, weight_decay=0.05))
    assert sum(len(g["params"]) for g in groups) == len(list(m.parameters()))
    scale = {id(p): g["scale"] for g in groups for p in g["params"]}
    assert scale[id(m.head.weight)] == 1.0 and scale[id(m.patch_embed.proj.weight)] == 0.5 ** 7
    decay = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    assert decay[id(m.cls_token)] == 0.0 and decay[id(m.blocks[0].attn.qkv.weight)] == 0.05
