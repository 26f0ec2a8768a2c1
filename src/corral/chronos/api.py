"""What Chronos' REST API reads: jobs as Chronos shows them, stats, graphs, metrics.

``service.ChronosService`` inherits these (it is the ``http.Service`` the API calls);
they read the planner's state and the informer's objects, never await, never write.
Split from the service so that the shell holds only the I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from corral.chronos import dag, jobs, stats

if TYPE_CHECKING:
    from corral.chronos.planner import Planner

Obj = dict[str, Any]


class ChronosApi:
    """The read side of ``http.Service``; see the module docstring."""

    planner: Planner
    leader_address: str
    now: Callable[[], float]

    @property
    def counters(self) -> dict[str, int]:
        raise NotImplementedError

    def _object(self, name: str) -> Obj | None:
        raise NotImplementedError

    def _chronos(self, name: str) -> Obj | None:
        st = self.planner.jobs.get(name)
        if st is None:
            return None
        obj = self._object(name) or {}
        status = {**(obj.get("status") or {}), **st.status}
        job = dict(st.job)
        if st.schedule is not None:
            job["schedule"] = st.schedule.text()  # as Chronos shows it: rewritten by runs
        return jobs.to_chronos(job, status)

    def jobs(self) -> list[Obj]:
        out = [self._chronos(n) for n in sorted(self.planner.jobs)]
        return [j for j in out if j is not None]

    def job(self, name: str) -> Obj | None:
        return self._chronos(name)

    def _runs(self, name: str) -> list[Obj]:
        st = self.planner.jobs.get(name)
        return list((st.status.get("runs") if st else None) or [])

    def job_stat(self, name: str) -> Obj | None:
        if name not in self.planner.jobs:
            return None
        runs = self._runs(name)
        durations = [float(r.get("duration") or 0.0) for r in runs]
        return {
            "histogram": stats.histogram(durations),
            "taskStatHistory": [stats.task_stat({**r, "jobName": name}) for r in runs],
        }

    def percentiles(self, which: str) -> list[Obj]:
        by_job = {
            n: [float(r.get("duration") or 0.0) for r in self._runs(n)] for n in self.planner.jobs
        }
        return stats.percentile_list(by_job, which)

    def graph_csv(self) -> str:
        all_jobs = {n: st.job for n, st in self.planner.jobs.items()}
        last = {n: _last_state(st.status) for n, st in self.planner.jobs.items()}
        current = {n: self.planner.current_state(n) for n in self.planner.jobs}
        return dag.csv(all_jobs, last, current)

    def graph_dot(self) -> str:
        return dag.dot({n: st.job for n, st in self.planner.jobs.items()})

    def metrics(self) -> Obj:
        counters = self.counters
        success = sum(int(st.status.get("successCount") or 0) for st in self.planner.jobs.values())
        errors = sum(int(st.status.get("errorCount") or 0) for st in self.planner.jobs.values())
        return {
            "version": "3.0.0",
            "gauges": {
                "jobs.count": {"value": len(self.planner.jobs)},
                "jobs.queued": {"value": len(self.planner.queue)},
                "jobs.running": {"value": len(self.planner.running)},
            },
            "counters": {
                "runs.success": {"count": success},
                "runs.failure": {"count": errors},
                "runs.launched": {"count": counters["runs_launched"]},
                "runs.skipped": {"count": self.planner.skipped},
                "claims.lost": {"count": counters["claims_lost"]},
            },
            "histograms": {},
            "meters": {},
            "timers": {},
        }

    def leader(self) -> str:
        return self.leader_address

    def why(self, name: str) -> list[str]:
        return self.planner.waiting_for(name, self.now())


def _last_state(status: Obj) -> str:
    ok, err = str(status.get("lastSuccess") or ""), str(status.get("lastError") or "")
    if not ok and not err:
        return "fresh"
    return "success" if ok >= err else "failure"
