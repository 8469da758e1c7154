"""HeartBEiT: BEiT (Bao et al. 2021) as timm's ``beit_base_patch16_224`` builds it, for ECG images.

HeartBEiT (Vaid et al., npj Digit Med 2023) is BEiT-base pretrained by masked image modelling on
ECG images and fine-tuned with timm's ``beit_base_patch16_224``: 16x16 patch embedding, a class
token, a relative position bias in every block (no absolute position embedding), layer scale
``gamma_1``/``gamma_2`` (init 0.1), q and v biases (no k bias), mean pooling over patch tokens,
``fc_norm`` and a linear head. timm cannot be imported beside the torch build here, so the family
is defined in this one file (timm style: a config per size) with timm's parameter names, so a
timm or HeartBEiT state dict loads unchanged (``load_timm_state_dict``).

Export notes: LayerNorm is ``nn.LayerNorm`` (one ``LayerNormalization`` node at opset 17), GELU is
the exact erf form (``Erf`` is in TensorRT's ONNX operator list), and the relative position bias is
gathered from its table with a constant index so the exporter folds it to one constant per block.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

from edge_ecg.config_table import from_table

log = logging.getLogger(__name__)

__all__ = [
    "HeartBEiTConfig",
    "HeartBEiT",
    "CONFIGS",
    "create_model",
    "save_checkpoint",
    "load_checkpoint",
    "load_timm_state_dict",
]


@dataclass(frozen=True)
class HeartBEiTConfig:
    """One size of the family. ``base`` is HeartBEiT itself (~86M parameters, ~17.6 GMACs)."""

    name: str = "base"
    img_size: int = 224
    patch_size: int = 16
    in_chans: int = 3
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    init_values: float = 0.1  # layer scale gamma_1 / gamma_2
    layer_norm_eps: float = 1e-6
    head_init_scale: float = 0.001

    @property
    def grid(self) -> int:
        return self.img_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid * self.grid

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "HeartBEiTConfig") -> "HeartBEiTConfig":
        """From a checkpoint's ``config`` (or a TOML table): an unknown key is refused, not dropped,
        so a checkpoint of another architecture never loads as a silently different model."""
        return from_table(cls, d, where)


CONFIGS: dict[str, HeartBEiTConfig] = {
    # HeartBEiT = timm beit_base_patch16_224
    "base": HeartBEiTConfig(name="base", embed_dim=768, depth=12, num_heads=12),
    # same structure, for smaller Jetsons (Orin Nano) and CPU fine-tuning
    "small": HeartBEiTConfig(name="small", embed_dim=384, depth=12, num_heads=6),
    # for CI and CPU training: FP32 + INT8 ONNX together ~ 12 MB
    "tiny": HeartBEiTConfig(name="tiny", embed_dim=192, depth=6, num_heads=3),
}


def relative_position_index(grid: int) -> torch.Tensor:
    """timm's ``gen_relative_position_index`` for a square window, class token included.

    Layout (rows/cols = class token then patches): patch-patch pairs index the
    ``(2G-1)^2`` table entries, and the last three entries are cls->patch, patch->cls, cls->cls,
    exactly as in timm/BEiT so a pretrained table means the same thing here.
    """
    num_rel = (2 * grid - 1) * (2 * grid - 1) + 3
    coords = torch.stack(torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij"))
    flat = torch.flatten(coords, 1)
    rel = (flat[:, :, None] - flat[:, None, :]).permute(1, 2, 0).contiguous()
    rel[:, :, 0] += grid - 1
    rel[:, :, 1] += grid - 1
    rel[:, :, 0] *= 2 * grid - 1
    area = grid * grid
    index = torch.zeros((area + 1, area + 1), dtype=torch.long)
    index[1:, 1:] = rel.sum(-1)
    index[0, 0:] = num_rel - 3
    index[0:, 0] = num_rel - 2
    index[0, 0] = num_rel - 1
    return index


class PatchEmbed(nn.Module):
    def __init__(self, cfg: HeartBEiTConfig) -> None:
        super().__init__()
        self.img_size = cfg.img_size
        self.proj = nn.Conv2d(cfg.in_chans, cfg.embed_dim, kernel_size=cfg.patch_size, stride=cfg.patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # (N, P, D)


class Attention(nn.Module):
    """Multi-head self attention with q/v biases and a per-block relative position bias."""

    def __init__(self, cfg: HeartBEiTConfig) -> None:
        super().__init__()
        dim = cfg.embed_dim
        self.num_heads = cfg.num_heads
        self.head_dim = dim // cfg.num_heads
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(dim))
        self.register_buffer("k_bias", torch.zeros(dim), persistent=False)
        self.v_bias = nn.Parameter(torch.zeros(dim))
        num_rel = (2 * cfg.grid - 1) ** 2 + 3
        self.relative_position_bias_table = nn.Parameter(torch.zeros(num_rel, cfg.num_heads))
        self.register_buffer("relative_position_index", relative_position_index(cfg.grid), persistent=False)
        self.proj = nn.Linear(dim, dim)

    def relative_bias(self) -> torch.Tensor:
        n = self.relative_position_index.shape[0]
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        return bias.view(n, n, -1).permute(2, 0, 1).contiguous()  # (heads, T, T)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Shapes come from qkv / the attention output, never from ``x``: in the INT8 graph ``x`` is
        # quantized, and a Shape reading it keeps ORT from fusing the qkv MatMul into an int8 kernel.
        qkv_bias = torch.cat((self.q_bias, self.k_bias, self.v_bias))
        qkv = F.linear(x, self.qkv.weight, qkv_bias)
        qkv = qkv.unflatten(-1, (3, self.num_heads, self.head_dim)).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        attn = attn + self.relative_bias().unsqueeze(0)
        attn = attn.softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).flatten(2)
        return self.proj(x)


class Mlp(nn.Module):
    def __init__(self, cfg: HeartBEiTConfig) -> None:
        super().__init__()
        hidden = int(cfg.embed_dim * cfg.mlp_ratio)
        self.fc1 = nn.Linear(cfg.embed_dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, cfg.embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, cfg: HeartBEiTConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.embed_dim, eps=cfg.layer_norm_eps)
        self.attn = Attention(cfg)
        self.norm2 = nn.LayerNorm(cfg.embed_dim, eps=cfg.layer_norm_eps)
        self.mlp = Mlp(cfg)
        self.gamma_1 = nn.Parameter(cfg.init_values * torch.ones(cfg.embed_dim))
        self.gamma_2 = nn.Parameter(cfg.init_values * torch.ones(cfg.embed_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.gamma_1 * self.attn(self.norm1(x))
        return x + self.gamma_2 * self.mlp(self.norm2(x))


class HeartBEiT(nn.Module):
    """BEiT with mean pooling: ``forward_features`` -> patch tokens, ``forward_head`` -> logits."""

    def __init__(self, cfg: HeartBEiTConfig, num_classes: int = 0) -> None:
        super().__init__()
        self.cfg = cfg
        self.num_classes = int(num_classes)
        d = cfg.embed_dim
        self.patch_embed = PatchEmbed(cfg)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.mask_token = nn.Parameter(torch.zeros(1, 1, d))  # masked image modelling (pretraining)
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.depth)])
        self.norm = nn.Identity()  # mean pooling: timm moves the final norm to fc_norm
        self.fc_norm = nn.LayerNorm(d, eps=cfg.layer_norm_eps)
        self.head = nn.Linear(d, num_classes) if num_classes > 0 else nn.Identity()
        self._init_weights()

    @property
    def num_features(self) -> int:
        return self.cfg.embed_dim

    # -- parameter groups, declared by the model (timm's ``group_matcher`` / ``no_weight_decay``) --
    def group_matcher(self) -> dict[str, str]:
        """Regexes over parameter names: the stem, and the blocks (group = block number)."""
        return {"stem": r"^(cls_token|mask_token|pos_embed|patch_embed)", "blocks": r"^blocks\.(\d+)\."}

    @property
    def num_layers(self) -> int:
        """Layer ids run 0 (stem) .. depth + 1 (final norm and head): BEiT's layer-wise lr decay."""
        return len(self.blocks) + 2

    def layer_id(self, name: str) -> int:
        """The layer a parameter belongs to: 0 for the stem, i + 1 for block i, the last for the rest."""
        m = self.group_matcher()
        if re.match(m["stem"], name):
            return 0
        b = re.match(m["blocks"], name)
        return int(b.group(1)) + 1 if b else self.num_layers - 1

    def no_weight_decay(self) -> set[str]:
        """Parameters that take no weight decay besides biases and norms (tokens, position tables)."""
        return {n for n, _ in self.named_parameters()
                if n in ("cls_token", "mask_token", "pos_embed") or n.endswith("relative_position_bias_table")}

    def _init_weights(self) -> None:
        """timm's Beit init: trunc-normal 0.02, depth-rescaled output projections, small head."""
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for i, blk in enumerate(self.blocks):
            blk.attn.proj.weight.data.div_(math.sqrt(2.0 * (i + 1)))
            blk.mlp.fc2.weight.data.div_(math.sqrt(2.0 * (i + 1)))
            nn.init.trunc_normal_(blk.attn.relative_position_bias_table, std=0.02)
        if isinstance(self.head, nn.Linear):
            self.head.weight.data.mul_(self.cfg.head_init_scale)
            self.head.bias.data.mul_(self.cfg.head_init_scale)

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = int(num_classes)
        self.head = nn.Linear(self.cfg.embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        if isinstance(self.head, nn.Linear):
            nn.init.trunc_normal_(self.head.weight, std=0.02)
            self.head.weight.data.mul_(self.cfg.head_init_scale)
            nn.init.zeros_(self.head.bias)

    def forward_features(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Patch tokens (N, num_patches, D) after the last block (class token dropped).

        ``mask`` (bool, (N, num_patches), True = masked) replaces those patch embeddings by the
        learned ``mask_token`` before the blocks, as BEiT's masked image modelling does.
        """
        tokens = self.patch_embed(x)
        if mask is not None:
            if mask.shape != tokens.shape[:2]:
                raise ValueError(f"mask shape {tuple(mask.shape)} != (N, num_patches) {tuple(tokens.shape[:2])}")
            w = mask.unsqueeze(-1).to(tokens.dtype)
            tokens = tokens * (1.0 - w) + self.mask_token.to(tokens.dtype) * w
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        h = torch.cat((cls, tokens), dim=1)
        for blk in self.blocks:
            h = blk(h)
        return self.norm(h)[:, 1:]

    def forward_trunk(self, x: torch.Tensor, stop: int) -> torch.Tensor:
        """Class token + patch tokens (N, 1 + P, D) after the first ``stop`` blocks: the frozen part
        of partial fine-tuning, computed once per image (``export.train.trunk``)."""
        h = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), self.patch_embed(x)), dim=1)
        for blk in self.blocks[:stop]:
            h = blk(h)
        return h

    def forward_from(self, h: torch.Tensor, start: int) -> torch.Tensor:
        """Logits from ``forward_trunk(x, start)``'s output: ``forward(x) == forward_from(forward_trunk(x, k), k)``."""
        for blk in self.blocks[start:]:
            h = blk(h)
        return self.forward_head(self.norm(h)[:, 1:])

    def forward_head(self, tokens: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        pooled = self.fc_norm(tokens.mean(dim=1))
        return pooled if pre_logits else self.head(pooled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def create_model(size: str = "base", num_classes: int = 0, **overrides: Any) -> HeartBEiT:
    """A HeartBEiT of a named size (``tiny``, ``small``, ``base``), randomly initialised."""
    if size not in CONFIGS:
        raise ValueError(f"unknown HeartBEiT size {size!r} (known: {', '.join(CONFIGS)})")
    cfg = dataclasses.replace(CONFIGS[size], **overrides) if overrides else CONFIGS[size]
    return HeartBEiT(cfg, num_classes=num_classes)


# --- checkpoints ------------------------------------------------------------------------------

def save_checkpoint(model: HeartBEiT, path: str | Path, extra: Mapping[str, Any] | None = None) -> Path:
    """A ``.pt`` holding the config, class count and weights, so it rebuilds without guessing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "format": "heartbeit-checkpoint/1",
            "config": model.cfg.to_dict(),
            "num_classes": model.num_classes,
            "state_dict": model.state_dict(),
            "extra": dict(extra or {}),
        },
        path,
    )
    return path


def load_checkpoint(path: str | Path, map_location: str = "cpu") -> tuple[HeartBEiT, dict[str, Any]]:
    """Rebuild a model saved by ``save_checkpoint``; returns (model in eval mode, extra).

    A file that is not one of ours but holds a timm/HeartBEiT state dict is not guessed at: use
    ``create_model`` + ``load_timm_state_dict`` with the size you know it is.
    """
    from edge_ecg.errors import InputError

    try:
        ckpt = torch.load(Path(path), map_location=map_location, weights_only=False)
    except FileNotFoundError:
        raise InputError(path, "checkpoint not found") from None
    except Exception as exc:  # truncated / not a torch file
        raise InputError(path, f"not a readable torch checkpoint ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != "heartbeit-checkpoint/1":
        raise InputError(path, "not a heartbeit checkpoint (no format 'heartbeit-checkpoint/1'); "
                               "for a timm state dict use load_timm_state_dict")
    model = HeartBEiT(HeartBEiTConfig.from_dict(ckpt["config"], f"{path}: config"), num_classes=int(ckpt["num_classes"]))
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    return model, dict(ckpt.get("extra") or {})


def _unwrap_state_dict(sd: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    for key in ("model", "state_dict", "module"):
        if key in sd and isinstance(sd[key], Mapping):
            sd = sd[key]
    out = {}
    for k, v in sd.items():
        for prefix in ("module.", "model.", "encoder.", "beit."):
            if k.startswith(prefix):
                k = k[len(prefix):]
        out[k] = v
    return out


def load_timm_state_dict(model: HeartBEiT, state_dict: Mapping[str, Any]) -> dict[str, list[str]]:
    """Load a timm ``Beit`` / HeartBEiT state dict into ``model``; returns what was skipped.

    Handles what real checkpoints carry: a ``{"model": ...}`` wrapper and ``module.`` prefixes;
    a *shared* relative position table (``rel_pos_bias.relative_position_bias_table``, BEiT
    pretraining) copied into every block; a head whose class count differs (dropped, logged,
    left at its fresh init for fine-tuning); ``k_bias`` and ``relative_position_index`` buffers
    (recomputed here). A table of another window size is an error, not silently resized.
    """
    sd = _unwrap_state_dict(state_dict)
    own = model.state_dict()
    shared = sd.pop("rel_pos_bias.relative_position_bias_table", None)
    sd.pop("rel_pos_bias.relative_position_index", None)
    if shared is not None:
        for i in range(len(model.blocks)):
            sd.setdefault(f"blocks.{i}.attn.relative_position_bias_table", shared.clone())
        log.info("expanded the shared relative position table %s to %d blocks", tuple(shared.shape), len(model.blocks))
    skipped: dict[str, list[str]] = {"dropped": [], "unexpected": [], "missing": []}
    load: dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        if k.endswith(("relative_position_index", "k_bias")):
            continue
        if k not in own:
            skipped["unexpected"].append(k)
            continue
        if tuple(v.shape) != tuple(own[k].shape):
            if k.startswith("head."):
                log.info("dropped %s: checkpoint shape %s, model %s (head of another size; fresh init)",
                         k, tuple(v.shape), tuple(own[k].shape))
                skipped["dropped"].append(k)
                continue
            raise ValueError(f"state dict key {k}: shape {tuple(v.shape)} does not fit model {tuple(own[k].shape)}")
        load[k] = v
    result = model.load_state_dict(load, strict=False)
    skipped["missing"] = [k for k in result.missing_keys if k not in skipped["dropped"]]
    if skipped["unexpected"]:
        log.info("ignored %d checkpoint keys not in HeartBEiT: %s", len(skipped["unexpected"]), skipped["unexpected"][:8])
    if skipped["missing"]:
        log.info("%d model keys not in the checkpoint (fresh init): %s", len(skipped["missing"]), skipped["missing"][:8])
    return skipped
