"""Chronos on Corral: ISO 8601 repeating and dependent batch jobs as a framework on the
Mesos master, with the REST API that ``chronos-python`` uses (docs/chronos.md)."""
