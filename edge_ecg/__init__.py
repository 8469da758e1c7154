"""edge-ecg: an offline bedside ECG appliance running HeartBEiT on NVIDIA Jetson.

Where a sample goes, by file name: ``firmware_bridge/codec.py`` (bytes to frames) ->
``edge_ecg/stream/`` (frames to sample blocks) -> ``edge_ecg/dsp/`` (filters, QRS, quality,
rhythm detectors) -> ``edge_ecg/render/`` (windows to images) -> ``edge_ecg/runtimes/``
(images to findings) -> ``edge_ecg/alarms/`` (conditions to alarms and their sinks).
"""

__version__ = "0.1.0"
