"""The model bundle: the unit flashed to a unit, loaded only when every file matches its hash.

A bundle is a directory::

    bundle.toml       name, version, architecture, input shape and normalisation, the RenderSpec,
                      labels (default threshold, alarm priority), window_s/hop_s, provenance,
                      and a sha256 for every other file
    model.onnx        FP32 graph
    model.int8.onnx   QDQ graph (symmetric int8), what TensorRT and ONNX Runtime both run
    check.npz         check windows: rendered images (uint8 N,H,W,3) and reference logits,
                      used by ``edge-ecg engine verify`` on the device
    engines/          TensorRT engines built on the device (cache; not hashed, keyed by GPU,
                      TensorRT version and precision)

``load_bundle`` verifies every hash and the consistency of the parts (image size, label count)
and refuses anything else with a ``BundleError`` naming the file and the problem: a unit must
never run a model whose bytes are not the ones that were validated.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from edge_ecg.errors import BundleError

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10 (JetPack 6)
    import tomli as tomllib

__all__ = [
    "BUNDLE_FORMAT",
    "MANIFEST",
    "PRECISIONS",
    "PRIORITIES",
    "Label",
    "Calibration",
    "OperatingPoint",
    "CALIBRATION_METHODS",
    "Bundle",
    "load_bundle",
    "sha256_file",
    "dump_toml",
]

BUNDLE_FORMAT = "edge-ecg-bundle/1"
MANIFEST = "bundle.toml"
MODEL_FILES = {"fp32": "model.onnx", "int8": "model.int8.onnx"}
CHECK_FILE = "check.npz"
PRECISIONS = tuple(MODEL_FILES)
PRIORITIES = ("high", "medium", "low", "none")  # IEC 60601-1-8 priorities; "none" = finding only
CALIBRATION_METHODS = ("platt", "temperature")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-np.clip(x, -60.0, 60.0)))).astype(np.float32)


@dataclass(frozen=True)
class Calibration:
    """How a label's logit becomes a calibrated probability: ``sigmoid(scale * logit + bias)``.

    ``temperature`` scaling is ``scale = 1 / T``, ``bias = 0``; ``platt`` also fits the bias,
    which class-weighted training needs (weighting positives by neg/pos shifts every logit up,
    and no temperature can move it back). Fitted by the factory on validation records only.
    """

    method: str = "platt"
    scale: float = 1.0
    bias: float = 0.0
    fitted_on: str = ""

    def apply(self, logits: np.ndarray) -> np.ndarray:
        return _sigmoid(self.scale * np.asarray(logits, dtype=np.float64) + self.bias)

    def to_dict(self) -> dict[str, Any]:
        out = {"method": self.method, "scale": float(self.scale), "bias": float(self.bias)}
        if self.fitted_on:
            out["fitted_on"] = self.fitted_on
        return out


@dataclass(frozen=True)
class OperatingPoint:
    """A validated threshold: the sensitivity and specificity measured out of fold at the rule
    that chose it on validation records (each a dict ``value``/``low``/``high``, 95% interval)."""

    name: str
    threshold: float
    rule: str = ""
    sensitivity: Mapping[str, Any] = field(default_factory=dict)
    specificity: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "threshold": float(self.threshold), "rule": self.rule,
                "sensitivity": dict(self.sensitivity), "specificity": dict(self.specificity), **dict(self.extra)}


@dataclass(frozen=True)
class Label:
    """One model output: its name, the default decision threshold on its (calibrated) probability,
    its alarm priority; and, from bundles 0.3 on, a display name, whether the factory meant it
    to alarm, its calibration and its validated operating points."""

    name: str
    threshold: float = 0.5
    priority: str = "medium"
    display_name: str = ""
    alarm_capable: bool = False
    calibration: Calibration | None = None
    operating_points: tuple[OperatingPoint, ...] = ()

    @property
    def title(self) -> str:
        """What a person reads: the display name, else the label name."""
        return self.display_name or self.name

    def operating_point(self, threshold: float | None = None, tol: float = 5e-7) -> OperatingPoint | None:
        """The validated operating point at ``threshold`` (default: the label's own), or None."""
        thr = self.threshold if threshold is None else float(threshold)
        return next((op for op in self.operating_points if abs(op.threshold - thr) <= tol), None)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "threshold": float(self.threshold), "priority": self.priority}
        if self.display_name:
            out["display_name"] = self.display_name
        if self.alarm_capable:
            out["alarm_capable"] = True
        if self.calibration is not None:
            out["calibration"] = self.calibration.to_dict()
        if self.operating_points:
            out["operating_points"] = [op.to_dict() for op in self.operating_points]
        return out


