"""The `trial-ledger` command line, one module per command group; `main` is its entry point."""

from services.cli.commands import app, main

__all__ = ["app", "main"]
