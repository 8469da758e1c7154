"""A 1-D CNN on the raw ECG signal: the kind of baseline HeartBEiT was compared against.

HeartBEiT (Vaid et al. 2023) reported that image pretraining beat CNNs trained on the signal
when labels are few. The study here (``export.train.lowlabel_af``) puts such a CNN beside the
image model on the same records: residual 1-D convolutions (kernel 7, stride-2 downsampling,
batch norm, ReLU) over one lead resampled to 150 Hz, global average pooling and a linear head;
~0.1 M parameters, small enough to train on 2 CPU cores. Each window is centred on its median
and scaled by its standard deviation, so the model sees shape, not the recorder's gain.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

FS = 150.0  # Hz the CNN sees (CinC 2017 is recorded at 300 Hz, MIT-BIH at 360 Hz)


class ResBlock1d(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(cin, cout, 7, stride, 3, bias=False)
        self.bn1 = nn.BatchNorm1d(cout)
        self.conv2 = nn.Conv1d(cout, cout, 7, 1, 3, bias=False)
        self.bn2 = nn.BatchNorm1d(cout)
        self.skip = (nn.Sequential(nn.Conv1d(cin, cout, 1, stride, bias=False), nn.BatchNorm1d(cout))
                     if stride != 1 or cin != cout else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(h)) + self.skip(x))


class ECGCNN1d(nn.Module):
    """(N, 1, T) normalised signal -> (N, num_classes) logits."""

    def __init__(self, num_classes: int = 1, width: int = 16) -> None:
        super().__init__()
        w = width
        self.stem = nn.Sequential(nn.Conv1d(1, w, 15, 2, 7, bias=False), nn.BatchNorm1d(w), nn.ReLU())
        self.blocks = nn.Sequential(ResBlock1d(w, w, 2), ResBlock1d(w, 2 * w, 2), ResBlock1d(2 * w, 4 * w, 2),
                                    ResBlock1d(4 * w, 4 * w, 2), ResBlock1d(4 * w, 8 * w, 2))
        self.head = nn.Linear(8 * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)).mean(dim=-1))


def normalise(signals: np.ndarray) -> np.ndarray:
    """(N, T) -> float32 (N, 1, T): minus each window's median, over its standard deviation."""
    x = np.asarray(signals, dtype=np.float32)
    x = x - np.median(x, axis=1, keepdims=True)
    x = x / (x.std(axis=1, keepdims=True) + 1e-3)
    return np.clip(x, -20, 20)[:, None, :]


def resample(signal: np.ndarray, fs: float, to: float = FS) -> np.ndarray:
    """Polyphase resampling of one lead to the CNN's rate (anti-aliased)."""
    from fractions import Fraction

    from scipy.signal import resample_poly

    f = Fraction(to / fs).limit_denominator(100)
    return resample_poly(np.asarray(signal, dtype=np.float64), f.numerator, f.denominator).astype(np.float32)
