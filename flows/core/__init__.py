"""pgtender's core: what every job shares (settings, database, clock, ledger, locks, DDL, errors,
logs, masking, metrics, schedules, the partition catalog and the one run lifecycle).

Core imports no job and nothing from the edge (CLI, serving); the import rules are checked in CI.
"""
