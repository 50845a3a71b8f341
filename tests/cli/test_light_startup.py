"""Start-up: the quick commands do not import pandas (issue 22: `fleetsim --help` spent 58% of
its 0.79 s importing pandas through `simulator/__init__`)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import SCENARIOS


@pytest.mark.parametrize("args", [["--help"], ["validate", str(SCENARIOS[0])], ["catalog", "gpus"], ["schema"]],
                         ids=["help", "validate", "catalog", "schema"])  # fmt: skip
def test_quick_commands_do_not_import_pandas(args: list[str]) -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from simulator.cli.main import app\n"
        f"result = CliRunner().invoke(app, {args!r})\n"
        "assert result.exit_code == 0, result.output\n"
        "print(sorted(m for m in ('pandas', 'pyarrow', 'dask') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_python_api_still_runs_lazily() -> None:
    import simulator

    assert callable(simulator.run) and simulator.run.__doc__
