"""The TensorRT runtime's own logic (engine cache, profiles, pinned-buffer I/O, fallback) on a test double.

TensorRT and a GPU cannot exist on this machine, so ``tensorrt`` and ``pycuda.driver`` are
replaced here by a double: the "engine" runs the bundle's ONNX with ONNX Runtime and "device
memory" is host bytes addressed by integer pointers, so every copy the runtime makes is real.
The double only offers names the conformance test finds in the real TensorRT 10.3 bindings
(that test checks the runtime's calls; this one checks what it does with them). What this
cannot show - that TensorRT builds and runs these graphs on a GPU - is ``edge-ecg engine verify``'s job on a device.
"""

from __future__ import annotations

import importlib.machinery
import json
import logging
import sys
import types

import numpy as np
import pytest

from edge_ecg.bundle import load_bundle
from edge_ecg.errors import BundleError


class _Flag(int):
    pass


def _make_fakes(state: dict):
    trt = types.ModuleType("tensorrt")
    trt.__spec__ = importlib.machinery.ModuleSpec("tensorrt", None)
    trt.__version__ = "10.3.0"

    class Logger:
        WARNING = 2

        def __init__(self, severity):
            self.severity = severity

    class NetworkDefinitionCreationFlag:
        STRONGLY_TYPED = _Flag(1)

    class MemoryPoolType:
        WORKSPACE = "workspace"

    class TensorIOMode:
        INPUT, OUTPUT = "input", "output"

    class DataType:
        FLOAT = "float"

    class Network:
        def __init__(self, flags):
            self.flags, self.onnx = flags, None

    class OnnxParser:
        def __init__(self, network, logger):
            self.network, self.num_errors = network, 0

        def parse_from_file(self, path):
            self.network.onnx = path
            return True

        def get_error(self, i):  # pragma: no cover
            return "none"

    class TimingCache:
        def __init__(self, data):
            self.data = data

        def serialize(self):
            return b"timing:" + self.data

    class Config:
        def __init__(self):
            self.pools, self.profiles, self.cache = {}, [], None

        def set_memory_pool_limit(self, pool, size):
            self.pools[pool] = size

        def add_optimization_profile(self, profile):
            self.profiles.append(profile)

        def create_timing_cache(self, data):
            return TimingCache(bytes(data))

        def set_timing_cache(self, cache, ignore_mismatch):
            self.cache = cache

        def get_timing_cache(self):
            return self.cache

    class Profile:
        def set_shape(self, name, lo, opt, hi):
            self.shape = (name, lo, opt, hi)

    class Builder:
        def __init__(self, logger):
            pass

        def create_network(self, flags):
            return Network(flags)

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            state["builds"] += 1
            if state.get("fail_build"):
                return None
            (name, lo, opt, hi), = [p.shape for p in config.profiles]
            return json.dumps({"onnx": network.onnx, "strongly_typed": bool(network.flags & 1),
                               "max_batch": hi[0], "workspace": config.pools["workspace"]}).encode()

    class Engine:
        def __init__(self, blob):
            import onnxruntime as ort

            self.meta = json.loads(blob)
            self.session = ort.InferenceSession(self.meta["onnx"], providers=["CPUExecutionProvider"])
            self.names = [self.session.get_inputs()[0].name, self.session.get_outputs()[0].name]
            self.num_io_tensors = 2

        def get_tensor_name(self, i):
            return self.names[i]

        def get_tensor_mode(self, name):
            return TensorIOMode.INPUT if name == self.names[0] else TensorIOMode.OUTPUT

        def get_tensor_dtype(self, name):
            return DataType.FLOAT

        def create_execution_context(self):
            return Context(self)

    class Context:
        def __init__(self, engine):
            self.engine, self.addr, self.shape = engine, {}, None

        def set_input_shape(self, name, shape):
            assert 1 <= shape[0] <= self.engine.meta["max_batch"], shape
            self.shape = shape

        def set_tensor_address(self, name, ptr):
            self.addr[name] = ptr

        def execute_async_v3(self, stream_handle):
            assert state["ctx_depth"] == 1, "engine run without the CUDA context current"
            i, o = self.engine.names
            n = int(np.prod(self.shape))
            x = np.frombuffer(state["mem"][self.addr[i]], np.float32, count=n).reshape(self.shape)
            y = self.engine.session.run([o], {i: x})[0].astype(np.float32)
            state["mem"][self.addr[o]][:y.nbytes] = y.tobytes()
            state["runs"].append(self.shape[0])
            return True

    class Runtime:
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, blob):
            return Engine(blob)

    for obj in (Logger, NetworkDefinitionCreationFlag, MemoryPoolType, TensorIOMode, Builder, OnnxParser, Runtime):
        setattr(trt, obj.__name__, obj)
    trt.nptype = lambda dtype: np.float32

    cuda = types.ModuleType("pycuda.driver")

    class Device:
        def __init__(self, i):
            pass

        @staticmethod
        def count():
            return 1

        def name(self):
            return "Orin (test double)"

        def compute_capability(self):
            return (8, 7)

        def make_context(self):
            state["ctx_depth"] += 1
            return Ctx()

    class Ctx:
        def push(self):
            state["ctx_depth"] += 1

        def pop(self):
            state["ctx_depth"] -= 1

        def detach(self):
            state["detached"] += 1

    class Alloc:
        def __init__(self, nbytes):
            self.ptr = 4096 * (len(state["mem"]) + 1)
            state["mem"][self.ptr] = bytearray(nbytes)

        def __int__(self):
            return self.ptr

    class Stream:
        handle = 1234

        def synchronize(self):
            pass

    def htod(dev, host, stream):
        b = np.ascontiguousarray(host).tobytes()
        state["mem"][int(dev)][:len(b)] = b

    def dtoh(host, dev, stream):
        host[...] = np.frombuffer(state["mem"][int(dev)], host.dtype, count=host.size).reshape(host.shape)

    cuda.init = lambda: None
    cuda.Device, cuda.Stream, cuda.mem_alloc = Device, Stream, Alloc
    cuda.pagelocked_empty = lambda shape, dtype: np.zeros(shape, dtype)
    cuda.memcpy_htod_async, cuda.memcpy_dtoh_async = htod, dtoh
    pycuda = types.ModuleType("pycuda")
    pycuda.__spec__ = importlib.machinery.ModuleSpec("pycuda", None)
    pycuda.driver = cuda
    return trt, pycuda, cuda


