"""HeartBEiT against timm's own BEiT: same state dict, same logits.

timm is installed without its dependencies (``pip install --no-deps timm``; see the Makefile) and
imported behind a torchvision stand-in (tests/helpers/torchvision_stub.py), because PyPI's
torchvision does not load beside the CPU torch build. Every weight is perturbed first, so tensors
that timm initialises to zero or one (relative position tables, layer scale, q/v biases, norms)
are compared too, not just left at values both models share by construction.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from export.models.heartbeit import create_model, load_timm_state_dict  # noqa: E402
from helpers.torchvision_stub import import_timm  # noqa: E402

try:
    timm = import_timm()
except ImportError:  # `make test` installs timm; a bare environment may not have it
    timm = None

pytestmark = pytest.mark.skipif(timm is None, reason="timm is not installed (make venv installs it with --no-deps)")


def _perturbed(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=g))
    return model.eval()


def _logits_match(ours: torch.nn.Module, ref: torch.nn.Module) -> float:
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a, b = ours(x), ref(x)
    assert a.shape == b.shape
    return float((a - b).abs().max())


def test_per_block_tables_give_timms_logits():
    ref = _perturbed(timm.create_model("beit_base_patch16_224", pretrained=False, num_classes=7), seed=0)
    ours = create_model("base", num_classes=7).eval()
    report = load_timm_state_dict(ours, ref.state_dict())
    assert not report["dropped"] and not report["unexpected"]
    assert report["missing"] == ["mask_token"]  # ours only: the masked-image-modelling token
    assert _logits_match(ours, ref) < 1e-5


def test_shared_table_is_expanded_to_every_block():
    # BEiT pretraining checkpoints share one relative position table across blocks
    ref = timm.create_model("beit_base_patch16_224", pretrained=False, num_classes=5, depth=4,
                            use_rel_pos_bias=False, use_shared_rel_pos_bias=True)
    ref = _perturbed(ref, seed=2)
    assert "rel_pos_bias.relative_position_bias_table" in ref.state_dict()
    ours = create_model("base", num_classes=5, depth=4).eval()
    report = load_timm_state_dict(ours, ref.state_dict())
    assert not report["dropped"] and not report["unexpected"]
    assert report["missing"] == ["mask_token"]  # ours only: the masked-image-modelling token
    assert _logits_match(ours, ref) < 1e-5


def test_a_wrong_weight_is_seen():
    # the comparison above can fail: one perturbed tensor after loading breaks parity
    ref = _perturbed(timm.create_model("beit_base_patch16_224", pretrained=False, num_classes=3, depth=2), seed=3)
    ours = create_model("base", num_classes=3, depth=2).eval()
    load_timm_state_dict(ours, ref.state_dict())
    with torch.no_grad():
        table = ours.blocks[1].attn.relative_position_bias_table
        table.add_(torch.randn(table.shape, generator=torch.Generator().manual_seed(4)))
    assert _logits_match(ours, ref) > 1e-3
