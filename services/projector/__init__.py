"""The projector service: ledger → PostgreSQL read models, exactly once."""
