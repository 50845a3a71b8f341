"""Without torch: the calibration package, the simulator and the CLI import; calibrate says why
it cannot run. Each case runs in a fresh interpreter where importing torch fails."""

from __future__ import annotations

import subprocess
import sys
import textwrap

BLOCK_TORCH = textwrap.dedent(
    """
    import sys

    class _NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError("No module named 'torch' (blocked by the test)")
            return None

    sys.meta_path.insert(0, _NoTorch())
    """
)


def run_without_torch(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", BLOCK_TORCH + textwrap.dedent(code)],
                          check=False, capture_output=True, text=True, timeout=120)  # fmt: skip


def test_torch_free_modules_import_without_torch():
    result = run_without_torch(
        """
        import calibration, calibration.accuracy, calibration.fit, calibration.pipeline
        import calibration.plan, calibration.profile_io, calibration.records, calibration.stats
        import calibration.reference_setup, simulator, simulator.cli.main, simulator.perf.roofline
        assert "torch" not in sys.modules
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_calibrate_without_torch_says_how_to_install_it():
    result = run_without_torch(
        """
        from simulator.cli.main import app
        app(["calibrate", "--quick"], prog_name="fleetsim")
        """
    )
    assert result.returncode == 2, result.stderr
    assert "pip install 'fleetsim[calibrate]'" in result.stderr
    assert "Traceback" not in result.stderr
