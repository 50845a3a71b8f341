"""The console script's entry point: the app with every command group registered on it.

``fleetsim = "simulator.cli.main:app"``. Each command module registers its commands on
:data:`simulator.cli.app.app` when imported; the order here is the order of ``fleetsim --help``.
"""

from __future__ import annotations

# The order of these imports is the order of the commands in ``fleetsim --help``.
# isort: off
from simulator.cli import validate  # noqa: F401  (imported to register its commands)
from simulator.cli import catalog  # noqa: F401
from simulator.cli import cost  # noqa: F401
from simulator.cli import calibrate  # noqa: F401
from simulator.cli import report  # noqa: F401
from simulator.cli import run  # noqa: F401
from simulator.cli import serve  # noqa: F401
from simulator.cli import sweep  # noqa: F401
# isort: on
from simulator.cli.app import app

__all__ = ["app"]
