"""Layer 5, report writers: run files (CSV/Parquet/JSON), the finance workbook and plots.

Every file goes through :func:`simulator.common.files.write_atomic`. May import every layer
below it (``common`` up to ``results``); nothing imports it but ``sweep`` and the CLI.
"""