@pytest.fixture
def fake_trt(monkeypatch):
    state = {"builds": 0, "runs": [], "mem": {}, "ctx_depth": 0, "detached": 0}
    trt, pycuda, cuda = _make_fakes(state)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setitem(sys.modules, "pycuda", pycuda)
    monkeypatch.setitem(sys.modules, "pycuda.driver", cuda)
    return state


@pytest.fixture
def bundle(arts, tmp_path):
    import shutil

    shutil.copytree(arts.bundle_dir, tmp_path / "b")
    return load_bundle(tmp_path / "b")


def test_auto_picks_tensorrt_builds_caches_and_matches_onnxruntime(fake_trt, bundle, caplog):
    from edge_ecg.render import to_model_input
    from edge_ecg.runtimes import open_runtime

    x = to_model_input(bundle.check_windows()["images"])
    with caplog.at_level(logging.INFO):
        rt = open_runtime(bundle, "auto", "int8", max_batch=4)
    assert rt.backend == "tensorrt" and "runtime auto-selection: tensorrt" in caplog.text
    plan = rt.engine_path
    assert plan.parent == bundle.root / "engines"
    assert plan.name == "int8-b4-orin-test-double-sm87-trt10.3.0.plan"
    side = json.loads(plan.with_suffix(".json").read_text())
    assert side["strongly_typed"] is True and side["onnx_sha256"] == bundle.files["model.int8.onnx"]
    assert json.loads(plan.read_bytes())["workspace"] == 1 << 30
    out = rt.run(x)  # 16 windows through a max-batch-4 engine
    assert fake_trt["runs"] == [4, 4, 4, 4] and out.shape == (16, 3)
    assert np.abs(out - bundle.check_windows()["logits_int8"]).max() < 1e-4
    assert rt.run(x[:3]).shape == (3, 3) and fake_trt["runs"][-1] == 3
    rt.close()
    assert fake_trt["ctx_depth"] == 0 and fake_trt["detached"] == 1
    assert list((bundle.root / "engines").glob("timing-*.cache"))
    # Second open: cache hit, no build. A different ONNX behind the same name: rebuild.
    with caplog.at_level(logging.INFO):
        open_runtime(bundle, "tensorrt", "int8", max_batch=4).close()
    assert fake_trt["builds"] == 1 and "engine cache hit" in caplog.text
    side["onnx_sha256"] = "0" * 64
    plan.with_suffix(".json").write_text(json.dumps(side))
    open_runtime(bundle, "tensorrt", "int8", max_batch=4).close()
    assert fake_trt["builds"] == 2


def test_fp32_engine_is_not_strongly_typed(fake_trt, bundle):
    from edge_ecg.runtimes.tensorrt_runtime import build_engine_file

    plan = build_engine_file(bundle, "fp32", max_batch=2)
    assert json.loads(plan.with_suffix(".json").read_text())["strongly_typed"] is False


def test_failed_build_is_an_error_or_a_logged_fallback(fake_trt, bundle, caplog):
    from edge_ecg.runtimes import open_runtime

    fake_trt["fail_build"] = True
    with pytest.raises(BundleError, match="model.int8.onnx: TensorRT failed to build"):
        open_runtime(bundle, "tensorrt", "int8")
    assert fake_trt["ctx_depth"] == 0
    with caplog.at_level(logging.WARNING):
        rt = open_runtime(bundle, "auto", "int8", threads=1)
    assert rt.backend == "onnxruntime" and "falling back to onnxruntime" in caplog.text


def test_engine_verify_command(fake_trt, bundle, capsys):
    from edge_ecg.cli import main

    assert main(["engine", "build", str(bundle.root), "--max-batch", "4"]) == 0
    assert main(["engine", "verify", str(bundle.root), "--runs", "3", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "verify tensorrt int8 vs onnxruntime int8 on 16 check windows" in out and "PASS" in out
