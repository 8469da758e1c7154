"""A PyTorch reference runtime with the appliance's ``Runtime`` interface, for tests and parity.

Lives in ``export/`` because the appliance never imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge_ecg.runtimes import Runtime


@dataclass
class TorchReferenceRuntime(Runtime):
    model: Any = field(default=None, repr=False)

    @classmethod
    def from_model(cls, bundle, model) -> "TorchReferenceRuntime":
        return cls(bundle=bundle, precision="fp32", backend="torch", model=model.eval())

    @classmethod
    def from_checkpoint(cls, bundle, path) -> "TorchReferenceRuntime":
        from export.models.heartbeit import load_checkpoint

        model, _ = load_checkpoint(path)
        return cls.from_model(bundle, model)

    def _run(self, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            return self.model(torch.from_numpy(x)).numpy().astype(np.float32)
