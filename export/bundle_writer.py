"""Write a bundle directory (format: ``edge_ecg.bundle``) from ONNX files, a RenderSpec and labels.

The check windows' reference logits are computed here with ONNX Runtime for both precisions, so
``edge-ecg engine verify`` on a device compares its engine with what the factory saw. The
directory is written beside the target and renamed into place, so a crash never leaves a
half-written bundle under the real name.
"""

from __future__ import annotations

import datetime as dt
import platform
import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from edge_ecg.bundle import (BUNDLE_FORMAT, CHECK_FILE, MANIFEST, MODEL_FILES, Bundle, Label, dump_toml,
                             load_bundle, sha256_file)
from edge_ecg.errors import BundleError


def tool_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for mod in ("edge_ecg", "torch", "onnx", "onnxruntime", "numpy"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:
            pass
    return out


def _labels(labels: Sequence[Label | str | Mapping[str, Any]]) -> list[Label]:
    out = []
    for l in labels:
        if isinstance(l, Label):
            out.append(l)
        elif isinstance(l, str):
            out.append(Label(l))
        else:
            out.append(Label(str(l["name"]), float(l.get("threshold", 0.5)), str(l.get("priority", "medium"))))
    return out


def write_bundle(
    out_dir: str | Path,
    *,
    name: str,
    spec,
    labels: Sequence[Label | str | Mapping[str, Any]],
    fp32_onnx: str | Path,
    int8_onnx: str | Path,
    version: str = "0.1.0",
    architecture: str = "heartbeit",
    window_s: float | None = None,
    hop_s: float = 2.0,
    check_images: np.ndarray | None = None,
    check_ids: Sequence[str] = (),
    provenance: Mapping[str, Any] | None = None,
    input_name: str = "images",
    output_name: str = "logits",
    overwrite: bool = False,
    input_leads: Sequence[str] = (),
) -> Bundle:
    """Write and verify the bundle; returns it loaded (so a bundle that cannot load is never written)."""
    from edge_ecg.render import MEAN, STD, to_model_input

    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise BundleError(out_dir, "already exists (pass overwrite=True / --force to replace it)")
    labels = _labels(labels)
    spec_dict = spec.to_dict()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        shutil.copyfile(fp32_onnx, tmp / MODEL_FILES["fp32"])
        shutil.copyfile(int8_onnx, tmp / MODEL_FILES["int8"])
        if check_images is not None and len(check_images):
            images = np.ascontiguousarray(check_images, dtype=np.uint8)
            x = to_model_input(images)
            logits = {p: _ort_logits(tmp / f, x, input_name, output_name) for p, f in MODEL_FILES.items()}
            ids = np.array(list(check_ids) or [str(i) for i in range(len(images))])
            np.savez_compressed(tmp / CHECK_FILE, images=images, logits_fp32=logits["fp32"], logits_int8=logits["int8"], ids=ids)
        files = {f.name: sha256_file(f) for f in sorted(tmp.iterdir()) if f.is_file()}
        manifest = {
            "format": BUNDLE_FORMAT,
            "name": name,
            "version": version,
            "created": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
            "window_s": float(window_s if window_s is not None else spec.seconds),
            "hop_s": float(hop_s),
            "model": {
                "architecture": architecture,
                "input_name": input_name,
                "output_name": output_name,
                "input_shape": [-1, 3, int(spec.height), int(spec.width)],
                "mean": [float(MEAN)] * 3,
                "std": [float(STD)] * 3,
                "output": ("logits; probability = sigmoid(scale * logit + bias) per label (its [labels.calibration])"
                           if labels and all(l.calibration is not None for l in labels)
                           else "logits; probability = sigmoid(logit) per label"),
            },
            "render": spec_dict,
            **({"input": {"leads": [str(x) for x in input_leads],
                          "rule": "edge_ecg.records.lead_select.select_leads: these leads in this order; "
                                  "a missing one is filled by the record's next unused lead"}} if input_leads else {}),
            **({"calibrated": True} if labels and all(l.calibration is not None for l in labels) else {}),
            "labels": [l.to_dict() for l in labels],
            "files": files,
            "provenance": {"tools": tool_versions(), **dict(provenance or {})},
        }
        (tmp / MANIFEST).write_text(dump_toml(manifest), encoding="utf-8")
        load_bundle(tmp)  # refuse to publish anything that does not load
        tmp.chmod(0o755)  # mkdtemp makes it private; a bundle is read by the service user
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return load_bundle(out_dir)


def _ort_logits(path: Path, x: np.ndarray, input_name: str, output_name: str) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = [sess.run([output_name], {input_name: x[i:i + 16]})[0] for i in range(0, len(x), 16)]
    return np.concatenate(out).astype(np.float32)


def bundle_from_model(
    model,
    out_dir: str | Path,
    *,
    name: str,
    spec,
    labels: Sequence[Label | str | Mapping[str, Any]],
    calibration,
    check=None,
    quant_config=None,
    version: str = "0.1.0",
    window_s: float | None = None,
    hop_s: float = 2.0,
    provenance: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> Bundle:
    """The whole factory step: export FP32 ONNX, check parity, quantize on ``calibration``, write.

    ``calibration`` and ``check`` are ``export.calibration.WindowSet``s (rendered real windows);
    ``check`` defaults to up to 16 calibration windows. Parity (PyTorch vs ONNX FP32 on the check
    windows) and the calibration hash go into the provenance.
    """
    from edge_ecg.render import to_model_input
    from export.onnx_export import check_parity, export_onnx
    from export.quantize import QuantConfig, quantize_qdq

    quant_config = quant_config or QuantConfig()
    if Path(out_dir).exists() and not overwrite:  # before minutes of export and calibration
        raise BundleError(out_dir, "already exists (pass overwrite=True / --force to replace it)")
    if len(labels) != model.num_classes:
        raise BundleError(out_dir, f"{len(labels)} labels for a model with {model.num_classes} outputs")
    if check is None:
        from export.calibration import WindowSet

        k = min(16, len(calibration))
        check = WindowSet(calibration.images[:k], calibration.ids[:k], calibration.seed, calibration.sources)
    with tempfile.TemporaryDirectory(prefix="edge-ecg-export-") as tmpd:
        tmpd = Path(tmpd)
        fp32 = export_onnx(model, tmpd / "model.onnx")
        parity = check_parity(model, fp32, to_model_input(check.images))
        int8 = quantize_qdq(fp32, tmpd / "model.int8.onnx", to_model_input(calibration.images), quant_config)
        prov = {
            "model": {"family": "heartbeit", "size": model.cfg.name, "config": model.cfg.to_dict(),
                      "parameters": int(sum(p.numel() for p in model.parameters()))},
            "calibration": calibration.provenance(),
            "quantization": quant_config.to_dict(),
            "parity_fp32": {"windows": parity.n, "max_abs_logit_diff": parity.max_abs_diff,
                            "top_label_agreement": parity.top_label_agreement},
            **dict(provenance or {}),
        }
        return write_bundle(
            out_dir, name=name, spec=spec, labels=labels, fp32_onnx=fp32, int8_onnx=int8, version=version,
            architecture=f"heartbeit-{model.cfg.name}", window_s=window_s, hop_s=hop_s,
            check_images=check.images, check_ids=check.ids, provenance=prov, overwrite=overwrite,
        )
