"""Live sample streams: the value that flows (``SampleBlock``) and the sources that yield it."""

from edge_ecg.stream.block import SampleBlock, SourceState

__all__ = ["SampleBlock", "SourceState"]
