"""Calibration: the PyTorch micro-benchmark, the fit, and the bundled profiles.

Importing this package never imports torch. Three modules do, and are imported only when a
measurement runs (``fleetsim calibrate``, the calibration tests):

- ``benchmark_runtime``: device, threads, clock and the CPU runtime settings;
- ``benchmark``: the micro-benchmark (GEMMs, attention, element-wise ops, overheads, training
  step, memory, all-reduce);
- ``reference_model``: the Llama-style transformer whose real generate loop checks accuracy.

Everything else is torch-free: ``plan`` (what to measure), ``records`` (raw points), ``stats``
(how repeats become one number), ``fit`` (points -> efficiency parameters, MAPE), ``accuracy``
(predictions vs the reference, per-point errors), ``profile_io`` (atomic YAML profiles) and
``pipeline`` (one run end to end, importing the torch modules inside its functions).
"""
