"""The safety alerter: one ALERTS message per serious adverse event, never lost, never doubled."""
