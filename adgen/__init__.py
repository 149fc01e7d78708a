"""adgen: math expression -> tested torch.autograd.Function module.

`__init__` only re-exports; each stage lives in its own module
(parse, derive, printer, render, write) and `api` chains them.
"""

from .api import emit, load, plan_emit, render
from .build import build, check, plan_build
from .errors import AdgenError
from .render import RenderedOp

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
