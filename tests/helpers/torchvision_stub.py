"""A stand-in ``torchvision`` so timm's model code imports beside the CPU torch build.

PyPI's torchvision wheel does not load beside the torch==2.13.0 CPU build this project installs
("operator torchvision::nms does not exist"). timm imports torchvision at module level only for
data transforms, datasets and ``FrozenBatchNorm2d`` (which BEiT never builds), so for building
and running ``timm.create_model("beit_...")`` every torchvision name may be an inert placeholder.
This is a test double for a package that cannot load here, used only to reach timm's real model
code; nothing of torchvision is exercised.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import sys
import types
from typing import Iterator


class _PlaceholderMeta(type):
    def __getattr__(cls, name: str):  # InterpolationMode.BILINEAR and the like
        if name.startswith("__"):
            raise AttributeError(name)
        return _placeholder(name)


def _placeholder(name: str) -> type:
    return _PlaceholderMeta(name, (), {"__init__": lambda self, *a, **k: None, "__call__": lambda self, *a, **k: None})


class _StubModule(types.ModuleType):
    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return _placeholder(name)


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path, target=None):
        if fullname == "torchvision" or fullname.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        module = _StubModule(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module) -> None:
        pass


@contextlib.contextmanager
def stub_torchvision() -> Iterator[None]:
    """Within the block, ``import torchvision[.x]`` yields placeholders; afterwards the stub is gone
    (modules imported meanwhile, such as timm, keep working: they hold what they need)."""
    finder = _StubFinder()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]


def import_timm():
    """timm, imported behind the stub; ``ImportError`` if timm itself is not installed."""
    if "timm" in sys.modules:
        return sys.modules["timm"]
    with stub_torchvision():
        import timm
    return timm
