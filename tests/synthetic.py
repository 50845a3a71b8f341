"""A synthetic latency curve with closed-form latency: M/M/1 sojourn times.

In an M/M/1 queue with service rate mu, the sojourn time is exponential with rate mu - lambda,
so every quantile is known: q_p = -ln(1 - p) / (mu - lambda). Projection tests use it in place
of the simulated curve so their expectations can be computed by hand.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MM1Curve:
    service_rate: float = 10.0  # requests/s one replica serves
    slo_ms: float = 500.0
    deployment: str = "d"
    workload: str = "w"
    points: int = 40

    @property
    def rates_per_replica(self) -> np.ndarray:
        return np.linspace(0.05, 0.98, self.points) * self.service_rate

    @property
    def quantile_levels(self) -> np.ndarray:
        return np.linspace(0, 0.999, 400)

    def _quantiles(self, scale: float = 1.0) -> np.ndarray:
        rate = self.service_rate - self.rates_per_replica
        return scale * 1e3 * (-np.log1p(-self.quantile_levels))[None, :] / rate[:, None]

    @property
    def ttft_ms(self) -> np.ndarray:
        return self._quantiles()

    @property
    def tpot_ms(self) -> np.ndarray:
        return self._quantiles(0.01)

    @property
    def e2e_ms(self) -> np.ndarray:
        return self._quantiles()

    @property
    def slo_attainment(self) -> np.ndarray:
        return 1 - np.exp(-(self.service_rate - self.rates_per_replica) * self.slo_ms / 1e3)

    @property
    def busy_fraction(self) -> np.ndarray:
        return self.rates_per_replica / self.service_rate

    @property
    def prefill_busy_fraction(self) -> np.ndarray:
        return 0.2 * self.busy_fraction  # a fixed phase mix for the synthetic queue

    @property
    def capacity_per_replica(self) -> float:
        # attainment >= 0.95  <=>  exp(-(mu - lambda) t) <= 0.05
        return self.service_rate - np.log(20) / (self.slo_ms / 1e3)

    tokens_per_request: tuple[float, float] = (500.0, 100.0)


def mm1_provider(service_rate: float = 10.0, slo_ms: float = 500.0):
    def provider(scenario, deployment, workload):
        return MM1Curve(service_rate=service_rate, slo_ms=slo_ms, deployment=deployment, workload=workload)

    return provider


def without_failures(scenario):
    """The scenario with hardware failures of serving replicas turned off (per_gpu_day 0): what
    results were before failures were modelled."""
    deployments = [d.model_copy(update={"failures": d.failures.model_copy(update={"per_gpu_day": 0.0})})
                   for d in scenario.deployments]  # fmt: skip
    return scenario.model_copy(update={"deployments": deployments})
