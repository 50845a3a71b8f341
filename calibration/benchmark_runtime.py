"""The runtime the benchmarks and the reference model share: device, threads, clock (torch).

CPU settings, applied for the duration of :func:`configured` and restored afterwards:

- ``torch.set_num_threads(threads)``, default :data:`DEFAULT_CPU_THREADS` = 1. One thread, not
  one per core: on the shared 2-vCPU test VM the host intermittently deschedules the second
  vCPU for whole scheduler quanta, and every multi-threaded kernel then waits ~16 ms at its
  OpenMP barrier (bimodal timings for seconds at a time: 0.5 ms or 16 ms for the same GEMM).
  One thread is slower but stable, and the benchmark and the reference model run alike. Pass
  ``threads`` (``fleetsim calibrate --threads N``) on a dedicated machine.
- flush-to-zero for denormal floats (``torch.set_flush_denormal``): random weights can produce
  subnormal intermediates, 10-100x slower on x86; trained models in production do not.
- glibc ``malloc`` keeps freed memory (``M_MMAP_MAX`` = 0, high ``M_TRIM_THRESHOLD``), as
  jemalloc/tcmalloc do in tuned CPU serving deployments: otherwise every large activation is a
  fresh ``mmap`` and the first touch of each page faults into the kernel.

Timing: on a single CPU thread, the thread's CPU time (``time.thread_time``: user + system time,
memory stalls included, time the scheduler gave to other processes or the host took from the
vCPU excluded): on a shared machine, wall time measured mostly the neighbours (the same GEMM
took 38-85 ms of wall time and 38-42 ms of CPU time while other tests ran). With several CPU
threads ``time.perf_counter``; on GPUs CUDA events around the timed loop (synchronised).
Each point is warmed up, then timed in ``repeats`` interleaved repeats of at least
``min_repeat_s`` seconds; the point's time is a robust statistic (:mod:`calibration.stats`) of
the per-repeat mean time per call.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

#: glibc mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_GLIBC_DEFAULT_MMAP_MAX = 65536
_GLIBC_DEFAULT_TRIM_THRESHOLD = 128 * 1024

#: Threads of CPU runs unless told otherwise (see the module docstring).
DEFAULT_CPU_THREADS = 1

DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class Runtime:
    """Where and how the benchmarks run."""

    device: torch.device
    threads: int
    device_name: str
    gpus: int

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def uses_cpu_time(self) -> bool:
        """True when timings are this thread's CPU time (one CPU thread), else wall time."""
        return self.device.type == "cpu" and self.threads == 1

    def _now(self) -> float:
        return time.thread_time() if self.uses_cpu_time else time.perf_counter()

    def synchronize(self) -> None:
        if self.is_cuda:
            torch.cuda.synchronize(self.device)

    def clock(self) -> float:
        """Seconds (see the module docstring), after the device finished the work queued so far."""
        self.synchronize()
        return self._now()

    def time_calls(self, fn: Callable[[], object], calls: int) -> float:
        """Seconds ``calls`` back-to-back calls of ``fn`` take (device time on GPUs)."""
        if self.is_cuda:
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            self.synchronize()
            start.record()
            for _ in range(calls):
                fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3
        t0 = self._now()
        for _ in range(calls):
            fn()
        return self._now() - t0

    def describe(self) -> dict[str, object]:
        """Settings to record in a profile."""
        return {
            "device": self.device_name,
            "device_kind": self.device.type,
            "threads": self.threads,
            "clock": "cuda events"
            if self.is_cuda
            else ("thread CPU time" if self.uses_cpu_time else "wall time"),
            "gpus": self.gpus,
            "torch_version": str(torch.__version__),
        }


def available_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), e.g. 'AMD EPYC'."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "cpu"


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (``/proc/cpuinfo``: avx512_bf16, amx_bf16, ...); empty if unknown."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def supported_dtypes(device: torch.device) -> list[str]:
    """GEMM dtypes worth measuring on this device, the serving dtype first.

    CPU: bf16 where the CPU has native bf16 dot products (AVX512-BF16/AMX, via oneDNN), then
    fp32. CUDA: bf16 (fp32 on GPUs without it), plus fp8 from compute capability 8.9.
    """
    if device.type == "cuda":
        names = ["bf16"] if torch.cuda.is_bf16_supported() else ["fp32"]
        if torch.cuda.get_device_capability(device) >= (8, 9) and hasattr(torch, "float8_e4m3fn"):
            names.append("fp8")
        return names
    names = ["fp32"]
    mkldnn_bf16 = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    if mkldnn_bf16 is not None and mkldnn_bf16():
        names.insert(0, "bf16")
    return names


def _mallopt(param: int, value: int) -> None:
    path = ctypes.util.find_library("c")
    if not path:
        return
    try:
        libc = ctypes.CDLL(path)
        libc.mallopt(ctypes.c_int(param), ctypes.c_int(value))
    except (OSError, AttributeError):  # not glibc
        pass


@contextmanager
def configured(device: str = "cpu", threads: int | None = None) -> Iterator[Runtime]:
    """The runtime for ``device`` ('cpu' or 'cuda'), with the settings described above."""
    previous_threads = torch.get_num_threads()
    if device == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("--device cuda: torch sees no CUDA device")
        dev = torch.device("cuda", torch.cuda.current_device())
        runtime = Runtime(dev, previous_threads, torch.cuda.get_device_name(dev),
                          torch.cuda.device_count())  # fmt: skip
        yield runtime
        return
    threads = threads or DEFAULT_CPU_THREADS
    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    _mallopt(_M_MMAP_MAX, 0)
    _mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
    try:
        yield Runtime(torch.device("cpu"), threads, cpu_name(), 0)
    finally:
        _mallopt(_M_MMAP_MAX, _GLIBC_DEFAULT_MMAP_MAX)
        _mallopt(_M_TRIM_THRESHOLD, _GLIBC_DEFAULT_TRIM_THRESHOLD)
        torch.set_flush_denormal(False)
        torch.set_num_threads(previous_threads)
