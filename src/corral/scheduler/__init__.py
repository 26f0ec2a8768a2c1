"""The scheduler: Kubernetes placement rules over a vectorised node table.

Only names that the command line needs without loading numpy live here.
"""

DEFAULT_SCHEDULER = "default-scheduler"
FAILED_SCHEDULING = "FailedScheduling"
