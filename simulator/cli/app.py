"""The ``fleetsim`` typer app: the object every command registers on, and nothing else.

It imports none of the commands; :mod:`simulator.cli.main` imports them so that they register.
"""

from __future__ import annotations

from typing import Annotated

import typer

from simulator import __version__
from simulator.cli.options import out

app = typer.Typer(
    name="fleetsim",
    help=(
        "Cost and capacity planning simulator for ML GPU fleets.\n\n"
        "Examples:\n\n"
        "  fleetsim run scenarios/chat-assistant.yaml --out out/chat\n\n"
        "  fleetsim compare scenarios/buy-vs-rent.yaml\n\n"
        "  fleetsim report scenarios/lifecycle.yaml -o report.xlsx --plots plots\n\n"
        "  fleetsim validate scenarios/chat-assistant.yaml\n\n"
        "  fleetsim cost scenarios/chat-assistant.yaml --deployment chat-70b --batch 32"
    ),
    no_args_is_help=False,  # the callback prints the help on stdout, exit 0
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish, PowerShell
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        out.print(f"fleetsim {__version__}")
        raise typer.Exit()


@app.callback(invoke_without_command=True)
def main(
    ctx: typer.Context,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """Cost and capacity planning simulator for ML GPU fleets."""
    if ctx.invoked_subcommand is None:  # plain `fleetsim`: the help is what was asked for
        typer.echo(ctx.get_help())
        raise typer.Exit(0)
