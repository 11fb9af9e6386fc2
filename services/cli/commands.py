"""`trial-ledger`: the one command-line entry point (DESIGN.md, "CLI").

Every command group is a module of its own, imported here by name so that a missing one
stops the command line instead of silently taking its commands away.
"""

from __future__ import annotations

import sys

from services.cli import alert_commands, ledger_commands, serve_commands, system_commands
from services.cli.app import app
from services.cli.errors import run_cli

COMMAND_GROUPS = (system_commands, serve_commands, ledger_commands, alert_commands)


def main() -> None:
    sys.exit(run_cli(app))


if __name__ == "__main__":
    main()
