"""Live sample streams: the value that flows (``SampleBlock``) and the sources that yield it."""

from edge_ecg.stream.block import AuxChannel, SampleBlock, SourceState

__all__ = ["AuxChannel", "SampleBlock", "SourceState"]