@dataclass(frozen=True)
class Bundle:
    """A loaded, verified bundle. Paths are inside ``root``; nothing here imports torch."""

    root: Path
    name: str
    version: str
    architecture: str
    labels: tuple[Label, ...]
    window_s: float
    hop_s: float
    input_name: str
    output_name: str
    input_shape: tuple[int, int, int]  # (C, H, W); batch is dynamic
    mean: tuple[float, ...]
    std: tuple[float, ...]
    render: dict[str, Any]
    files: dict[str, str]
    provenance: dict[str, Any] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)
    signature: Any = None  # edge_ecg.signing.SignatureCheck when loaded under a trust policy

    @functools.cached_property
    def spec(self):
        """The ``RenderSpec`` this model was trained on (rebuilt from ``[render]`` once)."""
        from edge_ecg.render import RenderSpec

        try:
            return RenderSpec.from_dict(self.render, "render")
        except Exception as exc:
            raise BundleError(self.root / MANIFEST, f"[render] is not a valid RenderSpec: {exc}") from None

    @property
    def input_leads(self) -> tuple[str, ...]:
        """The leads the model was trained on, in order (``[input] leads``); empty = as the render
        spec draws them. ``edge_ecg.records.lead_select.select_leads`` applies them before rendering."""
        return tuple(self.manifest.get("input", {}).get("leads", ()))

    @property
    def label_names(self) -> tuple[str, ...]:
        return tuple(l.name for l in self.labels)

    @property
    def thresholds(self) -> np.ndarray:
        return np.array([l.threshold for l in self.labels], dtype=np.float32)

    @property
    def calibrated(self) -> bool:
        """True when the bundle says its probabilities are calibrated and every label carries its
        calibration (bundles before 0.3 are not: their probabilities are raw sigmoids)."""
        return bool(self.manifest.get("calibrated", False)) and all(l.calibration is not None for l in self.labels)

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """Model logits (N, labels) -> the probabilities thresholds apply to: each label's
        calibration where it has one, the plain sigmoid otherwise."""
        logits = np.asarray(logits)
        out = np.empty(logits.shape, dtype=np.float32)
        for j, label in enumerate(self.labels):
            out[:, j] = label.calibration.apply(logits[:, j]) if label.calibration else _sigmoid(logits[:, j])
        return out

    def onnx_path(self, precision: str = "int8") -> Path:
        if precision not in MODEL_FILES:
            raise BundleError(self.root, f"no precision {precision!r} (bundles hold {', '.join(PRECISIONS)})")
        return self.root / MODEL_FILES[precision]

    @property
    def engine_dir(self) -> Path:
        return self.root / "engines"

    def check_windows(self) -> dict[str, np.ndarray]:
        """The check windows: ``images`` uint8 (N,H,W,3), ``logits_fp32``, ``logits_int8``, ``names``."""
        path = self.root / CHECK_FILE
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(chunk)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def _req(table: Mapping[str, Any], key: str, kind, where: Path, section: str = ""):
    name = f"{section}.{key}" if section else key
    if key not in table:
        raise BundleError(where, f"missing key {name!r}")
    value = table[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise BundleError(where, f"key {name!r} must be {getattr(kind, '__name__', kind)}, got {value!r}")
    return value


def load_bundle(path: str | Path, verify: bool = True, trust: Any = None) -> Bundle:
    """Read ``bundle.toml``, verify every listed file's sha256 and the parts' consistency.

    ``path`` is the bundle directory or its ``bundle.toml``. Raises ``BundleError`` naming the
    file: missing, unlisted model file, hash mismatch (tampered or truncated), unknown format,
    bad label, or parts that do not fit each other (image size vs RenderSpec, logits vs labels).
    With ``trust`` (an ``edge_ecg.signing.TrustPolicy``) the signature over ``bundle.toml`` is
    checked first (``SignatureError``, a ``BundleError``, when refused), so a unit that loads a
    bundle through here never runs one its trusted keys did not sign.
    """
    root = Path(path)
    if root.name == MANIFEST:
        root = root.parent
    manifest_path = root / MANIFEST
    if not root.is_dir():
        raise BundleError(root, "bundle directory not found")
    if not manifest_path.is_file():
        raise BundleError(manifest_path, "bundle has no bundle.toml")
    raw_manifest = manifest_path.read_bytes()  # read once: the bytes verified are the bytes parsed
    signature = None
    if trust is not None:
        from edge_ecg.signing import check_signature

        signature = check_signature(root, trust, manifest=raw_manifest)
    try:
        m = tomllib.loads(raw_manifest.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(manifest_path, f"not valid TOML ({exc})") from None

    fmt = m.get("format")
    if fmt != BUNDLE_FORMAT:
        raise BundleError(manifest_path, f"format {fmt!r} is not {BUNDLE_FORMAT!r}")
    model = _req(m, "model", dict, manifest_path)
    files = _req(m, "files", dict, manifest_path)
    render = _req(m, "render", dict, manifest_path)
    raw_labels = _req(m, "labels", list, manifest_path)

    labels = []
    for i, item in enumerate(raw_labels):
        if not isinstance(item, dict):
            raise BundleError(manifest_path, f"labels[{i}] must be a table")
        name = _req(item, "name", str, manifest_path, f"labels[{i}]")
        thr = _req(item, "threshold", float, manifest_path, f"labels[{i}]")
        pri = _req(item, "priority", str, manifest_path, f"labels[{i}]")
        if not (0.0 <= thr <= 1.0) or math.isnan(thr):
            raise BundleError(manifest_path, f"label {name!r}: threshold {thr} is not a probability in [0, 1]")
        if pri not in PRIORITIES:
            raise BundleError(manifest_path, f"label {name!r}: priority {pri!r} is not one of {', '.join(PRIORITIES)}")
        labels.append(Label(name, thr, pri, **_label_extras(item, name, manifest_path)))
    if not labels:
        raise BundleError(manifest_path, "no labels")
    names = [l.name for l in labels]
    if len(set(names)) != len(names):
        raise BundleError(manifest_path, f"duplicate label names in {names}")

    shape = _req(model, "input_shape", list, manifest_path, "model")
    if len(shape) != 4 or not all(isinstance(s, int) for s in shape) or shape[1] != 3:
        raise BundleError(manifest_path, f"model.input_shape {shape} is not [batch, 3, H, W]")
    c, h, w = shape[1:]
    spec_w, spec_h = render.get("width"), render.get("height")
    if (spec_w, spec_h) != (w, h):
        raise BundleError(manifest_path, f"render size {spec_w}x{spec_h} does not match model input {w}x{h}")
    mean = tuple(float(v) for v in _req(model, "mean", list, manifest_path, "model"))
    std = tuple(float(v) for v in _req(model, "std", list, manifest_path, "model"))
    if len(mean) != 3 or len(std) != 3 or any(s <= 0 for s in std):
        raise BundleError(manifest_path, f"model.mean {mean} / model.std {std} must be 3 values, std > 0")

    for precision, fname in MODEL_FILES.items():
        if fname not in files:
            raise BundleError(root / fname, f"{precision} model is not listed in bundle.toml [files]")
    digests: dict[str, str] = {}
    for fname, digest in files.items():
        if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise BundleError(manifest_path, f"[files] {fname!r}: {digest!r} is not a sha256 hex digest")
        fpath = root / fname
        if "/" in fname or "\\" in fname or fname.startswith("."):
            raise BundleError(manifest_path, f"[files] {fname!r}: bundle files must be plain names in the bundle directory")
        if not fpath.is_file():
            raise BundleError(fpath, "listed in bundle.toml but missing")
        if verify:
            actual = sha256_file(fpath)
            if actual != digest:
                raise BundleError(
                    fpath, f"sha256 mismatch (file is {fpath.stat().st_size} bytes; tampered or truncated): "
                           f"expected {digest[:16]}..., got {actual[:16]}..."
                )
        digests[fname] = digest

    bundle = Bundle(
        root=root.resolve(),
        name=_req(m, "name", str, manifest_path),
        version=_req(m, "version", str, manifest_path),
        architecture=_req(model, "architecture", str, manifest_path, "model"),
        labels=tuple(labels),
        window_s=_req(m, "window_s", float, manifest_path),
        hop_s=_req(m, "hop_s", float, manifest_path),
        input_name=_req(model, "input_name", str, manifest_path, "model"),
        output_name=_req(model, "output_name", str, manifest_path, "model"),
        input_shape=(c, h, w),
        mean=mean,
        std=std,
        render=dict(render),
        files=digests,
        provenance=dict(m.get("provenance", {})),
        manifest=m,
        signature=signature,
    )
    inp = m.get("input", {})
    if not isinstance(inp, dict) or not isinstance(inp.get("leads", []), list) \
            or not all(isinstance(x, str) and x for x in inp.get("leads", [])):
        raise BundleError(manifest_path, f"[input] leads must be a list of lead names, got {inp!r}")
    if bundle.window_s <= 0 or bundle.hop_s <= 0:
        raise BundleError(manifest_path, f"window_s {bundle.window_s} and hop_s {bundle.hop_s} must be > 0")

    if CHECK_FILE in digests:
        try:
            check = bundle.check_windows()
        except Exception as exc:
            raise BundleError(root / CHECK_FILE, f"unreadable check windows ({exc})") from None
        images = check.get("images")
        if images is None or images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (h, w, 3):
            raise BundleError(root / CHECK_FILE, f"images must be uint8 (N,{h},{w},3), got "
                                                 f"{None if images is None else (images.dtype, images.shape)}")
        for key in ("logits_fp32", "logits_int8"):
            lg = check.get(key)
            if lg is not None and lg.shape != (images.shape[0], len(labels)):
                raise BundleError(root / CHECK_FILE, f"{key} shape {lg.shape} does not match "
                                                     f"{images.shape[0]} windows x {len(labels)} labels")
    return bundle


def _unit_interval(d: Any, what: str, where: Path) -> dict:
    """A ``{value, low, high}`` table of probabilities (Se/Sp); missing ends are allowed."""
    if not isinstance(d, Mapping):
        raise BundleError(where, f"{what} must be a table {{value, low, high}}, got {d!r}")
    for k, v in d.items():
        if k in ("value", "low", "high") and (isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0):
            raise BundleError(where, f"{what}.{k} = {v!r} is not a proportion in [0, 1]")
    return dict(d)


def _label_extras(item: Mapping[str, Any], name: str, where: Path) -> dict[str, Any]:
    """The optional label keys of bundles 0.3: display name, alarm-capable flag, calibration and
    operating points, checked so a bad value names the label instead of misbehaving later."""
    out: dict[str, Any] = {}
    if "display_name" in item:
        out["display_name"] = _req(item, "display_name", str, where, f"label {name}")
    if "alarm_capable" in item:
        out["alarm_capable"] = _req(item, "alarm_capable", bool, where, f"label {name}")
    cal = item.get("calibration")
    if cal is not None:
        if not isinstance(cal, Mapping) or cal.get("method") not in CALIBRATION_METHODS:
            raise BundleError(where, f"label {name!r}: calibration must be a table with method in "
                                     f"{', '.join(CALIBRATION_METHODS)}, got {cal!r}")
        scale, bias = cal.get("scale", 1.0), cal.get("bias", 0.0)
        for k, v in (("scale", scale), ("bias", bias)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise BundleError(where, f"label {name!r}: calibration.{k} = {v!r} is not a finite number")
        if scale <= 0:
            raise BundleError(where, f"label {name!r}: calibration.scale {scale} must be > 0 (it may not flip the ranking)")
        if cal["method"] == "temperature" and bias != 0:
            raise BundleError(where, f"label {name!r}: temperature scaling has no bias (got {bias})")
        out["calibration"] = Calibration(cal["method"], float(scale), float(bias), str(cal.get("fitted_on", "")))
    ops = item.get("operating_points", [])
    if not isinstance(ops, list):
        raise BundleError(where, f"label {name!r}: operating_points must be an array of tables")
    points = []
    for k, op in enumerate(ops):
        what = f"label {name!r} operating_points[{k}]"
        if not isinstance(op, Mapping):
            raise BundleError(where, f"{what} must be a table")
        thr = _req(op, "threshold", float, where, what)
        if not 0.0 <= thr <= 1.0:
            raise BundleError(where, f"{what}: threshold {thr} is not a probability in [0, 1]")
        extra = {k2: v for k2, v in op.items() if k2 not in ("name", "threshold", "rule", "sensitivity", "specificity")}
        points.append(OperatingPoint(str(op.get("name", f"op{k}")), float(thr), str(op.get("rule", "")),
                                     _unit_interval(op.get("sensitivity", {}), f"{what}.sensitivity", where),
                                     _unit_interval(op.get("specificity", {}), f"{what}.specificity", where), extra))
    if points:
        out["operating_points"] = tuple(points)
    return out


# --- a small TOML writer (tomllib only reads) --------------------------------------------------

_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(k: str) -> str:
    return k if _BARE.match(k) else _str(k)


def _str(s: str) -> str:
    out = s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
    out = "".join(ch if ord(ch) >= 0x20 or ch in "\\" else f"\\u{ord(ch):04x}" for ch in out)
    return f'"{out}"'


def _value(v: Any, where: str) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if math.isnan(f):
            return "nan"
        if math.isinf(f):
            return "inf" if f > 0 else "-inf"
        return repr(f)
    if isinstance(v, str):
        return _str(v)
    if isinstance(v, Path):
        return _str(v.as_posix())
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x, where) for x in v) + "]"
    if isinstance(v, Mapping):
        return "{" + ", ".join(f"{_key(str(k))} = {_value(x, where)}" for k, x in v.items() if x is not None) + "}"
    raise TypeError(f"{where}: cannot write {type(v).__name__} {v!r} to TOML")


def _is_table_array(v: Any) -> bool:
    return isinstance(v, (list, tuple)) and len(v) > 0 and all(isinstance(x, Mapping) for x in v)


def _emit(table: Mapping[str, Any], prefix: str, lines: list[str]) -> None:
    scalars = [(k, v) for k, v in table.items() if v is not None and not isinstance(v, Mapping) and not _is_table_array(v)]
    for k, v in scalars:
        lines.append(f"{_key(str(k))} = {_value(v, prefix + str(k))}")
    for k, v in table.items():
        name = f"{prefix}{_key(str(k))}"
        if isinstance(v, Mapping):
            lines.append("")
            lines.append(f"[{name}]")
            _emit(v, name + ".", lines)
        elif _is_table_array(v):
            for item in v:
                lines.append("")
                lines.append(f"[[{name}]]")
                _emit(item, name + ".", lines)


def dump_toml(data: Mapping[str, Any]) -> str:
    """TOML text for nested dicts of str/int/float/bool/lists; ``None`` values are left out.

    Hand-written because ``tomllib`` only reads and the appliance should not need a writer
    package for one file; the output is checked by reading it back with ``tomllib``.
    """
    lines: list[str] = []
    _emit(data, "", lines)
    text = "\n".join(lines).lstrip("\n") + "\n"
    tomllib.loads(text)  # what we write must read back
    return text
