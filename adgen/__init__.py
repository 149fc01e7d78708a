"""adgen: math expression -> tested torch.autograd.Function module.

`__init__` only re-exports; each stage lives in its own module
(parse, derive, printer, render, write) and `api` chains them.
"""

import sys
import types
from typing import Any


class _Package(types.ModuleType):
    """The type of the `adgen` module: `adgen.render` stays the API function.

    The submodule `adgen.render` imports black and jinja2, so the stages import
    it only on a cache miss, after this package; and the import system then sets
    the package's attribute of the same name to the submodule. It stays
    reachable as sys.modules["adgen.render"] and by `from adgen.render import`."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "render" and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package

from .api import RenderedOp, emit, load, plan_emit, render
from .build import build, check, plan_build
from .errors import AdgenError

__all__ = [
    "AdgenError",
    "RenderedOp",
    "build",
    "check",
    "emit",
    "load",
    "plan_build",
    "plan_emit",
    "render",
]
