"""The Deployment controller: rolls a Deployment's pod template out through ReplicaSets.

Run by ``ControllerManager`` (controllers/manager.py, name ``deployment``) inside ``corral
server`` / ``corral up`` or ``corral controller-manager``. It manages ReplicaSets only;
the ReplicaSet controller (replicaset.py) manages their pods. Behaviour follows
Kubernetes' pkg/controller/deployment; the arithmetic lives in ``deployment_util`` (pure).

``sync(key)`` for one Deployment, level-triggered::

    gone -----------------------------------------------> done
    empty selector ------------------> SelectingAll Event, observedGeneration, done
    claim ReplicaSets: adopt matching orphans, release owned ones that stopped matching
    being deleted ----------------------------------------> status only
    Progressing = Unknown DeploymentPaused / DeploymentResumed on a pause change
    find the new ReplicaSet (template equal but for pod-template-hash), sync its
        revision (max old revision + 1, so an undone-to one is bumped) and annotations
    paused, or spec.replicas differs from the desired-replicas annotation of an
        active ReplicaSet --> scale (proportionally), clean up history if paused, status
    Recreate:  old ReplicaSets -> 0; wait until their pods are gone;
               create the new ReplicaSet; scale it to replicas
    RollingUpdate: create the new ReplicaSet; grow it within maxSurge, or else shrink
               old ones (unavailable replicas first) keeping replicas - maxUnavailable
               available
    complete -> delete empty old ReplicaSets beyond revisionHistoryLimit
    status: counts, Available and Progressing conditions (ProgressDeadlineExceeded
        after progressDeadlineSeconds without progress; a requeue is set for it)

Writes go through the client (ReplicaSets with PUT so a stale cache gets 409 and a
retry; the Deployment's revision annotation and status with PUT on ``/status``, which
keeps annotations). The cached objects are never mutated.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, ClassVar

from corral.api.errors import StatusError
from corral.api.selectors import SelectorError, try_selector_from_object
from corral.client.informer import Informer
from corral.client.rest import DEPLOYMENTS, PODS, REPLICASETS, Client
from corral.controllers import deployment_util as du
from corral.controllers.base import (
    CONTROLLER_UID_INDEX,
    NAMESPACE_INDEX,
    Controller,
    InformerFactory,
    clone,
    controller_ref,
    controller_uid_index,
    namespace_index,
)
from corral.util.clock import Clock, parse_rfc3339, rfc3339

log = logging.getLogger("corral.controllers.deployment")

Obj = dict[str, Any]

STRATEGIC = "application/strategic-merge-patch+json"

SCALING_REPLICA_SET = "ScalingReplicaSet"
SELECTING_ALL = "SelectingAll"
SELECTING_ALL_MESSAGE = "This deployment is selecting all pods. A non-empty selector is required."

_NS_INDEX = NAMESPACE_INDEX
_POD_OWNER_INDEX = CONTROLLER_UID_INDEX  # shared with other controllers (base.py)


def _controller_of(obj: Obj) -> Obj | None:
    for ref in du.meta(obj).get("ownerReferences") or ():
        if ref.get("controller"):
            return dict(ref)
    return None


def _ns(obj: Obj) -> str:
    return str(du.meta(obj).get("namespace") or "")


def _pod_terminal(pod: Obj) -> bool:
    return du.status(pod).get("phase") in ("Succeeded", "Failed")


class DeploymentController(Controller):
    """Rolls Deployments out through ReplicaSets (see the module docstring)."""

    name: ClassVar[str] = "deployment"

    def __init__(
        self,
        client: Client,
        factory: InformerFactory,
        *,
        workers: int = 4,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(client, factory, workers=workers, clock=clock)
        self.deployments: Informer = factory.informer(DEPLOYMENTS)
        self.replicasets: Informer = factory.informer(REPLICASETS)
        self.pods: Informer = factory.informer(PODS)
        for inf in (self.deployments, self.replicasets):
            inf.add_index(_NS_INDEX, namespace_index)
        self.pods.add_index(_POD_OWNER_INDEX, controller_uid_index)
        self.deployments.add_handler(self._on_deployment)
        self.replicasets.add_handler(self._on_replicaset)
        self.pods.add_handler(self._on_pod)

    # --- handlers (never await) ---------------------------------------------------------------
    def _on_deployment(self, _type: str, obj: Obj, _old: Obj | None) -> None:
        self.enqueue(obj)

    def _owner_key(self, obj: Obj) -> str | None:
        ref = _controller_of(obj)
        if ref is None or ref.get("kind") != "Deployment":
            return None
        key = f"{_ns(obj)}/{ref.get('name')}"
        d = self.deployments.get(key)
        if d is None or du.meta(d).get("uid") != ref.get("uid"):
            return None
        return key

    def _on_replicaset(self, type_: str, rs: Obj, old: Obj | None) -> None:
        for o in (rs, old):
            if o is not None and (key := self._owner_key(o)) is not None:
                self.queue.add(key)
        if type_ != "DELETED" and _controller_of(rs) is None:
            labels = du.meta(rs).get("labels") or {}
            for d in self.deployments.by_index(_NS_INDEX, _ns(rs)):
                try:
                    sel = try_selector_from_object(du.spec(d).get("selector"))
                except SelectorError:
                    continue
                if not sel.empty and sel.matches(labels):
                    self.enqueue(d)

    def _on_pod(self, type_: str, pod: Obj, old: Obj | None) -> None:
        # Only Recreate waits on pods: wake it when an old pod goes away or terminates.
        if type_ != "DELETED" and (old is None or _pod_terminal(old) or not _pod_terminal(pod)):
            return
        ref = _controller_of(pod)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return
        rs = self.replicasets.get(f"{_ns(pod)}/{ref.get('name')}")
        if rs is None or (key := self._owner_key(rs)) is None:
            return
        d = self.deployments.get(key) or {}
        if (du.spec(d).get("strategy") or {}).get("type") == "Recreate":
            self.queue.add(key)

    # --- sync -----------------------------------------------------------------------------------
    async def sync(self, key: str) -> None:
        cached = self.deployments.get(key)
        if cached is None:
            return
        d = clone(cached)
        d.setdefault("apiVersion", "apps/v1")
        d.setdefault("kind", "Deployment")
        sel = du.spec(d).get("selector")
        if sel is not None and not sel.get("matchLabels") and not sel.get("matchExpressions"):
            await self.recorder.event(d, "Warning", SELECTING_ALL, SELECTING_ALL_MESSAGE)
            gen = int(du.meta(d).get("generation") or 0)
            if int(du.status(d).get("observedGeneration") or 0) < gen:
                d.setdefault("status", {})["observedGeneration"] = gen
                await self._update_status(d)
            return
        rs_list = await self.claim_replicasets(d)
        if du.meta(d).get("deletionTimestamp"):
            new_rs, old_rss = await self.get_all_rss(d, rs_list, create=False)
            await self._sync_status(d, [*old_rss, new_rs], new_rs)
            return
        await self._check_paused_conditions(d)
        new_rs, old_rss = await self.get_all_rss(d, rs_list, create=False)
        if du.spec(d).get("paused") or self._is_scaling_event(d, new_rs, old_rss):
            await self._scale_sync(d, new_rs, old_rss)
        elif (du.spec(d).get("strategy") or {}).get("type") == "Recreate":
            await self._rollout_recreate(d, rs_list, new_rs, old_rss)
        else:
            await self._rollout_rolling(d, rs_list, new_rs, old_rss)

    # --- ReplicaSets of a Deployment ------------------------------------------------------------
    async def claim_replicasets(self, d: Obj) -> list[Obj]:
        """The Deployment's ReplicaSets after adopting matching orphans and releasing
        owned ones whose labels no longer match (ControllerRefManager)."""
        try:
            sel = try_selector_from_object(du.spec(d).get("selector"))
        except SelectorError as e:
            log.warning("deployment %s: invalid selector: %s", du.meta(d).get("name"), e)
            return []
        uid = du.meta(d).get("uid")
        deleting = bool(du.meta(d).get("deletionTimestamp"))
        out: list[Obj] = []
        can_adopt: bool | None = None
        for rs in self.replicasets.by_index(_NS_INDEX, _ns(d)):
            ref = _controller_of(rs)
            matches = sel.matches(du.meta(rs).get("labels") or {})
            if ref is not None:
                if ref.get("uid") != uid:
                    continue
                if matches:
                    out.append(rs)
                elif not deleting:
                    await self._patch_owner(rs, {"$patch": "delete", "uid": uid})
                continue
            if deleting or not matches or du.meta(rs).get("deletionTimestamp"):
                continue
            if can_adopt is None:
                can_adopt = await self._can_adopt(d)
            if can_adopt:
                adopted = await self._patch_owner(rs, controller_ref(d, "apps/v1", "Deployment"))
                if adopted is not None:
                    out.append(adopted)
        return out

    async def _can_adopt(self, d: Obj) -> bool:
        m = du.meta(d)
        try:
            fresh = await self.client.get(DEPLOYMENTS, m["name"], m.get("namespace"))
        except StatusError as e:
            if e.code == 404:
                return False
            raise
        fm = du.meta(fresh)
        return fm.get("uid") == m.get("uid") and not fm.get("deletionTimestamp")

    async def _patch_owner(self, rs: Obj, ref: Obj) -> Obj | None:
        m = du.meta(rs)
        body = {"metadata": {"ownerReferences": [ref], "uid": m.get("uid")}}
        try:
            return await self.client.patch(
                REPLICASETS, m["name"], body, m.get("namespace"), patch_type=STRATEGIC
            )
        except StatusError as e:
            if e.code in (404, 422):  # gone or being deleted: nothing to claim or release
                return None
            raise

    async def get_all_rss(
        self, d: Obj, rs_list: list[Obj], *, create: bool
    ) -> tuple[Obj | None, list[Obj]]:
        """(new ReplicaSet or None, old ReplicaSets); syncs the new one's revision and
        annotations and the Deployment's revision; creates it when ``create``."""
        existing = du.find_new_rs(d, rs_list)
        new_uid = du.meta(existing).get("uid") if existing else None
        old_rss = [rs for rs in rs_list if existing is None or du.meta(rs).get("uid") != new_uid]
        new_revision = du.max_revision(old_rss) + 1
        if existing is not None:
            rs = clone(existing)
            changed = du.set_new_rs_annotations(d, rs, new_revision, exists=True)
            min_ready = int(du.spec(d).get("minReadySeconds") or 0)
            if int(du.spec(rs).get("minReadySeconds") or 0) != min_ready:
                rs["spec"]["minReadySeconds"] = min_ready
                changed = True
            if changed:
                rs = await self.client.update(REPLICASETS, rs, _ns(d))
            needs_update = self._set_deployment_revision(d, str(du.revision(rs)))
            if (
                du.has_progress_deadline(d)
                and du.get_condition(du.status(d), du.PROGRESSING) is None
            ):
                msg = f'Found new replica set "{du.meta(rs)["name"]}"'
                self._set_condition(d, du.PROGRESSING, "True", du.FOUND_NEW_RS_REASON, msg)
                needs_update = True
            if needs_update:
                await self._update_status(d)
            return rs, old_rss
        if not create:
            return None, old_rss
        return await self._create_new_rs(d, old_rss, new_revision), old_rss

    async def _create_new_rs(self, d: Obj, old_rss: list[Obj], new_revision: int) -> Obj:
        collision = du.status(d).get("collisionCount")
        template_hash = du.compute_hash(du.spec(d).get("template") or {}, collision)
        rs = du.new_rs_object(d, template_hash, controller_ref(d, "apps/v1", "Deployment"))
        count = du.new_rs_new_replicas(d, [*old_rss, rs], rs)
        rs["spec"]["replicas"] = count
        du.set_new_rs_annotations(d, rs, new_revision, exists=False)
        name = du.meta(rs)["name"]
        try:
            created = await self.client.create(REPLICASETS, rs, _ns(d))
            already = False
        except StatusError as e:
            if e.code == 409 and e.reason == "AlreadyExists":
                found = await self.client.get(REPLICASETS, name, _ns(d))
                ref = _controller_of(found) or {}
                same = du.equal_ignore_hash(
                    du.spec(d).get("template"), du.spec(found).get("template")
                )
                if ref.get("uid") != du.meta(d).get("uid") or not same:
                    # a hash collision: bump collisionCount and try another name next time
                    d.setdefault("status", {})["collisionCount"] = int(collision or 0) + 1
                    await self._update_status(d)
                    raise
                created, already = found, True
            elif e.code == 403 and "being terminated" in e.message:
                raise
            else:
                msg = f'Failed to create new replica set "{name}": {e.message}'
                if du.has_progress_deadline(d):
                    self._set_condition(d, du.PROGRESSING, "False", du.FAILED_RS_CREATE_REASON, msg)
                    try:
                        await self._update_status(d)
                    except StatusError:
                        pass
                await self.recorder.event(d, "Warning", du.FAILED_RS_CREATE_REASON, msg)
                raise
        if not already and count > 0:
            await self.recorder.event(
                d, "Normal", SCALING_REPLICA_SET, f"Scaled up replica set {name} from 0 to {count}"
            )
        needs_update = self._set_deployment_revision(d, str(new_revision))
        if not already and du.has_progress_deadline(d):
            msg = f'Created new replica set "{name}"'
            self._set_condition(d, du.PROGRESSING, "True", du.NEW_RS_REASON, msg)
            needs_update = True
        if needs_update:
            await self._update_status(d)
        return created

    # --- scaling ----------------------------------------------------------------------------------
    def _is_scaling_event(self, d: Obj, new_rs: Obj | None, old_rss: list[Obj]) -> bool:
        want = du.replicas(d)
        for rs in du.active([*old_rss, new_rs]):
            desired = du.desired_replicas_annotation(rs)
            if desired is not None and desired != want:
                return True
        return False

    async def scale_rs(self, d: Obj, rs: Obj, size: int, op: str = "") -> Obj:
        """Write ``rs`` at ``size`` with fresh replicas annotations; a size change records
        ScalingReplicaSet. Returns the ReplicaSet as written (or as given)."""
        old_size = du.replicas(rs)
        want = du.replicas(d)
        max_replicas = want + du.max_surge(d)
        resize = old_size != size
        if not resize and not du.replicas_annotations_need_update(rs, want, max_replicas):
            return rs
        copy = clone(rs)
        copy.setdefault("spec", {})["replicas"] = size
        du.set_replicas_annotations(copy, want, max_replicas)
        out = await self.client.update(REPLICASETS, copy, _ns(rs))
        if resize:
            op = op or ("up" if old_size < size else "down")
            name = du.meta(rs)["name"]
            await self.recorder.event(
                d,
                "Normal",
                SCALING_REPLICA_SET,
                f"Scaled {op} replica set {name} from {old_size} to {size}",
            )
        return out

    async def _scale_to(self, d: Obj, rs: Obj, size: int) -> tuple[bool, Obj]:
        """scaleReplicaSetAndRecordEvent: nothing when already at ``size``."""
        if du.replicas(rs) == size:
            return False, rs
        return True, await self.scale_rs(d, rs, size)

    async def _scale_sync(self, d: Obj, new_rs: Obj | None, old_rss: list[Obj]) -> None:
        """A paused Deployment or a replicas change: scale, clean up if paused, status."""
        by_name = {du.meta(rs)["name"]: rs for rs in [*old_rss, new_rs] if rs is not None}
        for name, size, op in du.proportional_scale(d, new_rs, old_rss):
            by_name[name] = await self.scale_rs(d, by_name[name], size, op)
        new_rs = by_name.get(du.meta(new_rs)["name"]) if new_rs else None
        old_rss = [by_name[du.meta(rs)["name"]] for rs in old_rss]
        if du.spec(d).get("paused"):
            await self._cleanup(d, old_rss)
        await self._sync_status(d, [*old_rss, new_rs], new_rs)

    # --- strategies ---------------------------------------------------------------------------
    async def _rollout_rolling(
        self, d: Obj, rs_list: list[Obj], new_rs: Obj | None, old_rss: list[Obj]
    ) -> None:
        if new_rs is None:
            new_rs, old_rss = await self.get_all_rss(d, rs_list, create=True)
            assert new_rs is not None
        all_rss: list[Obj | None] = [*old_rss, new_rs]
        target = du.new_rs_target(d, all_rss, new_rs)
        scaled, new_rs = await self._scale_to(d, new_rs, target)
        all_rss = [*old_rss, new_rs]
        if scaled:
            await self._sync_rollout_status(d, all_rss, new_rs)
            return
        by_name = {du.meta(rs)["name"]: rs for rs in old_rss}
        scaled_down = False
        for name, size in du.old_rs_scale_down(d, du.active(old_rss), new_rs):
            by_name[name] = await self.scale_rs(d, by_name[name], size)
            scaled_down = True
        old_rss = [by_name[du.meta(rs)["name"]] for rs in old_rss]
        all_rss = [*old_rss, new_rs]
        if scaled_down:
            await self._sync_rollout_status(d, all_rss, new_rs)
            return
        if du.deployment_complete(d, du.status(d)):
            await self._cleanup(d, old_rss)
        await self._sync_rollout_status(d, all_rss, new_rs)

    def _old_pods_running(self, new_rs: Obj | None, old_rss: list[Obj]) -> bool:
        if du.sum_actual(old_rss) > 0:
            return True
        new_uid = du.meta(new_rs).get("uid") if new_rs else None
        for rs in old_rss:
            uid = str(du.meta(rs).get("uid"))
            if uid == new_uid:
                continue
            if any(not _pod_terminal(p) for p in self.pods.by_index(_POD_OWNER_INDEX, uid)):
                return True
        return False

    async def _rollout_recreate(
        self, d: Obj, rs_list: list[Obj], new_rs: Obj | None, old_rss: list[Obj]
    ) -> None:
        by_name = {du.meta(rs)["name"]: rs for rs in old_rss}
        scaled_down = False
        for rs in du.active(old_rss):
            did, by_name[du.meta(rs)["name"]] = await self._scale_to(d, rs, 0)
            scaled_down = scaled_down or did
        old_rss = [by_name[du.meta(rs)["name"]] for rs in old_rss]
        if scaled_down or self._old_pods_running(new_rs, old_rss):
            await self._sync_rollout_status(d, [*old_rss, new_rs], new_rs)
            return
        if new_rs is None:
            new_rs, old_rss = await self.get_all_rss(d, rs_list, create=True)
            assert new_rs is not None
        _, new_rs = await self._scale_to(d, new_rs, du.replicas(d))
        if du.deployment_complete(d, du.status(d)):
            await self._cleanup(d, old_rss)
        await self._sync_rollout_status(d, [*old_rss, new_rs], new_rs)

    async def _cleanup(self, d: Obj, old_rss: Sequence[Obj]) -> None:
        """Delete empty old ReplicaSets beyond revisionHistoryLimit."""
        for name in du.rs_to_clean_up(d, old_rss):
            try:
                await self.client.delete(REPLICASETS, name, _ns(d))
            except StatusError as e:
                if e.code != 404:
                    raise

    # --- status ---------------------------------------------------------------------------------
    def _set_condition(self, d: Obj, type_: str, status_: str, reason: str, msg: str) -> None:
        now = rfc3339(self.clock.now())
        du.set_condition(
            d.setdefault("status", {}), du.new_condition(type_, status_, reason, msg, now)
        )

    def _set_deployment_revision(self, d: Obj, rev: str) -> bool:
        ann = d.setdefault("metadata", {}).setdefault("annotations", {})
        if ann.get(du.REVISION) == rev:
            return False
        ann[du.REVISION] = rev
        return True

    async def _check_paused_conditions(self, d: Obj) -> None:
        if not du.has_progress_deadline(d):
            return
        cond = du.get_condition(du.status(d), du.PROGRESSING)
        if cond is not None and cond.get("reason") == du.TIMED_OUT_REASON:
            return
        paused_cond = cond is not None and cond.get("reason") == du.PAUSED_REASON
        paused = bool(du.spec(d).get("paused"))
        if paused and not paused_cond:
            self._set_condition(
                d, du.PROGRESSING, "Unknown", du.PAUSED_REASON, "Deployment is paused"
            )
        elif not paused and paused_cond:
            self._set_condition(
                d, du.PROGRESSING, "Unknown", du.RESUMED_REASON, "Deployment is resumed"
            )
        else:
            return
        await self._update_status(d)

    async def _update_status(self, d: Obj) -> None:
        """PUT the working copy to ``/status`` (status and annotations); keep its new RV."""
        out = await self.client.update(DEPLOYMENTS, d, _ns(d), sub="status")
        d["metadata"]["resourceVersion"] = du.meta(out).get("resourceVersion")

    async def _write_status_if_changed(self, d: Obj, st: Obj) -> bool:
        if st == du.status(d):
            return False
        d["status"] = st
        await self._update_status(d)
        return True

    async def _sync_status(self, d: Obj, all_rss: list[Obj | None], new_rs: Obj | None) -> None:
        """syncDeploymentStatus: counts and Available only (scaling, paused, deleting)."""
        now = rfc3339(self.clock.now())
        await self._write_status_if_changed(d, du.calculate_status(all_rss, new_rs, d, now))

    async def _sync_rollout_status(
        self, d: Obj, all_rss: list[Obj | None], new_rs: Obj | None
    ) -> None:
        """syncRolloutStatus: counts, Available and Progressing; requeue for the deadline."""
        now = self.clock.now()
        st = du.rollout_status(all_rss, new_rs, d, now, rfc3339(now), parse_rfc3339)
        await self._write_status_if_changed(d, st)
        if du.deployment_complete(d, st):
            return
        left = du.deadline_left(d, st, now, parse_rfc3339)
        if left is not None:
            key = f"{_ns(d)}/{du.meta(d)['name']}"
            self.queue.add_after(key, max(left, 0.0) + 1.0)
