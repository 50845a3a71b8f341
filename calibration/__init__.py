"""Calibration: the PyTorch micro-benchmark and the bundled profiles.

Importing this package never imports torch; only ``calibration.benchmark`` (run by
``fleetsim calibrate``) does.
"""
