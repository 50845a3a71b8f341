"""CLI: ``fleetsim catalog gpus|models``, the bundled catalog."""

from __future__ import annotations

import typer

from simulator.cli.app import app
from simulator.cli.options import JsonOpt, out, print_json, table

catalog_app = typer.Typer(help="Browse the bundled catalog of GPUs, models and API prices.\n\n"
                                "Example: fleetsim catalog gpus --json")
app.add_typer(catalog_app, name="catalog")


@catalog_app.callback(invoke_without_command=True)
def catalog_help(ctx: typer.Context) -> None:
    """Browse the bundled catalog of GPUs, models and API prices.

    Example: fleetsim catalog gpus --json
    """
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(0)


@catalog_app.command("gpus")
def catalog_gpus(as_json: JsonOpt = False) -> None:
    """Bundled GPUs with their specs and typical prices. Example: fleetsim catalog gpus --json"""
    from simulator.catalog import bundled_catalog

    gpus = bundled_catalog().gpus.values()
    if as_json:
        print_json([g.model_dump() for g in gpus])
        return

    def fmt(value: float | None, pattern: str = "{:g}") -> str:
        return "-" if value is None else pattern.format(value)

    rows = [
        [g.name, fmt(g.bf16_tflops), fmt(g.fp8_tflops), fmt(g.fp4_tflops), fmt(g.hbm_gib), fmt(g.hbm_tb_per_s),
         fmt(g.interconnect_gb_per_s), fmt(g.tdp_w), fmt(g.usd_per_gpu_hour_on_demand, "{:.2f}"),
         fmt(g.usd_per_gpu_hour_reserved, "{:.2f}"), fmt(g.capex_usd, "{:,.0f}")]
        for g in gpus
    ]  # fmt: skip
    columns = ["gpu", "bf16 TFLOP/s", "fp8 TFLOP/s", "fp4 TFLOP/s", "HBM GiB", "HBM TB/s", "link GB/s",
               "TDP W", "$/h on-demand", "$/h reserved", "capex $"]  # fmt: skip
    out.print(table("Bundled GPUs (dense peaks)", columns, rows))


@catalog_app.command("models")
def catalog_models(as_json: JsonOpt = False) -> None:
    """Bundled model presets with their shapes. Example: fleetsim catalog models --json"""
    from simulator.catalog import bundled_catalog
    from simulator.perf.memory import kv_bytes_per_token

    models = bundled_catalog().models.values()
    if as_json:
        print_json([m.model_dump() for m in models])
        return
    rows = [
        [m.name, f"{m.parameters / 1e9:.1f}", f"{m.active / 1e9:.1f}", m.layers, m.hidden_size,
         f"{m.heads}/{m.kv_heads}", m.experts or "-",
         f"{kv_bytes_per_token(m, 'bf16') / 1024:.0f}", m.max_context_tokens]
        for m in models
    ]  # fmt: skip
    columns = ["model", "params B", "active B", "layers", "hidden", "heads/kv", "experts",
               "KV KiB/token bf16", "max context"]  # fmt: skip
    out.print(table("Bundled models", columns, rows))


@catalog_app.command("apis")
def catalog_apis(as_json: JsonOpt = False) -> None:
    """Bundled public API list prices (the buy-instead baseline: api_baseline: {provider: NAME}).

    Example: fleetsim catalog apis
    """
    from simulator.catalog import bundled_api_prices

    prices = bundled_api_prices().values()
    if as_json:
        print_json([p.model_dump() for p in prices])
        return
    rows = [[p.name, p.provider, p.model, f"{p.usd_per_million_input_tokens:.2f}",
             f"{p.usd_per_million_output_tokens:.2f}", p.date, p.source] for p in prices]  # fmt: skip
    columns = ["name", "provider", "model", "$/1M in", "$/1M out", "as of", "source"]
    out.print(table("Bundled API list prices (check the source: prices move)", columns, rows))
