"""Audible alarms: IEC 60601-1-8 bursts synthesised in numpy, played through ALSA (``aplay``)."""

from edge_ecg.sound.sounder import CONDITION, AlarmSounder, SoundConfig, render_sounds
from edge_ecg.sound.tones import BURSTS, HIGH, LOW, MEDIUM, RATE, BurstSpec, burst

__all__ = ["CONDITION", "AlarmSounder", "SoundConfig", "render_sounds", "BURSTS", "HIGH", "LOW", "MEDIUM", "RATE", "BurstSpec", "burst"]
