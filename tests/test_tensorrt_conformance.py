"""TensorRT 10.3 conformance without TensorRT: our code against the real bindings and operator list.

TensorRT's libraries cannot be installed here, so (1) every TensorRT name the runtime uses is
looked up in the real ``tensorrt-cu12-bindings==10.3.0`` binary (pybind11 keeps every class,
method, property and enum name as a NUL-terminated string; the linker may merge a name into the
tail of a longer one, hence the suffix match), and TensorRT 8 calls removed in 10 are refused;
(2) every operator of the exported graphs is in the ONNX-TensorRT 10.1 support matrix, and every
Q/DQ pair is symmetric int8 (zero point 0), as TensorRT requires.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import REPO, SHARED

RUNTIME_SRC = REPO / "edge_ecg" / "runtimes" / "tensorrt_runtime.py"
WHEEL_SPEC = "tensorrt-cu12-bindings==10.3.0"
CACHE = Path(os.environ.get("EDGE_ECG_CACHE", REPO / ".cache")) / "tensorrt-bindings-10.3.0"
# Variables that hold TensorRT objects (the runtime's documented naming convention).
TRT_OBJECTS = {"trt", "trt_logger", "builder", "network", "parser", "config", "profile", "timing_cache",
               "trt_runtime", "engine", "context"}
# TensorRT 8 API removed or replaced in 10 (implicit batch, bindings, builder-made engines).
REMOVED = {"build_engine", "max_workspace_size", "execute_v2", "execute_async_v2", "execute_async",
           "get_binding_index", "get_binding_name", "get_binding_shape", "set_binding_shape", "binding_is_input",
           "num_bindings", "max_batch_size", "get_binding_dtype", "EXPLICIT_BATCH", "int8_calibrator",
           "IInt8EntropyCalibrator2", "IInt8MinMaxCalibrator", "set_shape_input", "all_binding_shapes_specified"}


@pytest.fixture(scope="module")
def bindings() -> tuple[bytes, str]:
    """The 10.3 bindings' ``tensorrt.so`` bytes and ``__init__.py`` text (pip download, cached)."""
    wheels = sorted(CACHE.glob("tensorrt_cu12_bindings-10.3.0-*.whl"))
    if not wheels:
        CACHE.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(CACHE), WHEEL_SPEC]
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
        except subprocess.TimeoutExpired:
            pytest.skip(f"package registry did not answer in time for {WHEEL_SPEC}")
        wheels = sorted(CACHE.glob("tensorrt_cu12_bindings-10.3.0-*.whl"))
        if res.returncode != 0 or not wheels:
            pytest.skip(f"cannot download {WHEEL_SPEC} (registry unreachable?): {res.stderr.strip()[-300:]}")
    with zipfile.ZipFile(wheels[0]) as z:
        so = z.read("tensorrt_bindings/tensorrt.so")
        init = z.read("tensorrt_bindings/__init__.py").decode()
    return so, init


def _used_names(src: str) -> set[str]:
    """Attribute names the runtime uses on TensorRT objects: ``trt.X.Y``, ``builder.m()``, ``self.engine.m``."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(src)):
        if not isinstance(node, ast.Attribute):
            continue
        chain, base = [node.attr], node.value
        while isinstance(base, ast.Attribute):
            chain.append(base.attr)
            base = base.value
        if not isinstance(base, ast.Name):
            continue
        chain.reverse()  # attributes from the base outwards
        if base.id == "self" and chain[0] in TRT_OBJECTS:
            chain = chain[1:]
        elif base.id not in TRT_OBJECTS:
            continue
        names.update(chain)
    return names


def _defined(name: str, so: bytes, init: str) -> bool:
    if re.search(rf"^(def|class) {re.escape(name)}\b|^{re.escape(name)} =", init, re.M):
        return True
    return name.encode() + b"\x00" in so


def test_runtime_uses_only_tensorrt_10_3_names(bindings):
    so, init = bindings
    used = _used_names(RUNTIME_SRC.read_text())
    # The extraction finds what the runtime must use (guards against a vacuous pass).
    assert {"build_serialized_network", "set_memory_pool_limit", "STRONGLY_TYPED", "execute_async_v3",
            "set_tensor_address", "create_optimization_profile", "set_timing_cache", "WORKSPACE"} <= used
    missing = sorted(n for n in used if not _defined(n, so, init))
    assert not missing, f"not in TensorRT 10.3's Python API: {missing}"


def test_runtime_uses_no_removed_tensorrt_8_calls():
    src = RUNTIME_SRC.read_text()
    used = {n.attr for n in ast.walk(ast.parse(src)) if isinstance(n, ast.Attribute)}
    assert not (used & REMOVED), sorted(used & REMOVED)


def test_the_name_check_can_fail(bindings):
    so, init = bindings
    for gone in ("build_engine", "get_binding_index", "num_bindings", "execute_async_v2", "no_such_method_xyz"):
        assert not _defined(gone, so, init), gone
    assert _defined("nptype", so, init) and _defined("INPUT", so, init)
    bad = "def f(builder):\n    return builder.build_engine(network, config)\n"
    assert "build_engine" in _used_names(bad) and not _defined("build_engine", so, init)


def _supported_ops() -> set[str]:
    table = SHARED / "trt" / "onnx-tensorrt-10.1-operators.md"
    if not table.is_file():
        pytest.skip(f"ONNX-TensorRT operator list not present at {table}")
    ops = set()
    for line in table.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[1] == "Y":
            ops.add(cells[0])
    assert len(ops) > 100
    return ops


@pytest.mark.parametrize("fname", ["model.onnx", "model.int8.onnx"])
def test_every_operator_is_supported_by_tensorrt(arts, fname):
    import onnx

    ops = {n.op_type for n in onnx.load(str(arts.bundle_dir / fname)).graph.node}
    unsupported = sorted(ops - _supported_ops())
    assert not unsupported, f"{fname}: not in ONNX-TensorRT's supported list: {unsupported}"
    assert "LayerNormalization" in ops
    if fname.endswith("int8.onnx"):
        assert {"QuantizeLinear", "DequantizeLinear"} <= ops


def test_every_qdq_pair_is_symmetric_int8(arts):
    from export.quantize import qdq_violations

    assert qdq_violations(arts.bundle_dir / "model.int8.onnx") == []
