"""Foundation every layer may use: the input-error type, safe array division, the one file writer.

Modules: ``errors`` (:class:`~simulator.common.errors.Problem` and
:class:`~simulator.common.errors.ScenarioError`: file, line, field path, what was expected),
``arrays`` (:func:`~simulator.common.arrays.divide`), ``files``
(:func:`~simulator.common.files.write_atomic`, through which every output file is written).
Imports nothing of ``simulator``.
"""
