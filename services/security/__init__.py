"""Security of the ledger: NATS identities and permissions, signed seals, `verify`."""
