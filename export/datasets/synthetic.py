"""Synthetic 12-lead ECGs from ``deepfake-ecg`` (Pulse2Pulse GAN, Thambawita et al., Sci Rep 2021).

The package (PyPI ``deepfake-ecg``, MIT licence; factory side only, it needs torch) ships a
trained generator that maps uniform noise (1, 8, 5000) to 10 s at 500 Hz of the eight
independent leads I, II, V1-V6. Its own ``generate()`` writes one text file per ECG after
multiplying the output by 6000; here the generator is called directly, in batches, with a
seeded torch generator, so the same seed gives the same ECGs.

Units, checked against real ECGs before use (``tests/test_corpus.py`` keeps checking): the
generator output times 6000 is in microvolts. Over 16 generated ECGs the median lead II
peak-to-peak was ~1.1 mV and V3 ~2.1 mV; over 40 PTB-XL records (mV in their headers) 1.25 mV
and 2.04 mV. The four limb leads the generator does not produce follow from Einthoven's and
Goldberger's relations: III = II - I, aVR = -(I + II)/2, aVL = I - II/2, aVF = II - I/2.
"""

from __future__ import annotations

import os
from typing import Iterator

import numpy as np

from edge_ecg.records import Record
from edge_ecg.records.leads import STANDARD_12

FS = 500.0
SAMPLES = 5000
SCALE_UV = 6000.0  # generator output x 6000 = microvolts (see the module docstring)
GENERATED = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")


def load_generator(device: str = "cpu"):
    """The package's Pulse2Pulse generator with its shipped weights, in eval mode."""
    import torch

    try:
        import deepfakeecg
        from deepfakeecg.models import Generator
    except ImportError as exc:  # a factory extra, not an appliance dependency
        raise ImportError("synthetic ECGs need the factory's `deepfake-ecg` package "
                          "(pip install -e '.[build]')") from exc
    net = Generator()
    path = os.path.join(os.path.dirname(deepfakeecg.__file__), "checkpoints", "g_stat.pt")
    state = torch.load(path, map_location=device, weights_only=False)
    net.load_state_dict(state["stat_dict"])
    return net.to(device).eval()


def twelve_leads(eight_uv: np.ndarray) -> np.ndarray:
    """(N, 8, T) in the generator's lead order -> (N, T, 12) in ``STANDARD_12`` order."""
    i, ii = eight_uv[:, 0], eight_uv[:, 1]
    derived = {"I": i, "II": ii, "III": ii - i, "aVR": -(i + ii) / 2, "aVL": i - ii / 2, "aVF": ii - i / 2}
    for k, name in enumerate(GENERATED[2:], start=2):
        derived[name] = eight_uv[:, k]
    return np.stack([derived[name] for name in STANDARD_12], axis=-1).astype(np.float32)


def synthetic_ecgs(n: int, seed: int = 0, batch: int = 32, device: str = "cpu") -> Iterator[Record]:
    """``n`` synthetic 10 s 12-lead ECGs (500 Hz, microvolts), reproducible from ``seed``."""
    import torch

    net = load_generator(device)
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    done = 0
    with torch.inference_mode():
        while done < n:
            k = min(batch, n - done)
            noise = torch.rand(k, len(GENERATED), SAMPLES, generator=gen) * 2 - 1  # U(-1, 1), as the package draws it
            out = net(noise.to(device)).float().cpu().numpy() * SCALE_UV
            for j, sig in enumerate(twelve_leads(out)):
                yield Record(signals=sig, fs=FS, leads=STANDARD_12, name=f"deepfake-{seed}-{done + j}",
                             source=f"deepfake-ecg:seed{seed}:{done + j}")
            done += k
