"""The scripts in examples/ run in smoke mode and print sensible results.

Each runs in a subprocess, as a user would run it, with the repository root on
PYTHONPATH so the checkout's adgen is the one imported."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def run_example(script: str, *args: str, cwd: Path, smoke_env: bool = False) -> str:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT), env.get("PYTHONPATH")])
    )
    env.pop("ADGEN_EXAMPLES_SMOKE", None)
    if smoke_env:
        env["ADGEN_EXAMPLES_SMOKE"] = "1"
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"{script} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def number_after(label: str, text: str) -> float:
    match = re.search(re.escape(label) + r"\s*([-+0-9.eE]+)", text)
    assert match, f"no {label!r} in output:\n{text}"
    return float(match.group(1))


def test_pinn_poisson_smoke(tmp_path):
    plot = tmp_path / "pinn.png"
    out = run_example("pinn_poisson.py", "--smoke", "--plot", str(plot), cwd=tmp_path)

    assert "activation: mish(x) = x*tanh(log(1 + exp(x))), from adgen.load" in out
    # u_xx (second derivative) and the loss gradient (third) match autograd of
    # the composite in float64.
    assert number_after("u_xx", out) < 1e-10
    assert number_after("loss gradient", out) < 1e-10
    # Training works: the loss falls by well over 10x and u is near sin(pi x).
    initial = number_after("initial loss", out)
    final = number_after("final loss", out)
    assert final < initial / 10, out
    assert number_after("max |u - sin(pi x)| on 1001 points:", out) < 0.5
    assert re.search(r"time: 150 steps in [0-9.]+ s", out)

    assert f"plot: {plot}" in out
    assert plot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert not (tmp_path / "pinn_poisson.png").exists()  # --plot was honoured


def test_pinn_poisson_default_plot_path(tmp_path):
    out = run_example("pinn_poisson.py", "--steps", "3", cwd=tmp_path, smoke_env=True)
    assert "plot: pinn_poisson.png" in out
    assert (tmp_path / "pinn_poisson.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_mlp_activation_smoke(tmp_path):
    # The environment variable is the other way to ask for smoke mode.
    out = run_example("mlp_activation.py", cwd=tmp_path, smoke_env=True)

    assert "data: 512 x 8 -> 1, MLP 8-32-32-1, batch 128, Adam, 3 epochs" in out
    rows = re.findall(r"^\s+(\d+)\s+([0-9.]+)\s+([0-9.]+)\s+([0-9.e+-]+)$", out, re.MULTILINE)
    assert [int(r[0]) for r in rows] == [1, 2, 3], out
    for _, generated, composite, rel in rows:
        # Same weights, same batches: the curves agree to float32 rounding.
        assert abs(float(generated) - float(composite)) <= 1e-5 * float(composite)
        assert float(rel) < 1e-5
    assert float(rows[-1][1]) < float(rows[0][1])  # it learns

    assert "time per epoch, median (s)" in out
    # mish saves only its input; the composite also keeps tanh(softplus(x)).
    match = re.search(
        r"saved by the 2 activations \(KiB\)\s+(\d+)\s+(\d+)\s+([0-9.]+)", out
    )
    assert match, out
    generated_kib, composite_kib = int(match.group(1)), int(match.group(2))
    assert generated_kib == 32  # 2 layers x 128 x 32 float32 inputs
    assert composite_kib == 2 * generated_kib
    assert "saved in one step, total (KiB)" in out


def test_mlp_activation_gelu_tanh_smoke(tmp_path):
    out = run_example("mlp_activation.py", "--smoke", "--activation", "gelu_tanh", cwd=tmp_path)
    assert "activation: gelu_tanh(x) = 0.5*x*(1 + tanh(" in out
    match = re.search(r"saved by the 2 activations \(KiB\)\s+(\d+)\s+(\d+)", out)
    assert match, out
    # The composite keeps intermediates besides x; the generated op keeps x alone.
    assert int(match.group(1)) == 32 and int(match.group(2)) > 2 * 32


def test_distributed_training_smoke(tmp_path):
    out = run_example("distributed_training.py", "--smoke", cwd=tmp_path)
    assert "activation: mish(x) = x*tanh(softplus(x)), from adgen.load" in out
    assert "DDP, 2 processes, gloo on CPU" in out
    match = re.search(r"loss on all 4096 samples: initial ([0-9.]+), final ([0-9.]+)", out)
    assert match, out
    assert float(match.group(2)) < 0.9 * float(match.group(1)), out  # it learns
    # Every process holds the same weights, and they are those of one process
    # training the composite on the whole batches (float32, Adam: rounding only).
    assert number_after("max |weights of process r - weights of process 0| over 2 processes:", out) == 0
    assert number_after("max |weights - one process with the composite activation|:", out) < 1e-4


@pytest.mark.exhaustive
def test_distributed_training_fsdp_smoke(tmp_path):
    out = run_example("distributed_training.py", "--smoke", "--fsdp", cwd=tmp_path, smoke_env=True)
    assert "FSDP2, 2 processes, gloo on CPU" in out
    assert number_after("max |weights of process r - weights of process 0| over 2 processes:", out) == 0
    assert number_after("max |weights - one process with the composite activation|:", out) < 1e-4


GPU_CHECK = ROOT / "benchmarks" / "gpu_check.sh"


def test_gpu_check_script_parses_and_refuses_without_cuda(tmp_path):
    """No GPU on the machines this is developed on: check the script's syntax,
    and that without CUDA it stops with exit 2 and says why."""
    subprocess.run(["bash", "-n", str(GPU_CHECK)], check=True, timeout=60)
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present: run bash benchmarks/gpu_check.sh itself")
    result = subprocess.run(["bash", str(GPU_CHECK)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "needs a CUDA GPU" in result.stderr
