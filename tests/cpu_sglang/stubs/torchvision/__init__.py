"""Import-only `torchvision` for text-only SGLang 0.5.17 tests on torch 2.13.0+cpu.

Why: ``sglang/srt/utils/common.py`` runs ``from torchvision.io import decode_jpeg``
when ``sglang`` is imported, and PyPI's torchvision wheels require the matching
CUDA torch build (about 3.6 GB of CUDA libraries). The text models in our tests
never call torchvision, so every name here resolves to a placeholder that raises
if it is ever called. Never use this for vision models.
"""

from __future__ import annotations

import sys
import types

__version__ = "0.0.0+sglang_dflash_stub"


class _Placeholder:
    def __init__(self, path: str):
        self._path = path

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Placeholder(f"{self._path}.{name}")

    def __call__(self, *args, **kwargs):
        raise NotImplementedError(f"torchvision stub: {self._path} is not available")

    def __mro_entries__(self, bases):  # lets `class X(torchvision.Something)` still work
        return (object,)


class _StubPackage(types.ModuleType):
    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return sys.modules.get(f"{self.__name__}.{name}") or _Placeholder(
            f"{self.__name__}.{name}"
        )


def _install(name: str) -> types.ModuleType:
    module = _StubPackage(name)
    module.__path__ = []  # a package, so `import torchvision.x.y` resolves
    sys.modules[name] = module
    return module


for _sub in (
    "io",
    "ops",
    "models",
    "transforms",
    "transforms.functional",
    "transforms.v2",
    "transforms.v2.functional",
):
    _install(f"torchvision.{_sub}")

sys.modules[__name__].__class__ = _StubPackage
io = sys.modules["torchvision.io"]
ops = sys.modules["torchvision.ops"]
models = sys.modules["torchvision.models"]
transforms = sys.modules["torchvision.transforms"]
