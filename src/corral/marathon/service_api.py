"""What the Marathon REST API (``http.py``) asks of the Marathon service (``service.py``):
the ``Service`` protocol, its exceptions, and the ``EventSink`` the service publishes
Marathon's events to (``events.py`` keeps the subscribers of ``/v2/events``).

The split: ``http.py`` owns the wire (paths, query flags, bodies read through
``apps.normalize``/``groups.normalize_group``, answers rendered with ``apps.to_client``,
``task_to_client``, ``groups.to_client``, Marathon's error bodies); the service owns the
state (apps, groups, instances, deployments, the launch queue) and every change to it.
Everything the service returns is already Marathon-shaped JSON (camelCase), except apps,
which are canonical definitions (``apps.normalize`` + ``apps.with_version``) that
``http.py`` renders.

A change is one call that either starts a deployment (``Deployment``: its id and the new
version, what Marathon answers as ``{"deploymentId", "version"}``) or raises: ``Locked``
(409 with ``plan.locked_body``), ``NotFound`` (404 ``{"message": ...}``), ``Invalid``
(422, an ``AppError``'s body) or ``Conflict`` (409 ``{"message": ...}``, e.g. an app id
that is taken). The service stamps versions itself (it holds the current state), so
``http.py`` passes normalized apps without ``version``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

Obj = dict[str, Any]


@dataclass(frozen=True)
class Deployment:
    """A change accepted: ``{"deploymentId": id, "version": version}`` on the wire."""

    id: str
    version: str

    def body(self) -> Obj:
        return {"deploymentId": self.id, "version": self.version}


class ServiceError(Exception):
    """A change or read refused; ``http.py`` maps each subclass to Marathon's answer."""


class NotFound(ServiceError):
    """404 ``{"message": message}`` (Marathon: ``App '/x' does not exist``)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Conflict(ServiceError):
    """409 ``{"message": message}`` (e.g. ``An app with id [/x] already exists.``)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Locked(ServiceError):
    """409 ``plan.locked_body(deployment_ids)``: the apps are in running deployments and
    the change did not say ``force``."""

    def __init__(self, deployment_ids: Iterable[str]) -> None:
        self.deployment_ids = list(deployment_ids)
        super().__init__(f"locked by {self.deployment_ids}")


class Invalid(ServiceError):
    """422 with ``body`` (an ``apps_errors.AppError``'s body: message and details)."""

    def __init__(self, body: Obj) -> None:
        super().__init__(body.get("message", "invalid"))
        self.body = body


class EventSink(Protocol):
    """Where the service publishes Marathon events (``events.EventBus`` implements it).
    ``event`` is the whole event body, ``eventType`` and ``timestamp`` included."""

    def publish(self, event: Obj) -> None: ...


class Service(Protocol):
    """The Marathon service as the REST API sees it (``service.MarathonService``)."""

    # --- apps --------------------------------------------------------------------------
    def apps(self) -> list[Obj]:
        """Every app's current definition (canonical form, with version), by id order."""
        ...

    def app(self, app_id: str) -> Obj | None: ...

    def app_versions(self, app_id: str) -> list[str] | None:
        """The stored versions of an app, newest first; None when the app is unknown."""
        ...

    def app_version(self, app_id: str, version: str) -> Obj | None: ...

    def tasks(self, app_id: str | None = None) -> list[Obj]:
        """The instances' tasks (of one app, or all), each with ``apps_view.TASK_KEYS``
        and ``state`` (``TASK_STAGING``, ``TASK_RUNNING`` ...)."""
        ...

    def counts(self, app_id: str) -> Obj:
        """``{"staged", "running", "healthy", "unhealthy"}`` for ``apps.to_client``."""
        ...

    def last_task_failure(self, app_id: str) -> Obj | None: ...

    def task_stats(self, app_id: str) -> Obj | None: ...

    def readiness(self, app_id: str) -> list[Obj]: ...

    def app_deployments(self, app_id: str) -> list[str]:
        """Ids of the running deployments that affect the app."""
        ...

    # --- groups ------------------------------------------------------------------------
    def group_dependencies(self) -> dict[str, list[str]]:
        """The groups' own ``dependencies`` by group id (``groups.group_dependencies``)."""
        ...

    def group_ids(self) -> list[str]:
        """Every group that exists, empty ones included (``/`` always)."""
        ...

    # --- changes: each starts one deployment -------------------------------------------
    async def deploy(
        self,
        changes: Mapping[str, Obj | None],
        *,
        force: bool = False,
        create_only: bool = False,
        groups: Mapping[str, Obj | None] | None = None,
    ) -> Deployment:
        """Take the apps in ``changes`` (by id: the new normalized definition, or None to
        remove the app) to their new state in one deployment. ``create_only``: refuse
        (``Conflict``) an id that exists (``POST /v2/apps``). ``groups``: group ids to
        create or update (``{"dependencies": [...]}``) or remove (None). ``Locked`` when
        a running deployment touches one of the apps and not ``force`` (``force``
        cancels those deployments, leaving their instances as they are)."""
        ...

    async def restart(self, app_id: str, *, force: bool = False) -> Deployment: ...

    async def kill_tasks(
        self,
        task_ids: Iterable[str],
        *,
        scale: bool = False,
        wipe: bool = False,
        force: bool = False,
    ) -> Deployment | list[Obj]:
        """Kill tasks; with ``scale`` lower their apps' instances by as many (a
        ``Deployment``), else the killed tasks (Marathon shape) are answered and the app
        replaces them. Unknown task ids are ignored; ``NotFound`` when none is known."""
        ...

    async def cancel_deployment(
        self, deployment_id: str, *, force: bool = False
    ) -> Deployment | None:
        """``DELETE /v2/deployments/{id}``: without ``force``, roll back (a new
        deployment, returned); with ``force``, just stop it (None). ``NotFound``."""
        ...

    # --- the rest ----------------------------------------------------------------------
    def deployments(self) -> list[Obj]:
        """Running deployments as ``GET /v2/deployments`` shows them (``plan.at_step``)."""
        ...

    def queue(self) -> list[Obj]:
        """``GET /v2/queue``'s ``queue`` items: apps waiting for offers, with ``count``,
        ``delay``, ``since`` and ``processedOffersSummary``."""
        ...

    async def reset_delay(self, app_id: str) -> None:
        """``DELETE /v2/queue/{app_id}/delay``; ``NotFound`` when the app is not queued."""
        ...

    def info(self) -> Obj:
        """``GET /v2/info``'s body (name, version, frameworkId, leader, http_config ...)."""
        ...

    def leader(self) -> str | None:
        """``host:port`` of the leading Marathon (this one), None while not subscribed."""
        ...

    def metrics(self) -> Obj: ...

    def why(self, app_id: str) -> list[str]:
        """What an app waits for (``corral why app/ID``): one line a reason."""
        ...
