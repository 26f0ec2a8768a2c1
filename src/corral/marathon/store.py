"""Where the Marathon service keeps its state: the API (namespace ``marathon``).

Called by ``service.MarathonService`` only: ``load`` at start (apps, versions, groups),
``load_runs`` (the deployments running when it stopped), ``adopted`` (the instances a previous run launched, from their pods), ``persist`` before
every deployment starts, ``write_status`` a second after an app's counts change.

- an ``App`` (``marathon.corral.dev/v1``) per app, named by ``object_name`` (a slug of
  the id and 10 hex digits of its SHA-1): ``spec.app`` the current canonical definition,
  ``spec.versions`` the earlier versions, ``status`` the counts, queued instances,
  running deployments and ``lastTaskFailure``;
- a ConfigMap ``<app object>-versions`` (label ``marathon.corral.dev/versions``) holding
  every stored version's definition (``{"versions": {version: app}}``, the newest 50),
  written before the App that names the version;
- the ConfigMap ``marathon-groups``: the groups that exist by themselves (empty ones, and
  ones with ``dependencies``), ``{"groups": {id: {"dependencies": [...]}}}``;
- the ConfigMap ``marathon-framework``: the framework id;
- a ConfigMap ``marathon-deployment-<id>`` (label ``marathon.corral.dev/deployment``) per
  running deployment, ``{"run": deployments.Run.to_stored()}``: written before the API
  call that starts it answers, again when its step changes, deleted when it ends, so a
  restarted service carries it on (``load_runs``).

``persist`` writes a change whole or not at all: a failed write undoes the ones before
it and raises ``Conflict`` (the API answered 409) or ``Invalid``.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson

from corral.api.errors import StatusError
from corral.client.rest import CONFIGMAPS, MARATHON_APPS, NAMESPACES, PODS, Client
from corral.marathon import apps as appdefs
from corral.marathon.deployments import Run
from corral.marathon.instances import Instance
from corral.marathon.launcher import APP_ID_KEY, APP_LABEL, CONFIG_VERSION_KEY, VERSION_KEY
from corral.marathon.service_api import Conflict, Invalid

Obj = dict[str, Any]
NAMESPACE = "marathon"
FRAMEWORK_CONFIGMAP = "marathon-framework"
GROUPS_CONFIGMAP = "marathon-groups"
VERSIONS_LABEL = "marathon.corral.dev/versions"
DEPLOYMENT_LABEL = "marathon.corral.dev/deployment"
DEPLOYMENT_PREFIX = "marathon-deployment-"
MAX_VERSIONS = 50
FRAMEWORK_ID_LABEL = "mesos.corral.dev/framework-id"
TASK_INFO_ANNOTATION = "mesos.corral.dev/task-info"


def object_name(app_id: str) -> str:
    """The App's ``metadata.name``: a slug of the id's path and 10 hex digits of its
    SHA-1 (a DNS label; ids the slug folds together stay apart)."""
    digest = hashlib.sha1(app_id.encode()).hexdigest()[:10]
    slug = re.sub(r"[^a-z0-9]+", "-", app_id.lower()).strip("-")[:52].strip("-")
    return f"{slug}-{digest}" if slug else f"app-{digest}"


class Store:
    """The stored state and its writes (see the module docstring)."""

    def __init__(self, client: Client) -> None:
        self.client = client
        #: every stored version's definition, by app id and version
        self.versions: dict[str, dict[str, Obj]] = {}
        #: the groups that exist by themselves
        self.groups: dict[str, Obj] = {}
        #: the status last written, by app id
        self.written: dict[str, Obj] = {}

    async def ensure_namespace(self) -> None:
        try:
            await self.client.create(
                NAMESPACES,
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
            )
        except StatusError as e:
            if e.code != 409:
                raise

    async def _configmap(self, name: str) -> Obj | None:
        try:
            return await self.client.get(CONFIGMAPS, name, NAMESPACE)
        except StatusError as e:
            if e.code == 404:
                return None
            raise

    async def _put_configmap(self, name: str, data: Obj, labels: Obj | None = None) -> None:
        body: Obj = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels or {}},
            "data": data,
        }
        try:
            await self.client.create(CONFIGMAPS, body, NAMESPACE)
        except StatusError as e:
            if e.code != 409:
                raise
            await self.client.update(CONFIGMAPS, body, NAMESPACE)

    async def _delete(self, res: Any, name: str) -> None:
        try:
            await self.client.delete(res, name, NAMESPACE)
        except StatusError as e:
            if e.code != 404:
                raise

    async def framework_id(self) -> str | None:
        cm = await self._configmap(FRAMEWORK_CONFIGMAP)
        return str((cm or {}).get("data", {}).get("frameworkId") or "") or None

    async def save_framework_id(self, fid: str) -> None:
        await self._put_configmap(FRAMEWORK_CONFIGMAP, {"frameworkId": fid})

    async def load(self) -> dict[str, Obj]:
        """The stored apps by id; fills ``versions``, ``groups`` and ``written``."""
        listed = await self.client.list(MARATHON_APPS, NAMESPACE)
        stored: dict[str, Obj] = {}
        for obj in listed.get("items") or []:
            app = (obj.get("spec") or {}).get("app")
            if isinstance(app, dict) and app.get("id"):
                stored[str(app["id"])] = app
                self.written[str(app["id"])] = dict(obj.get("status") or {})
        cms = await self.client.list(CONFIGMAPS, NAMESPACE, label_selector=VERSIONS_LABEL)
        for cm in cms.get("items") or []:
            raw = (cm.get("data") or {}).get("versions")
            app_id = ((cm.get("metadata") or {}).get("annotations") or {}).get(APP_ID_KEY)
            if raw and app_id in stored:
                self.versions[app_id] = orjson.loads(raw)
        for app_id, app in stored.items():
            self.versions.setdefault(app_id, {})[appdefs.version_of(app)] = app
        cm = await self._configmap(GROUPS_CONFIGMAP)
        raw = ((cm or {}).get("data") or {}).get("groups")
        self.groups = orjson.loads(raw) if raw else {}
        return stored

    async def save_run(self, run: Run) -> None:
        """Write the running deployment (its step included)."""
        data = {"run": orjson.dumps(run.to_stored()).decode()}
        try:
            await self._put_configmap(DEPLOYMENT_PREFIX + run.id, data, {DEPLOYMENT_LABEL: "true"})
        except StatusError as e:
            raise Invalid({"message": e.message, "details": []}) from None

    async def delete_run(self, deployment_id: str) -> None:
        """Forget a deployment that ended (gone already: nothing)."""
        await self._delete(CONFIGMAPS, DEPLOYMENT_PREFIX + deployment_id)

    async def load_runs(self) -> list[Run]:
        """The deployments running when the service stopped, oldest first."""
        cms = await self.client.list(CONFIGMAPS, NAMESPACE, label_selector=DEPLOYMENT_LABEL)
        out: list[Run] = []
        for cm in cms.get("items") or []:
            raw = (cm.get("data") or {}).get("run")
            if raw:
                out.append(Run.from_stored(orjson.loads(raw)))
        return sorted(out, key=lambda r: str(r.plan.get("version") or ""))

    async def adopted(self, framework_id: str, now: float) -> list[Instance]:
        """The instances a previous run of the service launched, from their pods."""
        out: list[Instance] = []
        pods = await self.client.list(PODS, "mesos", label_selector=APP_LABEL)
        for pod in pods.get("items") or []:
            meta = pod.get("metadata") or {}
            if (meta.get("labels") or {}).get(FRAMEWORK_ID_LABEL) != framework_id:
                continue
            phase = (pod.get("status") or {}).get("phase")
            if phase in ("Succeeded", "Failed") or meta.get("deletionTimestamp"):
                continue
            try:
                task = orjson.loads((meta.get("annotations") or {})[TASK_INFO_ANNOTATION])
            except (KeyError, orjson.JSONDecodeError):
                continue
            labels = {
                lab.get("key"): lab.get("value")
                for lab in (task.get("labels") or {}).get("labels") or []
            }
            app_id = str(labels.get(APP_ID_KEY) or "")
            ports: list[int] = []
            for r in task.get("resources") or []:
                if r.get("name") == "ports":
                    for rng in (r.get("ranges") or {}).get("range") or []:
                        ports += range(int(rng["begin"]), int(rng["end"]) + 1)
            out.append(
                Instance(
                    task_id=str((task.get("task_id") or {}).get("value") or ""),
                    app_id=app_id,
                    version=str(labels.get(VERSION_KEY) or ""),
                    config_version=str(labels.get(CONFIG_VERSION_KEY) or ""),
                    agent_id=str((task.get("agent_id") or {}).get("value") or ""),
                    host=str((pod.get("spec") or {}).get("nodeName") or ""),
                    ports=ports,
                    state="TASK_RUNNING" if phase == "Running" else "TASK_STAGING",
                    staged_at=now,
                )
            )
        return out

    async def persist(
        self,
        current: Mapping[str, Obj],
        target: Mapping[str, Obj],
        new_groups: dict[str, Obj],
    ) -> None:
        """Write the change (versions, Apps, groups); undo what was written on failure."""
        undo: list[Callable[[], Awaitable[None]]] = []
        versions = {k: dict(v) for k, v in self.versions.items()}
        try:
            for app_id in sorted(set(current) | set(target)):
                old, new = current.get(app_id), target.get(app_id)
                if old == new:
                    continue
                if new is None:
                    undo.append(await self._delete_app(app_id, old))
                    versions.pop(app_id, None)
                    continue
                kept = dict(versions.get(app_id) or {})
                kept[appdefs.version_of(new)] = new
                newest = sorted(kept, reverse=True)[:MAX_VERSIONS]
                kept = {v: kept[v] for v in newest}
                undo.append(await self._write_app(app_id, old, new, kept))
                versions[app_id] = kept
            if new_groups != self.groups:
                before = dict(self.groups)
                data = {"groups": orjson.dumps(new_groups).decode()}
                await self._put_configmap(GROUPS_CONFIGMAP, data)

                async def restore_groups() -> None:
                    await self._put_configmap(
                        GROUPS_CONFIGMAP, {"groups": orjson.dumps(before).decode()}
                    )

                undo.append(restore_groups)
        except StatusError as e:
            for step in reversed(undo):
                with contextlib.suppress(Exception):
                    await step()
            if e.code == 409:
                raise Conflict(e.message) from None
            raise Invalid({"message": e.message, "details": []}) from None
        self.versions = versions
        self.groups = new_groups

    async def _write_app(
        self, app_id: str, old: Obj | None, new: Obj, kept: Obj
    ) -> Callable[[], Awaitable[None]]:
        name = object_name(app_id)
        cm_name = f"{name}-versions"
        previous = dict(self.versions.get(app_id) or {})
        data = {"versions": orjson.dumps(kept).decode()}
        cm: Obj = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": cm_name,
                "namespace": NAMESPACE,
                "labels": {VERSIONS_LABEL: "true"},
                "annotations": {APP_ID_KEY: app_id},
            },
            "data": data,
        }
        try:
            await self.client.create(CONFIGMAPS, cm, NAMESPACE)
        except StatusError as e:
            if e.code != 409:
                raise
            await self.client.update(CONFIGMAPS, cm, NAMESPACE)
        spec = {
            "app": new,
            "versions": [v for v in sorted(kept, reverse=True) if v != appdefs.version_of(new)],
        }
        try:
            if old is None:
                await self.client.create(
                    MARATHON_APPS,
                    {
                        "apiVersion": "marathon.corral.dev/v1",
                        "kind": "App",
                        "metadata": {"name": name, "namespace": NAMESPACE},
                        "spec": spec,
                    },
                    NAMESPACE,
                )
            else:
                await self.client.patch(MARATHON_APPS, name, {"spec": spec}, NAMESPACE)
        except StatusError:
            with contextlib.suppress(Exception):
                if old is None:
                    await self._delete(CONFIGMAPS, cm_name)
                else:
                    await self.client.patch(
                        CONFIGMAPS,
                        cm_name,
                        {"data": {"versions": orjson.dumps(previous).decode()}},
                        NAMESPACE,
                    )
            raise

        async def undo() -> None:
            if old is None:
                await self._delete(MARATHON_APPS, name)
                await self._delete(CONFIGMAPS, cm_name)
                return
            back = {"app": old, "versions": [v for v in sorted(previous, reverse=True)]}
            back["versions"] = [v for v in back["versions"] if v != appdefs.version_of(old)]
            await self.client.patch(MARATHON_APPS, name, {"spec": back}, NAMESPACE)
            await self.client.patch(
                CONFIGMAPS,
                cm_name,
                {"data": {"versions": orjson.dumps(previous).decode()}},
                NAMESPACE,
            )

        return undo

    async def _delete_app(self, app_id: str, old: Obj | None) -> Callable[[], Awaitable[None]]:
        name = object_name(app_id)
        previous = dict(self.versions.get(app_id) or {})
        await self._delete(MARATHON_APPS, name)
        await self._delete(CONFIGMAPS, f"{name}-versions")
        self.written.pop(app_id, None)

        async def undo() -> None:
            if old is not None:
                self.versions[app_id] = previous
                await self._write_app(app_id, None, old, previous or {old["version"]: old})

        return undo

    async def write_status(self, app_id: str, status: Obj) -> None:
        """The App's status, unless it is what was written last (gone: nothing)."""
        if self.written.get(app_id) == status:
            return
        try:
            await self.client.patch(
                MARATHON_APPS, object_name(app_id), {"status": status}, NAMESPACE, sub="status"
            )
        except StatusError as e:
            if e.code != 404:
                raise
            return
        self.written[app_id] = status
