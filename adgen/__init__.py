"""adgen: math expression -> tested torch.autograd.Function module.

`__init__` only re-exports; each stage lives in its own module
(parse, derive, printer, render, write) and `api` chains them.
"""

import importlib.util
import sys
from typing import TYPE_CHECKING, Any


def _register_render_lazily() -> None:
    """Put the submodule `adgen.render` in sys.modules now, to run on first use.

    It imports black and jinja2, so the stages import it only on a cache miss;
    but a submodule loaded after its package replaces the package's attribute of
    the same name, here the API function `adgen.render`. Registered now, it is
    never loaded later, and the function below stays `adgen.render`."""
    spec = importlib.util.find_spec(f"{__name__}.render")
    assert spec is not None and spec.loader is not None
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)


_register_render_lazily()

from .api import emit, load, plan_emit, render
from .build import build, check, plan_build
from .errors import AdgenError

if TYPE_CHECKING:
    from .render import RenderedOp


def __getattr__(name: str) -> Any:
    # RenderedOp lives in render, which imports black and jinja2: importing adgen
    # (and a warm `adgen check`) must not pay for them.
    if name == "RenderedOp":
        from .render import RenderedOp

        return RenderedOp
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
