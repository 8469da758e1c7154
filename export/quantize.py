"""FP32 ONNX -> INT8 QDQ ONNX with ONNX Runtime's static quantizer, in the form TensorRT 10 wants.

TensorRT 10 deprecates implicit-quantization calibrators: INT8 is explicit, QuantizeLinear /
DequantizeLinear pairs in the graph. What this writes:
- activations symmetric int8 (zero point 0; TensorRT requires it, and on ORT's CPU kernels
  asymmetric uint8 activations were slower than FP32 for ViT-B here),
- weights int8 per output channel, symmetric,
- only MatMul / Gemm / Conv quantized: LayerNormalization, Softmax and GELU (Erf) stay in float,
  as TensorRT's and ORT's int8 kernels expect and for accuracy;
- and of the MatMuls only those with a weight: attention's two activation x activation products
  (Q.K^T and softmax.V) stay float. One per-tensor int8 scale cannot hold both a softmax row's
  near-zero entries and its peaks, nor the outlier channels of Q and K; on the GPU-trained 224 px
  vt-triage model quantizing them gave a max |logit difference| of 8.7, leaving them float 0.34
  (attention products are ~4% of a tiny model's MACs at 224 px).
Why ORT's quantizer over NVIDIA ModelOpt: see the README section "export" (ModelOpt is not
installable here and ORT's output runs on both ORT and TensorRT).
"""

from __future__ import annotations

import inspect
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

log = logging.getLogger(__name__)

QUANT_OPS = ("MatMul", "Gemm", "Conv")
METHODS = ("minmax", "percentile", "entropy")


@dataclass(frozen=True)
class QuantConfig:
    method: str = "minmax"
    per_channel: bool = True
    op_types: tuple[str, ...] = QUANT_OPS
    percentile: float = 99.999
    batch: int = 8
    preprocess: bool = True  # ORT's quant_pre_process: shape inference + constant folding
    # Q/DQ on the *inputs* of MatMul/Gemm/Conv only (NVIDIA's placement for TensorRT). ORT's
    # default also quantizes their outputs, which feed float Adds: twice the error, no speed here.
    quantize_outputs: bool = False
    float_attention: bool = True  # activation x activation MatMuls stay float (see the module docstring)

    def to_dict(self) -> dict:
        return {"tool": "onnxruntime.quantization.quantize_static", "format": "QDQ",
                "activations": "int8 symmetric", "weights": "int8 symmetric per-channel" if self.per_channel else "int8 symmetric",
                "method": self.method, "op_types": list(self.op_types), "outputs_quantized": self.quantize_outputs,
                "float_attention_matmuls": self.float_attention,
                **({"percentile": self.percentile} if self.method == "percentile" else {})}


class _Reader:
    """ORT ``CalibrationDataReader`` over model-input batches (float32 (N,3,H,W))."""

    def __init__(self, x: np.ndarray, input_name: str, batch: int) -> None:
        self._batches: Iterator[np.ndarray] = (x[i:i + batch] for i in range(0, len(x), batch))
        self.input_name = input_name

    def get_next(self):
        b = next(self._batches, None)
        return None if b is None else {self.input_name: np.ascontiguousarray(b, dtype=np.float32)}


def quantize_qdq(fp32_path: str | Path, int8_path: str | Path, calib_inputs: np.ndarray,
                 config: QuantConfig = QuantConfig(), input_name: str = "images") -> Path:
    """Write the QDQ model calibrated on ``calib_inputs`` (normalised model inputs)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if config.method not in METHODS:
        raise ValueError(f"unknown calibration method {config.method!r} (known: {', '.join(METHODS)})")
    if len(calib_inputs) == 0:
        raise ValueError("empty calibration set")
    method = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
              "entropy": CalibrationMethod.Entropy}[config.method]
    int8_path = Path(int8_path)
    int8_path.parent.mkdir(parents=True, exist_ok=True)
    extra = {
        "ActivationSymmetric": True,
        "WeightSymmetric": True,
        "CalibMovingAverage": False,
        "CalibTensorRangeSymmetric": True,
        # Biases stay float: TensorRT has no int32 quantized type, it fuses float bias itself.
        "QuantizeBias": False,
    }
    if not config.quantize_outputs:
        extra["OpTypesToExcludeOutputQuantization"] = list(config.op_types)
    if config.method == "percentile":
        extra["CalibPercentile"] = config.percentile
    kwargs = dict(
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=list(config.op_types),
        per_channel=config.per_channel,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=method,
        extra_options=extra,
    )
    if "calibration_providers" in inspect.signature(quantize_static).parameters:
        kwargs["calibration_providers"] = ["CPUExecutionProvider"]
    with tempfile.TemporaryDirectory(prefix="edge-ecg-quant-") as tmp:
        source = Path(fp32_path)
        if config.preprocess:
            from onnxruntime.quantization.shape_inference import quant_pre_process

            pre = Path(tmp) / "pre.onnx"
            quant_pre_process(str(source), str(pre), skip_symbolic_shape=True)
            source = pre
        if config.float_attention:
            kwargs["nodes_to_exclude"] = activation_matmuls(source)
        quantize_static(
            model_input=str(source),
            model_output=str(int8_path),
            calibration_data_reader=_Reader(calib_inputs, input_name, config.batch),
            **kwargs,
        )
    log.info("quantized %s -> %s (%s, %d calibration inputs, %.1f MB)", Path(fp32_path).name, int8_path.name,
             config.method, len(calib_inputs), int8_path.stat().st_size / 1e6)
    return int8_path


def activation_matmuls(path: str | Path) -> list[str]:
    """Names of the MatMuls of an ONNX graph with no constant input (attention's Q.K^T and
    softmax.V in a ViT): products of two activations."""
    import onnx

    model = onnx.load(str(path))
    consts = {i.name for i in model.graph.initializer}
    consts |= {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    return [n.name for n in model.graph.node if n.op_type == "MatMul" and not any(i in consts for i in n.input)]


@dataclass(frozen=True)
class QdqViolation:
    node: str
    problem: str


def qdq_violations(path: str | Path) -> list[QdqViolation]:
    """Every Q/DQ node whose zero point is not int8 0 or whose scale is not positive (TensorRT's rules)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    consts = {}
    for n in model.graph.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    consts[n.output[0]] = numpy_helper.to_array(a.t)
    inits.update(consts)
    bad = []
    for n in model.graph.node:
        if n.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        if len(n.input) < 3 or not n.input[2]:
            bad.append(QdqViolation(n.name, "no zero point (defaults to uint8)"))
            continue
        zp, scale = inits.get(n.input[2]), inits.get(n.input[1])
        if zp is None or scale is None:
            bad.append(QdqViolation(n.name, "scale or zero point is not a constant"))
            continue
        if zp.dtype != np.int8:
            bad.append(QdqViolation(n.name, f"zero point dtype {zp.dtype}, not int8"))
        elif np.any(zp != 0):
            bad.append(QdqViolation(n.name, "zero point not 0 (asymmetric)"))
        if not np.all(scale > 0):
            bad.append(QdqViolation(n.name, "scale not positive"))
    return bad
