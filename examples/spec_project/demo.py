"""A spec-file project, start to finish: build, import, check, catch a hand edit,
drop an op.

This folder is a small project whose ops are listed in `adgen.toml`; `ops/` and
`tests/` are what `adgen build` wrote, committed as a user would commit them.
The script works on a copy in a temporary folder, so the committed files stay
as they are:

    python examples/spec_project/demo.py           # about 30 s
    python examples/spec_project/demo.py --smoke   # skips running the generated tests

Each step prints the command, its exit code and its output.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run(command: list[str], folder: Path) -> subprocess.CompletedProcess[str]:
    """Run a command in `folder`, echo it with its exit code and output."""
    result = subprocess.run(command, cwd=folder, capture_output=True, text=True)
    words = ["python", *command[1:]]
    if words[1:3] == ["-m", "adgen"]:
        words = ["adgen", *words[3:]]
    elif words[1] == "-c":
        words = ["python", "-c", "'...'"]
    shown = " ".join(words)
    print(f"$ {shown}    # exit {result.returncode}")
    for line in (result.stdout + result.stderr).strip().splitlines()[-6:]:
        print(f"    {line}")
    return result


def adgen(*args: str) -> list[str]:
    return [sys.executable, "-m", "adgen", *args]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="skip the generated tests (CI)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        project = Path(scratch) / "spec_project"
        shutil.copytree(HERE, project, ignore=shutil.ignore_patterns("__pycache__", "demo.py"))

        print("1. The committed files are fresh:")
        assert run(adgen("check"), project).returncode == 0

        print("2. The package imports like any other:")
        script = (
            "import torch; from ops import swish, pseudo_huber\n"
            "x = torch.tensor([-2.0, 0.5, 3.0], requires_grad=True)\n"
            "y = swish(x, beta=1.5) + pseudo_huber(x)\n"
            "(g,) = torch.autograd.grad(y.sum(), x)\n"
            "print('y =', [round(v, 4) for v in y.tolist()], ' dy/dx =', [round(v, 4) for v in g.tolist()])\n"
        )
        assert run([sys.executable, "-c", script], project).returncode == 0

        if not args.smoke:
            print("3. Their generated tests pass:")
            assert run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:warnings", "tests"], project).returncode == 0

        print("4. A hand edit is caught, and a build puts it back:")
        module = project / "ops" / "swish.py"
        module.write_text(module.read_text().replace("beta: float = 1.0", "beta: float = 2.0"))
        assert run(adgen("check"), project).returncode == 1
        assert run(adgen("build"), project).returncode == 0

        print("5. Dropping an op from adgen.toml removes its generated files, nothing else:")
        spec = project / "adgen.toml"
        spec.write_text(spec.read_text().split("[ops.pseudo_huber]")[0])
        (project / "ops" / "helpers.py").write_text("# hand-written: adgen never touches it\n")
        assert run(adgen("build"), project).returncode == 0
        left = sorted(p.name for p in (project / "ops").glob("*.py"))
        print(f"    ops/ now holds {', '.join(left)}")
        assert left == ["__init__.py", "helpers.py", "swish.py"]
        assert run(adgen("check"), project).returncode == 0
    print("spec project: build + check OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
