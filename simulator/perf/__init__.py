"""Layer 3, the cost model: the time of a serving iteration and of a training step (pure numpy).

Modules: ``roofline`` (FLOPs against compute, bytes against memory bandwidth, TP all-reduce
against the interconnect, fixed overheads; training FLOPs and step time), ``memory`` (weights,
KV cache, usable HBM), ``lora`` (adapter memory and kernel costs), ``profile`` (calibration
profiles: the efficiencies that scale the roofline).

May import ``common`` and ``catalog``; no simpy, no scenario.
"""
