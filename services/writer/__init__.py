"""The writer service: validating intake → immutable ledger."""
