"""``python -m simulator`` runs the fleetsim command line."""

from simulator.cli.main import app

app(prog_name="fleetsim")
