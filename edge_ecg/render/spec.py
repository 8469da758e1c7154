"""``RenderSpec``: how a window becomes an image. Stored in every bundle; a model is only valid with it.

The spec is a frozen dataclass so it can key caches (grid backgrounds, pixel geometry) and be
compared for equality between the bundle a model was trained with and the one serving it.
``to_dict``/``from_dict`` keep it TOML-safe (str, int, float, bool, list of str only).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from edge_ecg.config_table import from_table, to_table
from edge_ecg.errors import ConfigError

LAYOUTS = ("12lead", "strips")

# The clinical 3x4 grid, column-major: each column is 2.5 s of a 10 s window, as carts print it.
CLINICAL_COLUMNS = (("I", "II", "III"), ("aVR", "aVL", "aVF"), ("V1", "V2", "V3"), ("V4", "V5", "V6"))


@dataclass(frozen=True)
class RenderSpec:
    """Layout, size and scale of a rendered ECG window.

    - ``layout``: ``"12lead"`` (3 rows x 4 columns of 2.5 s each, plus a full-length rhythm strip
      of ``rhythm_lead``; what HeartBEiT was trained on) or ``"strips"`` (``leads`` stacked, each
      over the whole window; for monitors that send 1-3 leads).
    - ``leads``: for ``12lead`` the 12 leads in clinical column-major order (empty = standard);
      for ``strips`` the leads top to bottom (empty = every lead of the window, in its order).
    - ``mm_per_s``/``mm_per_mv``: paper speed and gain. The image width spans ``seconds`` of
      paper, which fixes pixels per mm; the gain uses the same pixels per mm so a model image is a
      faithful miniature of a printout (10 mm/mV, 25 mm/s by default).
    - ``line_width``: trace thickness in pixels (anti-aliased, fractional allowed).
    - ``grid``: draw the 5 mm paper grid (and the 1 mm grid where it is at least 3 px apart).
      Off by default for model images: at 224 px one millimetre is under a pixel, so the paper
      grid cannot be drawn faithfully and would only add texture.
    - ``center``: subtract each panel's median so baseline offsets (raw Holter data sits
      millivolts off zero) do not push the trace out of its panel.
    """

    layout: str = "12lead"
    leads: tuple[str, ...] = ()
    rhythm_lead: str = "II"
    seconds: float = 10.0
    width: int = 224
    height: int = 224
    line_width: float = 1.0
    mm_per_s: float = 25.0
    mm_per_mv: float = 10.0
    grid: bool = False
    center: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "leads", tuple(str(x) for x in self.leads))
        if self.layout not in LAYOUTS:
            raise ConfigError("RenderSpec.layout", f"unknown layout {self.layout!r} (known: {', '.join(LAYOUTS)})")
        if self.layout == "12lead" and self.leads and len(self.leads) != 12:
            raise ConfigError("RenderSpec.leads", f"layout 12lead needs 12 leads, got {len(self.leads)}")
        if len(set(self.leads)) != len(self.leads):
            raise ConfigError("RenderSpec.leads", f"a lead appears twice in {self.leads}")
        for name in ("seconds", "line_width", "mm_per_s", "mm_per_mv"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ConfigError(f"RenderSpec.{name}", f"must be a positive number, got {value!r}")
        for name in ("width", "height"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 16 <= value <= 8192:
                raise ConfigError(f"RenderSpec.{name}", f"must be an integer from 16 to 8192 pixels, got {value!r}")

    @property
    def panel_leads(self) -> tuple[str, ...]:
        """The leads in the order the layout places them (12lead: column-major)."""
        if self.layout == "12lead":
            return self.leads or tuple(lead for column in CLINICAL_COLUMNS for lead in column)
        return self.leads

    @property
    def px_per_mm(self) -> float:
        return self.width / (self.seconds * self.mm_per_s)

    @property
    def px_per_uv(self) -> float:
        return self.px_per_mm * self.mm_per_mv / 1000.0

    def to_dict(self) -> dict[str, Any]:
        """TOML-safe: tuples become lists; every field is written so a bundle is self-describing."""
        return to_table(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "RenderSpec") -> "RenderSpec":
        """From a TOML table (a bundle's ``[render]``, a training config's); unknown keys refused."""
        return from_table(cls, data, where)


STANDARD_SPEC = RenderSpec()
__all__ = ["RenderSpec", "LAYOUTS", "CLINICAL_COLUMNS", "STANDARD_SPEC"]
