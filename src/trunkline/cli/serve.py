"""``trunkline serve``: run a node - the database, the job queue, HTTP and WebSocket.

Every option can also come from an environment variable (named in its ``--help``) or a TOML
file (``--config``); options win over the environment, which wins over the file, which wins
over the defaults (:mod:`trunkline.server.settings`). An invalid setting is one line on stderr
naming it and where it came from, and exit code 2. Otherwise the node runs until SIGTERM or
SIGINT, stops gracefully, and the exit code is the node's: 0 after a graceful stop, 1 when it
could not start or its supervision tree gave up.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from trunkline.server import (
    DEFAULT_DATABASE,
    DEFAULT_HOST,
    DEFAULT_PORT,
    NodeContext,
    SettingsError,
    TrunklineNode,
    configure_logging,
    load_settings,
)

__all__ = ["serve"]


def serve(
    host: Annotated[
        str | None,
        typer.Option(
            "--host",
            help=f"Address to listen on (env TRUNKLINE_HOST; default: {DEFAULT_HOST}).",
            show_default=False,
        ),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            "--port",
            "-p",
            help=f"Port for HTTP and WebSocket; 0 picks a free one (env TRUNKLINE_PORT; "
            f"default: {DEFAULT_PORT}).",
            show_default=False,
        ),
    ] = None,
    database: Annotated[
        str | None,
        typer.Option(
            "--database",
            "-d",
            help="Database URL: sqlite:///path or postgresql://user@host/db "
            f"(env TRUNKLINE_DATABASE; default: {DEFAULT_DATABASE}).",
            show_default=False,
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="A TOML file of settings, below options and environment variables "
            "(env TRUNKLINE_CONFIG).",
            show_default=False,
        ),
    ] = None,
    log_format: Annotated[
        str | None,
        typer.Option(
            "--log-format",
            help="human or json (one object per line; env TRUNKLINE_LOG_FORMAT; default: human).",
            show_default=False,
        ),
    ] = None,
    log_level: Annotated[
        str | None,
        typer.Option(
            "--log-level",
            help="debug, info, warning, error or critical (env TRUNKLINE_LOG_LEVEL; "
            "default: info).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run a node: the database, the job queue, and HTTP + WebSocket on one port.

    Stops gracefully on SIGTERM or Ctrl-C. Example: trunkline serve --port 4000
    """
    environment = dict(os.environ)
    config_path = config if config is not None else environment.get("TRUNKLINE_CONFIG")
    try:
        settings = load_settings(
            cli={
                "host": host,
                "port": port,
                "database": database,
                "log_format": log_format,
                "log_level": log_level,
            },
            env=environment,
            config_path=config_path or None,
        )
    except SettingsError as error:
        typer.echo(f"Error: {error}", err=True)
        raise typer.Exit(2) from None
    configure_logging(settings.log_format, settings.log_level)
    raise typer.Exit(TrunklineNode(NodeContext(settings)).main())
