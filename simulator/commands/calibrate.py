"""CLI commands: calibrate (being built)."""
