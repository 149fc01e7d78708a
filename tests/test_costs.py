"""adgen/costs.py, the per-operation cost table, and the script that measures it
(benchmarks/op_cost.py). No timing is asserted: only that the table covers what
the printer can write, holds usable numbers, stays torch-free and round-trips
through the script's writer."""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
from pathlib import Path

import pytest

from adgen import costs
from adgen.registry import REGISTRY

ROOT = Path(__file__).resolve().parent.parent


def _op_cost_script():
    spec = importlib.util.spec_from_file_location("op_cost", ROOT / "benchmarks" / "op_cost.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_registry_function_has_a_cost():
    missing = [row.names[0] for row in REGISTRY if row.names and row.names[0] not in costs.COSTS]
    assert not missing, f"no cost for {missing}; run benchmarks/op_cost.py --write"


def test_every_cost_is_positive_and_finite():
    for table in (costs.COSTS, costs.CUDA_COSTS):
        bad = {k: v for k, v in table.items() if not (isinstance(v, float) and math.isfinite(v) and v > 0)}
        assert not bad


def test_mul_is_the_unit():
    assert costs.COSTS["mul"] == 1.0
    if costs.CUDA_COSTS:
        assert costs.CUDA_COSTS["mul"] == 1.0


def test_lookup():
    assert costs.cost("exp") == costs.COSTS["exp"]
    # The CUDA column falls back to the CPU cost where it has none.
    assert costs.cost("exp", "cuda") == costs.CUDA_COSTS.get("exp", costs.COSTS["exp"])
    with pytest.raises(KeyError, match="no cost for operation 'nosuch'"):
        costs.cost("nosuch")
    with pytest.raises(ValueError, match="device"):
        costs.cost("exp", "tpu")


def test_costs_module_does_not_import_torch():
    code = "import sys, adgen.costs; sys.exit('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr or "adgen.costs imported torch"


def test_script_measures_exactly_the_table_keys():
    script = _op_cost_script()
    assert set(script.table_keys()) == set(costs.COSTS)
    if costs.CUDA_COSTS:
        assert set(script.table_keys()) == set(costs.CUDA_COSTS)


def test_script_has_a_call_for_every_key():
    # Tiny tensors: this checks that each key's call runs, not how long it takes.
    pytest.importorskip("torch")
    script = _op_cost_script()
    calls = script.operations(8, "cpu")
    assert set(calls) == set(script.table_keys())
    for key, call in calls.items():
        result = call()
        assert result.shape == (8,), key


def test_writer_keeps_the_docstring_and_round_trips(tmp_path):
    script = _op_cost_script()
    copy = tmp_path / "costs.py"
    original = (ROOT / "adgen" / "costs.py").read_text()
    copy.write_text(original)
    table = {key: float(i + 1) for i, key in enumerate(script.table_keys())}
    script.rewrite(copy, table, {"mul": 1.0}, {"cpu": "test run"})
    cpu, cuda, measured = script._current_tables(copy)
    assert cpu == table and cuda == {"mul": 1.0} and measured == {"cpu": "test run"}
    head = original.partition(script.MARKER)[0]
    assert copy.read_text().startswith(head)  # docstring and lookup function kept
