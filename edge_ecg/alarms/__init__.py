"""Alarms: conditions, the IEC 60601-1-8 alarm manager, the event log, hooks and the control socket."""

from edge_ecg.alarms.conditions import CATALOG, Category, ConditionSpec, Priority, model_condition
from edge_ecg.alarms.event_log import EventLog, read_events
from edge_ecg.alarms.manager import AlarmEvent, AlarmManager, TriageLimits

__all__ = [
    "CATALOG",
    "Category",
    "ConditionSpec",
    "Priority",
    "model_condition",
    "EventLog",
    "read_events",
    "AlarmEvent",
    "AlarmManager",
    "TriageLimits",
]
