"""ONNX export: opset 17, one LayerNormalization node per norm, dynamic batch, parity with PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
torch = pytest.importorskip("torch")



def test_graph_is_opset17_checked_and_named(arts):
    m = onnx.load(str(arts.bundle_dir / "model.onnx"))
    onnx.checker.check_model(m, full_check=True)
    assert {o.domain: o.version for o in m.opset_import}.get("", None) == 17
    assert [i.name for i in m.graph.input] == ["images"]
    assert [o.name for o in m.graph.output] == ["logits"]
    ops = [n.op_type for n in m.graph.node]
    cfg = arts.model.cfg
    assert ops.count("LayerNormalization") == 2 * cfg.depth + 1  # norm1, norm2 per block + fc_norm
    assert ops.count("Softmax") == cfg.depth
    dim0 = m.graph.input[0].type.tensor_type.shape.dim[0]
    assert dim0.dim_param == "batch" and not dim0.HasField("dim_value")


def test_parity_with_pytorch_on_real_windows(arts):
    """FP32 ONNX Runtime vs PyTorch on rendered MIT-BIH windows: max |logit diff| <= 1e-4."""
    from edge_ecg.render import to_model_input
    from export.onnx_export import check_parity

    x = to_model_input(arts.check_images)
    rep = check_parity(arts.model, arts.bundle_dir / "model.onnx", x, batch=5)  # batches of 5, 1: dynamic batch
    assert rep.n == len(x) == 16
    assert rep.max_abs_diff <= 1e-4, rep
    assert rep.top_label_agreement == 1.0
    with torch.no_grad():
        logits = arts.model(torch.from_numpy(x)).numpy()
    assert logits.std(axis=0).min() > 1e-3  # windows give different logits: the check is not vacuous


def test_export_refuses_nothing_silently(tmp_path):
    """A fresh export of another size writes a checked file (small: exercises the exporter path)."""
    from export.models.heartbeit import create_model
    from export.onnx_export import export_onnx, onnx_logits

    m = create_model("tiny", num_classes=2, depth=1)
    p = export_onnx(m, tmp_path / "d1.onnx")
    x = np.random.default_rng(0).standard_normal((2, 3, 224, 224)).astype(np.float32)
    with torch.no_grad():
        assert np.abs(onnx_logits(p, x) - m(torch.from_numpy(x)).numpy()).max() <= 1e-4
