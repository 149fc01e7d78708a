"""render's black fast path (`_formatted`: top-level pieces formatted alone and
remembered) against black itself on whole files: emitted text stays exactly what
black makes of the whole module and test."""

from __future__ import annotations

import importlib

import black
import pytest

import adgen

render_module = importlib.import_module("adgen.render")  # adgen.render is the API function

MODE = black.Mode()

# One input; several inputs with a parameter; several outputs; --save
# intermediates; --fuse.
OPS = [
    ("one_input", dict(expr="x*tanh(x)", name="one_input")),
    (
        "params",
        dict(expr="x*exp(-alpha*x**2)*cos(y)", name="params", params={"alpha": 0.5}),
    ),
    ("multi_output", dict(expr="r*cos(t), r*sin(t)", name="multi_output", outputs=["u", "v"])),
    ("intermediates", dict(expr="log(1 + exp(x))*y", name="intermediates", save="intermediates")),
    ("fused", dict(expr="sin(x)*y", name="fused", fuse=True)),
]


@pytest.fixture(scope="module")
def emitted() -> dict[str, tuple[adgen.RenderedOp, list[str]]]:
    """Each op's rendered files, and the unformatted sources handed to black."""
    patch = pytest.MonkeyPatch()
    patch.setenv("ADGEN_CACHE", "0")  # a cache hit would skip the formatting
    raw: list[str] = []
    formatted = render_module._formatted

    def recording(source: str) -> str:
        raw.append(source)
        return formatted(source)

    patch.setattr(render_module, "_formatted", recording)
    result = {}
    try:
        for label, arguments in OPS:
            start = len(raw)
            result[label] = (adgen.render(**arguments), raw[start:])
    finally:
        patch.undo()
    return result


@pytest.mark.parametrize("label", [label for label, _ in OPS])
def test_emitted_files_are_what_black_makes_of_them(emitted, label: str) -> None:
    rendered, raw = emitted[label]
    assert len(raw) == 2  # module and test went through the formatter
    for text in (rendered.module_source, rendered.test_source):
        assert black.format_str(text, mode=MODE) == text


@pytest.mark.parametrize("label", [label for label, _ in OPS])
def test_fast_path_formats_raw_sources_as_black_does(emitted, label: str) -> None:
    """The pieces are formatted alone (the fast path is taken, not the whole-file
    fallback) and the result is black's for the whole unformatted file."""
    _, raw = emitted[label]
    for source in raw:
        pieces = render_module._top_level_pieces(source)
        assert pieces is not None and len(pieces) > 3
        assert render_module._chunked_black(source) == black.format_str(source, mode=MODE)


def test_emitting_does_not_fall_back_to_whole_file_black(monkeypatch) -> None:
    monkeypatch.setenv("ADGEN_CACHE", "0")

    def refused(source: str) -> str:
        raise AssertionError("whole-file black ran: the fast path was bypassed")

    monkeypatch.setattr(render_module, "_whole_black", refused)
    rendered = adgen.render("x*sigmoid(x)*y", name="no_fallback")
    assert black.format_str(rendered.module_source, mode=MODE) == rendered.module_source


def test_pieces_are_remembered(monkeypatch) -> None:
    """A second file with the same pieces parses nothing again."""
    from black import parsing

    source = _unformatted_defs(3)
    expected = black.format_str(source, mode=MODE)
    assert render_module._formatted(source) == expected
    parses = []
    real = parsing.lib2to3_parse
    monkeypatch.setattr(parsing, "lib2to3_parse", lambda *a, **k: parses.append(1) or real(*a, **k))
    assert render_module._formatted(source) == expected
    assert parses == []
    # A changed piece is parsed (once), the others come from memory.
    changed = source.replace("def f2(", "def g2(")
    assert render_module._formatted(changed) == black.format_str(changed, mode=MODE)
    assert len(parses) == 1


def _unformatted_defs(count: int) -> str:
    return "\n\n\n".join(
        f"def f{i}( a,b ):\n    return call_{i}( a ,b)\n" for i in range(count)
    )


_LONG_CALL = (
    "    return function_with_a_long_name(*arguments_that_are_long, another_argument_long,"
    " yet_another_argument_here, and_more_arguments)\n"
)

# Sources where a cut between pieces could change black's result: blank lines
# and comments between definitions, a class of only a docstring, a one-line
# stub, decorators, and Python versions that black infers from one piece (an
# f-string: a trailing comma after *args) and applies to another.
EDGE_SOURCES = {
    "blank_lines": "import os\ndef a():\n    pass\ndef b():\n    pass\n\n\n\n\ndef c():  \n    return 1\n\nclass D:\n    x=1\n\nx = 1\ndef e(): pass\n",
    "comments": "def a():\n    pass\n# about b\ndef b():\n    pass\n\n# about c\n\ndef c():\n    pass\n\n\ndef d():\n    pass\n    # trailing\n\ndef e():\n    pass\n",
    "docstring_class": 'class A:\n    """Only a docstring."""\n\ndef b():\n    """Doc."""\n\n\n\nclass C: ...\n\ndef d(): ...\n@decorator\ndef e():\n    pass\n\n@decorator\n\nclass F:\n\n    pass\n',
    "module_docstring": '"""Module."""\ndef a():\n    pass\n\ndef b():\n    pass\n',
    "versions_from_another_piece": "def a(x):\n    return f'{x}'\n\n\ndef b():\n" + _LONG_CALL,
    "versions_without_f_string": "def a(x):\n    return x\n\n\ndef b():\n" + _LONG_CALL,
    "future_import": "from __future__ import annotations\ndef a(x: int)->int:\n    return x\n\ndef b():\n" + _LONG_CALL,
    "fmt_off": "def a():\n    pass\n# fmt: off\ndef b( ):\n    pass\n\ndef c( ):\n    pass\n# fmt: on\n\ndef d( ):\n    pass\n",
    "string_with_def_lines": 'def a():\n    return """\ndef not_code( ):\n"""\n\ndef b( ):\n    pass\n',
}


@pytest.mark.parametrize("name", sorted(EDGE_SOURCES))
def test_edge_sources_format_as_black_does(name: str) -> None:
    source = EDGE_SOURCES[name]
    assert render_module._formatted(source) == black.format_str(source, mode=MODE)


def test_versions_inferred_from_the_whole_file() -> None:
    """The f-string in one piece makes black add a trailing comma after *args in
    another: the pieces share the whole file's inferred versions."""
    with_f = render_module._formatted(EDGE_SOURCES["versions_from_another_piece"])
    without = render_module._formatted(EDGE_SOURCES["versions_without_f_string"])
    assert "and_more_arguments,\n" in with_f
    assert "and_more_arguments\n" in without
