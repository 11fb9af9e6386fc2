"""`python -m services.cli`: the `trial-ledger` command line."""

from services.cli import main

main()
