#!/usr/bin/env bash
# On a machine with a CUDA GPU: run the generated tests of every catalogue op
# (generated/test_*.py) on the GPU, then print benchmarks/speed.py's table with
# its tensors on the GPU.
#
#   bash benchmarks/gpu_check.sh [speed.py options, e.g. --size 8000000 --ops gelu_tanh,mish]
#
# Exits 2 without CUDA. The project's tests only check this script's syntax
# (`bash -n`): the machines it is developed on have no GPU.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_check: torch.cuda.is_available() is False; this check needs a CUDA GPU" >&2
    exit 2
fi
python -c "import torch; print(f'torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name()}')"

echo "== generated tests of every catalogue op, ADGEN_TEST_DEVICE=cuda"
ADGEN_TEST_DEVICE=cuda python -m pytest -q -p no:cacheprovider generated

echo "== benchmarks/speed.py on the GPU"
# speed.py makes its tensors with torch.randn and times with time.perf_counter:
# make CUDA the default device, and synchronize before every clock reading so a
# time covers the kernels, not just their launch.
python - "$@" <<'EOF'
import runpy
import sys
import time

import torch

torch.set_default_device("cuda")
clock = time.perf_counter


def synchronized_clock() -> float:
    torch.cuda.synchronize()
    return clock()


time.perf_counter = synchronized_clock
sys.argv = ["benchmarks/speed.py", *sys.argv[1:]]
runpy.run_path("benchmarks/speed.py", run_name="__main__")
EOF
