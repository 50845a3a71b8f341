"""CLI commands: serve (being built)."""
