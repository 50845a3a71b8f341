"""CLI commands beyond the core ones, one module per area; each registers on ``simulator.cli.app``."""
