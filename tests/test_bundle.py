"""Bundles: written, loaded with hash verification, and refused when tampered, truncated or mismatched."""

from __future__ import annotations

import shutil
import sys

import numpy as np
import pytest

from edge_ecg.bundle import Label, dump_toml, load_bundle, sha256_file
from edge_ecg.errors import BundleError

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib


@pytest.fixture
def copy(arts, tmp_path):
    dst = tmp_path / "b"
    shutil.copytree(arts.bundle_dir, dst)
    return dst


def _edit_manifest(path, fn):
    m = tomllib.loads((path / "bundle.toml").read_text())
    fn(m)
    (path / "bundle.toml").write_text(dump_toml(m))


def test_loads_with_everything_the_interface_promises(arts):
    from edge_ecg.render import RenderSpec

    b = load_bundle(arts.bundle_dir)
    assert b.name == "tiny-test" and b.version == "0.1.0" and b.architecture == "heartbeit-tiny"
    assert b.labels[0] == Label("vt", 0.7, "high") and b.label_names == ("vt", "normal", "other")
    assert b.spec == RenderSpec(layout="strips")
    assert b.window_s == 10.0 and b.hop_s == 2.0 and b.input_shape == (3, 224, 224)
    assert b.onnx_path("int8").name == "model.int8.onnx" and b.onnx_path("fp32").is_file()
    assert set(b.files) == {"model.onnx", "model.int8.onnx", "check.npz"}
    assert b.provenance["parity_fp32"]["max_abs_logit_diff"] <= 1e-4
    assert load_bundle(arts.bundle_dir / "bundle.toml").root == b.root


@pytest.mark.parametrize("fname", ["model.onnx", "model.int8.onnx", "check.npz"])
def test_tampered_file_is_refused_naming_it(copy, fname):
    data = bytearray((copy / fname).read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit
    (copy / fname).write_bytes(bytes(data))
    with pytest.raises(BundleError, match=rf"{fname}: sha256 mismatch"):
        load_bundle(copy)


def test_truncated_file_is_refused(copy):
    p = copy / "model.int8.onnx"
    p.write_bytes(p.read_bytes()[:4096])
    with pytest.raises(BundleError, match=r"model.int8.onnx: sha256 mismatch \(file is 4096 bytes"):
        load_bundle(copy)


def test_missing_file_and_missing_manifest(copy):
    (copy / "model.onnx").unlink()
    with pytest.raises(BundleError, match="model.onnx: listed in bundle.toml but missing"):
        load_bundle(copy)
    (copy / "bundle.toml").unlink()
    with pytest.raises(BundleError, match="bundle.toml: bundle has no bundle.toml"):
        load_bundle(copy)


def test_mismatched_parts_are_refused(copy):
    def drop_label(m):
        m["labels"].pop()

    _edit_manifest(copy, drop_label)  # manifest edited, hashes still fine: parts no longer fit
    with pytest.raises(BundleError, match="check.npz: logits_fp32 shape .* 2 labels"):
        load_bundle(copy)


def test_label_count_mismatch_caught_by_runtime_without_check_windows(copy):
    from edge_ecg.runtimes import open_runtime

    def drop(m):
        m["labels"].pop()
        del m["files"]["check.npz"]

    _edit_manifest(copy, drop)
    b = load_bundle(copy)
    with pytest.raises(BundleError, match="model.int8.onnx: model has 3 outputs but bundle.toml lists 2 labels"):
        open_runtime(b, "onnxruntime", "int8")


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.update(format="edge-ecg-bundle/9"), "format 'edge-ecg-bundle/9'"),
    (lambda m: m["render"].update(width=256), "render size 256x224 does not match model input 224x224"),
    (lambda m: m["labels"][0].update(threshold=1.5), "threshold 1.5 is not a probability"),
    (lambda m: m["labels"][0].update(priority="urgent"), "priority 'urgent'"),
    (lambda m: m["labels"][1].update(name="vt"), "duplicate label names"),
    (lambda m: m["files"].pop("model.int8.onnx"), "model.int8.onnx: int8 model is not listed"),
    (lambda m: m["files"].update({"../evil": "0" * 64}), "plain names"),
    (lambda m: m.pop("hop_s"), "missing key 'hop_s'"),
])
def test_bad_manifest_is_refused_with_reason(copy, edit, message):
    _edit_manifest(copy, edit)
    with pytest.raises(BundleError, match=message):
        load_bundle(copy)


def test_not_toml(copy):
    (copy / "bundle.toml").write_text("name = [unclosed\n")
    with pytest.raises(BundleError, match="bundle.toml: not valid TOML"):
        load_bundle(copy)


def test_writer_refuses_to_overwrite_and_checks_files(arts, tmp_path):
    from edge_ecg.render import RenderSpec
    from export.bundle_writer import write_bundle

    kw = dict(name="x", spec=RenderSpec(layout="strips"), labels=["a", "b", "c"],
              fp32_onnx=arts.bundle_dir / "model.onnx", int8_onnx=arts.bundle_dir / "model.int8.onnx")
    b = write_bundle(tmp_path / "x", **kw)
    assert b.files["model.onnx"] == sha256_file(arts.bundle_dir / "model.onnx")
    with pytest.raises(BundleError, match="already exists"):
        write_bundle(tmp_path / "x", **kw)
    assert write_bundle(tmp_path / "x", overwrite=True, **kw).name == "x"
    # A spec whose size does not fit the model input can't be written (the writer loads what it wrote).
    with pytest.raises(BundleError):
        write_bundle(tmp_path / "y", **{**kw, "spec": RenderSpec(layout="strips", width=256),
                                        "check_images": np.zeros((1, 224, 224, 3), np.uint8)})
    assert not (tmp_path / "y").exists() and not list(tmp_path.glob(".y-*"))


def test_toml_writer_round_trips_awkward_values():
    data = {"name": 'a "quoted"\nname\\', "n": -3, "x": 1e-7, "flag": False, "list": [1.5, 2.0],
            "nested": {"deeper": {"k": "v"}, "empty": {}}, "rows": [{"a": 1}, {"a": 2, "b": [True]}],
            "key with space": "ok", "skipped": None}
    back = tomllib.loads(dump_toml(data))
    data.pop("skipped")
    assert back == data
