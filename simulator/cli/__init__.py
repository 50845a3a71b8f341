"""Layer 5, the command line: the ``fleetsim`` typer app, a thin layer over the Python API.

Modules: ``app`` (the typer app, which imports no command), ``options`` (shared option types,
consoles, error handling and formats), one module per command group (``validate``, ``catalog``,
``cost``, ``run`` with ``compare``, ``report``, ``serve`` with ``curve``, ``sweep`` with
``optimize``, ``calibrate``), ``replications`` (the output of ``run --replications``) and ``main``
(imports them all; the console script's entry point). No logic of its own: commands call the
layers below and present what they return. May import every layer, and ``calibration``.
"""
