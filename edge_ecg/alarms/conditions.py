"""Alarm conditions: what can alarm, how urgent it is, and whether it is about the patient or the box.

IEC 60601-1-8 separates *physiological* alarm conditions (the patient) from *technical* ones
(the equipment: leads off, signal lost, noise, inference failure, overrun, storage failed, model
unavailable) and gives each a
priority (high / medium / low). The catalogue below holds the defaults; a site changes priorities
through the daemon config, never by editing code.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Priority(enum.IntEnum):
    """IEC 60601-1-8 alarm priority; the integer order is the urgency order."""

    LOW = 1
    MEDIUM = 2
    HIGH = 3

    @classmethod
    def parse(cls, value: "str | int | Priority") -> "Priority":
        """``"high"``/``"medium"``/``"low"`` (any case) or 1..3; ``ValueError`` names the allowed values."""
        if isinstance(value, Priority):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return cls(value)
        if isinstance(value, str) and value.strip().upper() in cls.__members__:
            return cls[value.strip().upper()]
        raise ValueError(f"{value!r} is not a priority (allowed: high, medium, low)")

    @property
    def label(self) -> str:
        return self.name.lower()


class Category(str, enum.Enum):
    PHYSIOLOGICAL = "physiological"
    TECHNICAL = "technical"


@dataclass(frozen=True)
class ConditionSpec:
    """One kind of alarm condition: its name, category, default priority and latching."""

    name: str
    category: Category
    priority: Priority
    description: str
    latching: bool | None = None  # None = IEC default: latch high-priority physiological alarms

    @property
    def latches(self) -> bool:
        if self.latching is not None:
            return self.latching
        return self.category is Category.PHYSIOLOGICAL and self.priority is Priority.HIGH


# The classical rhythm alarms are the "red" alarms of bedside monitors (CinC 2015 definitions).
RHYTHM_CONDITIONS = (
    ConditionSpec("asystole", Category.PHYSIOLOGICAL, Priority.HIGH, "no QRS for >= 4 s"),
    ConditionSpec("extreme_bradycardia", Category.PHYSIOLOGICAL, Priority.HIGH, "HR < 40 bpm for 5 beats"),
    ConditionSpec("extreme_tachycardia", Category.PHYSIOLOGICAL, Priority.HIGH, "HR > 140 bpm for 17 beats"),
    ConditionSpec("ventricular_tachycardia", Category.PHYSIOLOGICAL, Priority.HIGH, ">= 5 ventricular beats > 100 bpm"),
    ConditionSpec("ventricular_fibrillation", Category.PHYSIOLOGICAL, Priority.HIGH, "fibrillatory waveform >= 4 s"),
    # not a CinC 2015 red alarm: medium priority, raised after 30 s of AF evidence (edge_ecg.dsp.af)
    ConditionSpec("atrial_fibrillation", Category.PHYSIOLOGICAL, Priority.MEDIUM, "irregular RR without consistent P waves >= 30 s"),
)

LEADS_OFF = ConditionSpec("leads_off", Category.TECHNICAL, Priority.MEDIUM, "an electrode is off")
SIGNAL_LOST = ConditionSpec("signal_lost", Category.TECHNICAL, Priority.MEDIUM, "no samples from the cart")
NOISE = ConditionSpec("noise", Category.TECHNICAL, Priority.LOW, "signal too noisy to analyse")
INFERENCE_FAILURE = ConditionSpec("inference_failure", Category.TECHNICAL, Priority.MEDIUM, "the model runtime failed")
OVERRUN = ConditionSpec("overrun", Category.TECHNICAL, Priority.LOW, "inference fell behind; windows coalesced")
# The box itself: the state disk full or failing (alarms still sound and show; the log holds them
# in memory until it can write), and a model bundle that failed to load or verify (that model is
# off; the classical alarms run).
STORAGE_FAILED = ConditionSpec("storage_failed", Category.TECHNICAL, Priority.MEDIUM, "the state disk is full or failing; alarms still sound and show")
MODEL_UNAVAILABLE = ConditionSpec("model_unavailable", Category.TECHNICAL, Priority.MEDIUM, "a model bundle failed to load or verify; classical alarms run")
AUDIO_FAILURE = ConditionSpec("audio_failure", Category.TECHNICAL, Priority.MEDIUM, "alarm sound cannot be played (no sound device)")

TECHNICAL_CONDITIONS = (LEADS_OFF, SIGNAL_LOST, NOISE, INFERENCE_FAILURE, OVERRUN, AUDIO_FAILURE, STORAGE_FAILED, MODEL_UNAVAILABLE)

# Technical *events*: logged and announced once, never held as an alarm state (not in CATALOG).
RESTARTED = ConditionSpec("restarted", Category.TECHNICAL, Priority.LOW, "the daemon restarted; alarm state restored from disk", latching=False)
TECHNICAL_EVENTS = (RESTARTED,)

CATALOG: dict[str, ConditionSpec] = {c.name: c for c in RHYTHM_CONDITIONS + TECHNICAL_CONDITIONS}

MODEL_PREFIX = "model:"


def model_condition(label: str, priority: "str | int | Priority", bundle: str = "") -> ConditionSpec:
    """A physiological condition raised by a model finding (``model:<label>``)."""
    where = f" ({bundle})" if bundle else ""
    return ConditionSpec(
        f"{MODEL_PREFIX}{label}", Category.PHYSIOLOGICAL, Priority.parse(priority), f"model finding {label}{where}"
    )
