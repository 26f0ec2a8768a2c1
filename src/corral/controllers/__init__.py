"""Workload controllers: level-triggered loops that are ordinary API clients."""
