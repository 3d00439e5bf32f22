"""Alerts: pages and resolves from state transitions, and the channels that carry them."""
