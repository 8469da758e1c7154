"""INT8 QDQ: symmetric int8 everywhere, LayerNorm/Softmax/GELU left in float, close to FP32."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")



def _graph(arts):
    return onnx.load(str(arts.bundle_dir / "model.int8.onnx")).graph


def test_every_qdq_is_symmetric_int8(arts):
    from export.quantize import qdq_violations

    g = _graph(arts)
    n_q = sum(n.op_type == "QuantizeLinear" for n in g.node)
    n_dq = sum(n.op_type == "DequantizeLinear" for n in g.node)
    assert n_q > 0 and n_dq >= n_q
    assert qdq_violations(arts.bundle_dir / "model.int8.onnx") == []


def test_only_matmul_gemm_conv_run_in_int8(arts):
    """Every DequantizeLinear feeds a MatMul/Gemm/Conv (so ORT fuses all of them); LayerNorm, Softmax, Erf see floats."""
    g = _graph(arts)
    dq_out = {o for n in g.node if n.op_type == "DequantizeLinear" for o in n.output}
    consumers = {n.op_type for n in g.node for i in n.input if i in dq_out}
    assert consumers <= {"MatMul", "Gemm", "Conv"}, consumers
    cfg = arts.model.cfg
    assert sum(n.op_type == "MatMul" for n in g.node if any(i in dq_out for i in n.input)) >= 4 * cfg.depth
    # attention's Q.K^T and softmax.V (two activations, no weight) stay float: see export/quantize.py
    attn = [n for n in g.node if n.op_type == "MatMul" and "/attn/" in n.name and not any(i in dq_out for i in n.input)]
    assert len(attn) == 2 * cfg.depth
    float_ops = {"LayerNormalization", "Softmax", "Erf"}
    for n in g.node:
        if n.op_type in float_ops:
            assert not any(i in dq_out for i in n.input), n.name


def test_weights_are_per_channel(arts):
    from onnx import numpy_helper

    g = _graph(arts)
    inits = {i.name: i for i in g.initializer}
    per_channel = 0
    for n in g.node:
        if n.op_type == "DequantizeLinear" and n.input[0] in inits:
            scale = numpy_helper.to_array(inits[n.input[1]])
            assert numpy_helper.to_array(inits[n.input[0]]).dtype == np.int8
            per_channel += scale.size > 1
    assert per_channel == 4 * arts.model.cfg.depth + 2  # qkv, proj, fc1, fc2 per block; patch conv; head


def test_int8_tracks_fp32_on_held_out_real_windows(arts):
    """Untrained model, so this bounds numerical drift; trained-model agreement is training's report."""
    from edge_ecg.bundle import load_bundle

    c = load_bundle(arts.bundle_dir).check_windows()
    f, q = c["logits_fp32"], c["logits_int8"]
    spread = np.ptp(f, axis=0).max()
    assert np.abs(f - q).max() < 0.25 * max(spread, 1e-6) + 0.05
    assert np.mean(f.argmax(1) == q.argmax(1)) >= 0.75
    assert np.corrcoef(f.ravel(), q.ravel())[0, 1] > 0.95


def test_calibration_choice_is_reproducible(ludb_dir):
    from edge_ecg.render import RenderSpec
    from export.calibration import select_windows

    spec = RenderSpec(layout="12lead")
    records = sorted(ludb_dir.rglob("*.hea"))[:10]  # 10 s 12-lead ECGs: one window each
    a = select_windows(records, spec, 5, seed=3)
    b = select_windows(list(reversed(records)), spec, 5, seed=3)  # input order is irrelevant
    c = select_windows(records, spec, 5, seed=4)
    assert len(a) == 5 and a.ids == b.ids and a.sha256 == b.sha256
    assert np.array_equal(a.images, b.images)
    assert a.ids != c.ids and a.sha256 != c.sha256
    assert len({i.rsplit(":", 2)[0] for i in a.ids}) == 5  # spread over records, not one record
