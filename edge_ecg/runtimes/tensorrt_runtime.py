"""TensorRT 10.x runtime: build the engine from the bundle's ONNX on the device, cache it, run it.

TensorRT and pycuda are imported here only, lazily (JetPack ships them; build and CI machines
cannot install TensorRT). The code keeps to the TensorRT 10.3 Python API (JetPack 6.1/6.2), checked
against the real ``tensorrt-cu12-bindings==10.3.0`` binary by ``tests/test_tensorrt_conformance.py``.
Convention that test relies on: TensorRT objects live in variables (or ``self.`` attributes)
named ``trt_logger``, ``builder``, ``network``, ``parser``, ``config``, ``profile``,
``timing_cache``, ``trt_runtime``, ``engine``, ``context``; every attribute used on them and on
``trt`` must exist in TensorRT 10.3.

- Explicit quantization: a graph with Q/DQ nodes is built as a *strongly typed* network
  (``NetworkDefinitionCreationFlag.STRONGLY_TYPED``), so TensorRT follows the graph's int8
  placement instead of choosing precisions itself; TensorRT 10 networks are always explicit-batch.
- Workspace via ``set_memory_pool_limit(MemoryPoolType.WORKSPACE, ...)`` (``max_workspace_size``
  was removed), one optimization profile for batch 1..max_batch, a timing cache kept beside the
  engines so rebuilds are fast, ``build_serialized_network`` (``build_engine`` was removed).
- Engines do not move between GPUs or TensorRT versions: the cache file name is keyed by GPU name,
  compute capability, TensorRT version, precision and max batch, and a sidecar records the sha256
  of the ONNX it was built from; any mismatch rebuilds.
- Inference: pycuda pinned host buffers, one stream, ``set_input_shape`` + ``set_tensor_address``
  + ``execute_async_v3`` (the name-based I/O API; binding indices were removed).
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge_ecg.errors import BundleError
from edge_ecg.runtimes import Runtime, InferenceBackendError

log = logging.getLogger(__name__)

DEFAULT_WORKSPACE = 1 << 30  # 1 GiB: enough for ViT-B tactics, fits an 8 GB Orin Nano


def _import():
    try:
        import pycuda.driver as cuda
        import tensorrt as trt
    except ImportError as exc:
        raise InferenceBackendError("tensorrt", f"TensorRT backend unavailable ({exc}); use --backend onnxruntime") from None
    return trt, cuda


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()


def has_qdq(onnx_path: Path) -> bool:
    """Whether the ONNX graph holds QuantizeLinear/DequantizeLinear (explicit quantization)."""
    data = Path(onnx_path).read_bytes()
    return b"QuantizeLinear" in data or b"DequantizeLinear" in data


@dataclass(frozen=True)
class EngineKey:
    gpu: str
    compute_capability: str
    trt_version: str
    precision: str
    max_batch: int

    @property
    def filename(self) -> str:
        return f"{self.precision}-b{self.max_batch}-{_slug(self.gpu)}-sm{self.compute_capability}-trt{self.trt_version}.plan"


def engine_key(precision: str, max_batch: int) -> EngineKey:
    trt, cuda = _import()
    cuda.init()
    dev = cuda.Device(0)
    major, minor = dev.compute_capability()
    return EngineKey(dev.name(), f"{major}{minor}", trt.__version__, precision, int(max_batch))


def build_engine_file(bundle, precision: str = "int8", max_batch: int = 8, opt_batch: int = 1,
                      workspace: int = DEFAULT_WORKSPACE, force: bool = False) -> Path:
    """Build (or reuse) the serialized engine for ``bundle`` in ``bundle/engines``; returns its path."""
    trt, cuda = _import()
    onnx_path = bundle.onnx_path(precision)
    key = engine_key(precision, max_batch)
    out_dir = bundle.engine_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    plan = out_dir / key.filename
    sidecar = plan.with_suffix(".json")
    onnx_sha = bundle.files[onnx_path.name]
    if plan.is_file() and sidecar.is_file() and not force:
        meta = json.loads(sidecar.read_text())
        if meta.get("onnx_sha256") == onnx_sha:
            log.info("engine cache hit: %s", plan.name)
            return plan
        log.info("engine cache stale (built from another ONNX): rebuilding %s", plan.name)

    trt_logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(trt_logger)
    strongly_typed = has_qdq(onnx_path)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if strongly_typed else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, trt_logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BundleError(onnx_path, f"TensorRT's ONNX parser refused the model: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace))
    c, h, w = bundle.input_shape
    profile = builder.create_optimization_profile()
    profile.set_shape(bundle.input_name, (1, c, h, w), (max(1, min(opt_batch, max_batch)), c, h, w), (max_batch, c, h, w))
    config.add_optimization_profile(profile)
    cache_path = out_dir / f"timing-{_slug(key.gpu)}-trt{key.trt_version}.cache"
    timing_cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.is_file() else b"")
    config.set_timing_cache(timing_cache, False)
    t0 = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BundleError(onnx_path, "TensorRT failed to build an engine (see the TensorRT log above)")
    cache_path.write_bytes(bytes(config.get_timing_cache().serialize()))
    tmp = plan.with_suffix(".plan.tmp")
    tmp.write_bytes(bytes(serialized))
    tmp.replace(plan)
    sidecar.write_text(json.dumps({
        "onnx": onnx_path.name, "onnx_sha256": onnx_sha, "gpu": key.gpu, "compute_capability": key.compute_capability,
        "tensorrt": key.trt_version, "precision": precision, "max_batch": max_batch, "strongly_typed": strongly_typed,
        "workspace": int(workspace), "build_s": round(time.perf_counter() - t0, 1),
    }, indent=1))
    log.info("built %s in %.0f s (strongly typed: %s)", plan.name, time.perf_counter() - t0, strongly_typed)
    return plan


@dataclass
class TensorRTRuntime(Runtime):
    max_batch: int = 8
    engine_path: Path | None = None
    engine: Any = field(default=None, repr=False)
    context: Any = field(default=None, repr=False)
    _cuda: Any = field(default=None, repr=False)
    _cuda_ctx: Any = field(default=None, repr=False)
    _stream: Any = field(default=None, repr=False)
    _host_in: Any = field(default=None, repr=False)
    _host_out: Any = field(default=None, repr=False)
    _dev_in: Any = field(default=None, repr=False)
    _dev_out: Any = field(default=None, repr=False)

    @classmethod
    def open(cls, bundle, precision: str = "int8", max_batch: int = 8, build: bool = True) -> "TensorRTRuntime":
        trt, cuda = _import()
        cuda.init()
        cuda_ctx = cuda.Device(0).make_context()
        try:
            path = build_engine_file(bundle, precision, max_batch) if build else bundle.engine_dir / engine_key(precision, max_batch).filename
            trt_logger = trt.Logger(trt.Logger.WARNING)
            trt_runtime = trt.Runtime(trt_logger)
            engine = trt_runtime.deserialize_cuda_engine(path.read_bytes())
            if engine is None:
                raise BundleError(path, "TensorRT could not deserialize the engine (built by another version or GPU?)")
            context = engine.create_execution_context()
            rt = cls(bundle=bundle, precision=precision, backend="tensorrt", max_batch=max_batch, engine_path=path,
                     engine=engine, context=context, _cuda=cuda, _cuda_ctx=cuda_ctx)
            rt._allocate(trt)
        except BaseException:
            cuda_ctx.pop()
            cuda_ctx.detach()
            raise
        cuda_ctx.pop()  # pushed again around each batch, so other threads' contexts are left alone
        log.info("tensorrt %s engine %s", precision, path.name)
        return rt

    def _allocate(self, trt) -> None:
        cuda, engine = self._cuda, self.engine
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if inputs != [self.bundle.input_name] or self.bundle.output_name not in outputs:
            raise BundleError(self.engine_path, f"engine I/O {inputs} -> {outputs} does not match the bundle")
        c, h, w = self.bundle.input_shape
        n_labels = len(self.bundle.labels)
        in_dtype = trt.nptype(engine.get_tensor_dtype(self.bundle.input_name))
        out_dtype = trt.nptype(engine.get_tensor_dtype(self.bundle.output_name))
        self._host_in = cuda.pagelocked_empty((self.max_batch, c, h, w), in_dtype)
        self._host_out = cuda.pagelocked_empty((self.max_batch, n_labels), out_dtype)
        self._dev_in = cuda.mem_alloc(self._host_in.nbytes)
        self._dev_out = cuda.mem_alloc(self._host_out.nbytes)
        self._stream = cuda.Stream()
        self.context.set_tensor_address(self.bundle.input_name, int(self._dev_in))
        self.context.set_tensor_address(self.bundle.output_name, int(self._dev_out))

    def _run(self, x: np.ndarray) -> np.ndarray:
        out = []
        for i in range(0, len(x), self.max_batch):
            out.append(self._run_batch(x[i:i + self.max_batch]))
        return np.concatenate(out).astype(np.float32)

    def _run_batch(self, xb: np.ndarray) -> np.ndarray:
        cuda, n = self._cuda, len(xb)
        c, h, w = self.bundle.input_shape
        self._cuda_ctx.push()
        try:
            self._host_in[:n] = xb
            self.context.set_input_shape(self.bundle.input_name, (n, c, h, w))
            cuda.memcpy_htod_async(self._dev_in, self._host_in[:n], self._stream)
            if not self.context.execute_async_v3(self._stream.handle):
                raise InferenceBackendError(self.engine_path, "execute_async_v3 failed")
            cuda.memcpy_dtoh_async(self._host_out[:n], self._dev_out, self._stream)
            self._stream.synchronize()
        finally:
            self._cuda_ctx.pop()
        return np.array(self._host_out[:n], dtype=np.float32)

    def describe(self) -> str:
        return f"tensorrt {self.precision} ({self.engine_path.name if self.engine_path else '?'})"

    def close(self) -> None:
        if self._cuda_ctx is not None:
            self._cuda_ctx.push()
            self.context = None
            self.engine = None
            self._dev_in = self._dev_out = None
            self._stream = None
            self._cuda_ctx.pop()
            self._cuda_ctx.detach()
            self._cuda_ctx = None
