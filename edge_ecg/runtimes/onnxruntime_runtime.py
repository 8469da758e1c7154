"""ONNX Runtime on CPU: the embedded default, and the reference a TensorRT engine is checked against."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge_ecg.errors import BundleError
from edge_ecg.runtimes import Runtime

log = logging.getLogger(__name__)


@dataclass
class OnnxRuntimeRuntime(Runtime):
    session: Any = field(default=None, repr=False)
    threads: int | None = None

    @classmethod
    def open(cls, bundle, precision: str = "int8", threads: int | None = None) -> "OnnxRuntimeRuntime":
        import onnxruntime as ort

        path = bundle.onnx_path(precision)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            opts.intra_op_num_threads = int(threads)
            opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise BundleError(path, f"ONNX Runtime cannot load the model ({exc})") from None
        inputs, outputs = session.get_inputs(), session.get_outputs()
        if len(inputs) != 1 or inputs[0].name != bundle.input_name:
            raise BundleError(path, f"model inputs {[i.name for i in inputs]} do not match bundle input {bundle.input_name!r}")
        if not outputs or outputs[0].name != bundle.output_name:
            raise BundleError(path, f"model outputs {[o.name for o in outputs]} do not match bundle output {bundle.output_name!r}")
        n_out = outputs[0].shape[-1]
        if isinstance(n_out, int) and n_out != len(bundle.labels):
            raise BundleError(path, f"model has {n_out} outputs but bundle.toml lists {len(bundle.labels)} labels")
        c, h, w = bundle.input_shape
        if list(inputs[0].shape[1:]) != [c, h, w]:
            raise BundleError(path, f"model input shape {inputs[0].shape} does not match bundle (N,{c},{h},{w})")
        rt = cls(bundle=bundle, precision=precision, backend="onnxruntime", session=session, threads=threads)
        log.debug("onnxruntime %s session on %s (threads=%s)", precision, path.name, threads or "default")
        return rt

    def _run(self, x: np.ndarray) -> np.ndarray:
        (out,) = self.session.run([self.bundle.output_name], {self.bundle.input_name: x})
        return np.asarray(out, dtype=np.float32)

    def describe(self) -> str:
        return f"onnxruntime {self.precision} (threads={self.threads or 'default'})"

    def close(self) -> None:
        self.session = None
