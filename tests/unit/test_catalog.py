"""The bundled catalog: required entries, consistent shapes, profiles for every GPU."""

from __future__ import annotations

import pytest

from simulator.catalog import bundled_catalog
from simulator.perf.profile import bundled_profile, bundled_profile_names

REQUIRED_GPUS = ["a100-40-sxm", "a100-80-sxm", "h100-sxm", "h100-pcie", "h200", "b200", "l4",
                 "l40s", "mi300x", "cpu-local", "cpu-local-amx"]  # fmt: skip
REQUIRED_MODELS = ["llama-3-8b", "llama-3-70b", "llama-3-405b", "llama-2-7b", "llama-2-70b",
                   "mistral-7b", "mixtral-8x7b", "deepseek-v3"]  # fmt: skip


def test_required_entries_present():
    catalog = bundled_catalog()
    assert set(REQUIRED_GPUS) <= set(catalog.gpus)
    assert set(REQUIRED_MODELS) <= set(catalog.models)


@pytest.mark.parametrize("name", REQUIRED_GPUS)
def test_every_gpu_has_a_default_profile(name):
    assert name in bundled_profile_names()
    assert bundled_profile(name).gpu == name


def llama_style_parameters(m) -> float:
    hd = m.attention_head_dim
    attention = m.hidden_size * m.heads * hd * 2 + 2 * m.hidden_size * m.kv_heads * hd
    mlp = 3 * m.hidden_size * m.ffn_hidden_size * (m.experts or 1)
    return 2 * m.vocab_size * m.hidden_size + m.layers * (attention + mlp)


@pytest.mark.parametrize("name", ["llama-3-8b", "llama-3-70b", "llama-3-405b", "llama-2-7b",
                                  "mistral-7b", "mixtral-8x7b", "tiny-cpu"])  # fmt: skip
def test_dense_shapes_match_published_parameter_counts(name):
    m = bundled_catalog().models[name]
    assert llama_style_parameters(m) == pytest.approx(m.parameters, rel=0.02)


def test_moe_active_parameters_below_total():
    for m in bundled_catalog().models.values():
        assert m.active <= m.parameters
        if m.is_moe:
            assert m.active < m.parameters


def test_fp8_peak_is_twice_bf16_where_present():
    for g in bundled_catalog().gpus.values():
        if g.fp8_tflops:
            assert g.fp8_tflops == pytest.approx(2 * g.bf16_tflops, rel=0.05)
