"""The scheduler: Kubernetes placement rules over a vectorised node table.

Only names that the command line needs without loading numpy live here.
"""

DEFAULT_SCHEDULER = "default-scheduler"
FAILED_SCHEDULING = "FailedScheduling"
#: bindings in flight at most. kube-scheduler binds each pod in a goroutine of its own,
#: with no cap; this one bounds them above the seats its API priority level holds
#: (workload-high: 98 of upstream's 600), so the server's flow control, not the
#: scheduler, decides how many run, and the bindings keep pace with a burst of creates
#: (``bench/scheduler_perf.py``: a pod waited ~2.5 s for its binding with 64)
MAX_IN_FLIGHT = 128
