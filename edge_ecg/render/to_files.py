"""A record's windows to PNG files: what the model sees and the clinician snapshot, side by side.

Used by ``edge-ecg render`` and the interim ``make demo``; the screening report and alarm
evidence call ``render``/``snapshot_png`` directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edge_ecg.records.record import Record
from edge_ecg.render.model_view import render
from edge_ecg.render.snapshot import snapshot_png
from edge_ecg.render.spec import RenderSpec

_TWELVE_SOURCE = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")


def default_spec(record: Record, **overrides) -> RenderSpec:
    """``12lead`` for records that have (or can derive) the 12 leads, else ``strips`` of up to 3 leads."""
    if "layout" not in overrides:
        overrides["layout"] = "12lead" if all(x in record.leads for x in _TWELVE_SOURCE) else "strips"
    if overrides["layout"] == "strips" and not overrides.get("leads"):
        overrides["leads"] = tuple(record.leads[:3])
    return RenderSpec(**overrides)


@dataclass(frozen=True)
class RenderedWindow:
    index: int
    start_s: float
    model_png: Path
    snapshot_png: Path


def render_to_files(record: Record, out_dir: str | Path, spec: RenderSpec, hop_s: float | None = None,
                    max_windows: int | None = None) -> list[RenderedWindow]:
    """Cut ``record`` into ``spec.seconds`` windows every ``hop_s`` and write both PNGs of each."""
    from PIL import Image

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    size = int(round(spec.seconds * record.fs))
    hop = max(1, int(round((hop_s or spec.seconds) * record.fs)))
    name = record.name or Path(record.source).stem or "record"
    done: list[RenderedWindow] = []
    for k, start in enumerate(range(0, max(record.n_samples - size, 0) + 1, hop)):
        if max_windows is not None and k >= max_windows:
            break
        window = record.slice(start, start + size)
        model = out / f"{name}_w{k:03d}_model.png"
        Image.fromarray(render(window, spec)).save(model)
        paper = snapshot_png(window, out / f"{name}_w{k:03d}_paper.png", title=f"{name}  window {k}  from {start / record.fs:.1f} s")
        done.append(RenderedWindow(k, start / record.fs, model, paper))
    return done
