"""The `trial-ledger` command line, one module per command group (services/cli/commands.py
declares them); `main` is the entry point. Importing the package imports no command, so
`python -m services.cli.commands` runs cleanly too."""


def main() -> None:
    from services.cli.commands import main as run

    run()
