"""The registry table: every served resource, its names and its strategy.

One row per resource. The API server builds its routes, discovery documents and generic
storage from this list; adding a kind is one strategy plus one row here. Kinds with a
``/scale`` subresource carry a ``ScaleAccess`` saying where replicas and the selector
live (ReplicationController's selector is a plain map). A row with ``storage`` is a view
of another row's objects (events.k8s.io/v1 Events are core/v1 Events).
"""

from __future__ import annotations

from corral.apiserver.registry.apiextensions import CustomResourceDefinitionStrategy
from corral.apiserver.registry.apiregistration import APIServiceStrategy
from corral.apiserver.registry.apps import (
    ControllerRevisionStrategy,
    DaemonSetStrategy,
    DeploymentStrategy,
    ReplicaSetStrategy,
    ReplicationControllerStrategy,
    StatefulSetStrategy,
)
from corral.apiserver.registry.autoscaling import HorizontalPodAutoscalerStrategy
from corral.apiserver.registry.autoscaling_v1 import (
    HorizontalPodAutoscalerV1Strategy,
    HPAV1Converter,
)
from corral.apiserver.registry.base import ResourceInfo, ScaleAccess
from corral.apiserver.registry.batch import CronJobStrategy, JobStrategy
from corral.apiserver.registry.certificates import CertificateSigningRequestStrategy
from corral.apiserver.registry.chronos import ChronosJobStrategy
from corral.apiserver.registry.coordination import LeaseStrategy
from corral.apiserver.registry.core import (
    ConfigMapStrategy,
    EventConverter,
    EventStrategy,
    EventV1Strategy,
    NamespaceStrategy,
    NodeStrategy,
    SecretStrategy,
    ServiceAccountStrategy,
)
from corral.apiserver.registry.marathon import MarathonAppStrategy
from corral.apiserver.registry.mesos import FrameworkStrategy
from corral.apiserver.registry.pods import PodStrategy
from corral.apiserver.registry.policy import (
    LimitRangeStrategy,
    PodDisruptionBudgetStrategy,
    PodTemplateStrategy,
    ResourceQuotaStrategy,
)
from corral.apiserver.registry.rbac import (
    ClusterRoleBindingStrategy,
    ClusterRoleStrategy,
    RoleBindingStrategy,
    RoleStrategy,
)
from corral.apiserver.registry.scheduling import PriorityClassStrategy
from corral.apiserver.registry.services import (
    EndpointSliceStrategy,
    EndpointsStrategy,
    ServiceStrategy,
)
from corral.apiserver.registry.storage import (
    PersistentVolumeClaimStrategy,
    PersistentVolumeStrategy,
    StorageClassStrategy,
)

ALL = ("all",)
SCALE = ScaleAccess()
NS_VERBS = ("create", "delete", "get", "list", "patch", "update", "watch")

# fmt: off
RESOURCES: list[ResourceInfo] = [
    ResourceInfo("", "v1", "Namespace", "namespaces", "namespace", False, NamespaceStrategy(), ("ns",), verbs=NS_VERBS),
    ResourceInfo("", "v1", "Node", "nodes", "node", False, NodeStrategy(), ("no",)),
    ResourceInfo("", "v1", "Pod", "pods", "pod", True, PodStrategy(), ("po",), ALL,
                 extra_subresources=(("attach", "PodAttachOptions", ("create", "get"), "", "v1"),
                                     ("binding", "Binding", ("create",), "", "v1"),
                                     ("ephemeralcontainers", "Pod", ("get", "patch", "update"), "", "v1"),
                                     ("eviction", "Eviction", ("create",), "policy", "v1"))),
    ResourceInfo("", "v1", "Service", "services", "service", True, ServiceStrategy(), ("svc",), ALL),
    ResourceInfo("", "v1", "Endpoints", "endpoints", "endpoints", True, EndpointsStrategy(), ("ep",)),
    ResourceInfo("", "v1", "ConfigMap", "configmaps", "configmap", True, ConfigMapStrategy(), ("cm",)),
    ResourceInfo("", "v1", "Secret", "secrets", "secret", True, SecretStrategy()),
    ResourceInfo("", "v1", "Event", "events", "event", True, EventStrategy(), ("ev",)),
    ResourceInfo("", "v1", "ServiceAccount", "serviceaccounts", "serviceaccount", True, ServiceAccountStrategy(), ("sa",),
                 extra_subresources=(("token", "TokenRequest", ("create",), "authentication.k8s.io", "v1"),)),
    ResourceInfo("", "v1", "ResourceQuota", "resourcequotas", "resourcequota", True, ResourceQuotaStrategy(), ("quota",)),
    ResourceInfo("", "v1", "LimitRange", "limitranges", "limitrange", True, LimitRangeStrategy(), ("limits",)),
    ResourceInfo("", "v1", "PodTemplate", "podtemplates", "podtemplate", True, PodTemplateStrategy()),
    ResourceInfo("", "v1", "PersistentVolume", "persistentvolumes", "persistentvolume", False, PersistentVolumeStrategy(), ("pv",)),
    ResourceInfo("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", "persistentvolumeclaim", True,
                 PersistentVolumeClaimStrategy(), ("pvc",)),
    ResourceInfo("", "v1", "ReplicationController", "replicationcontrollers", "replicationcontroller", True,
                 ReplicationControllerStrategy(), ("rc",), ALL, scale=ScaleAccess(selector_is_map=True)),
    ResourceInfo("apps", "v1", "Deployment", "deployments", "deployment", True, DeploymentStrategy(), ("deploy",), ALL, scale=SCALE),
    ResourceInfo("apps", "v1", "ReplicaSet", "replicasets", "replicaset", True, ReplicaSetStrategy(), ("rs",), ALL, scale=SCALE),
    ResourceInfo("apps", "v1", "DaemonSet", "daemonsets", "daemonset", True, DaemonSetStrategy(), ("ds",), ALL),
    ResourceInfo("apps", "v1", "StatefulSet", "statefulsets", "statefulset", True, StatefulSetStrategy(), ("sts",), ALL, scale=SCALE),
    ResourceInfo("apps", "v1", "ControllerRevision", "controllerrevisions", "controllerrevision", True, ControllerRevisionStrategy()),
    ResourceInfo("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", "horizontalpodautoscaler", True,
                 HorizontalPodAutoscalerStrategy(), ("hpa",), ALL),
    ResourceInfo("autoscaling", "v1", "HorizontalPodAutoscaler", "horizontalpodautoscalers", "horizontalpodautoscaler", True,
                 HorizontalPodAutoscalerV1Strategy(), ("hpa",), ALL,
                 storage=("autoscaling", "horizontalpodautoscalers"), converter=HPAV1Converter()),
    ResourceInfo("batch", "v1", "Job", "jobs", "job", True, JobStrategy(), (), ALL),
    ResourceInfo("batch", "v1", "CronJob", "cronjobs", "cronjob", True, CronJobStrategy(), ("cj",), ALL),
    ResourceInfo("coordination.k8s.io", "v1", "Lease", "leases", "lease", True, LeaseStrategy()),
    ResourceInfo("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", "endpointslice", True, EndpointSliceStrategy()),
    ResourceInfo("events.k8s.io", "v1", "Event", "events", "event", True, EventV1Strategy(), ("ev",),
                 storage=("", "events"), converter=EventConverter()),
    ResourceInfo("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", "poddisruptionbudget", True,
                 PodDisruptionBudgetStrategy(), ("pdb",)),
    ResourceInfo("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions",
                 "customresourcedefinition", False, CustomResourceDefinitionStrategy(), ("crd", "crds"),
                 ("api-extensions",)),
    ResourceInfo("apiregistration.k8s.io", "v1", "APIService", "apiservices", "apiservice", False, APIServiceStrategy(),
                 categories=("api-extensions",)),
    ResourceInfo("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", "clusterrolebinding", False,
                 ClusterRoleBindingStrategy()),
    ResourceInfo("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", "clusterrole", False, ClusterRoleStrategy()),
    ResourceInfo("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", "rolebinding", True, RoleBindingStrategy()),
    ResourceInfo("rbac.authorization.k8s.io", "v1", "Role", "roles", "role", True, RoleStrategy()),
    ResourceInfo("certificates.k8s.io", "v1", "CertificateSigningRequest", "certificatesigningrequests",
                 "certificatesigningrequest", False, CertificateSigningRequestStrategy(), ("csr",),
                 extra_subresources=(("approval", "CertificateSigningRequest", ("get", "patch", "update"),
                                      "certificates.k8s.io", "v1"),)),
    ResourceInfo("storage.k8s.io", "v1", "StorageClass", "storageclasses", "storageclass", False, StorageClassStrategy(), ("sc",)),
    ResourceInfo("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", "priorityclass", False, PriorityClassStrategy(), ("pc",)),
    ResourceInfo("mesos.corral.dev", "v1", "Framework", "frameworks", "framework", False, FrameworkStrategy(), ("fw",), ("mesos",)),
    ResourceInfo("chronos.corral.dev", "v1", "ChronosJob", "chronosjobs", "chronosjob", True, ChronosJobStrategy(), ("chj",), ("chronos",)),
    ResourceInfo("marathon.corral.dev", "v1", "App", "apps", "app", True, MarathonAppStrategy(), ("mapp",), ("marathon",)),
]
# fmt: on


def by_plural(group: str, plural: str) -> ResourceInfo | None:
    """The row for ``plural`` in ``group`` ("" for core), or None."""
    for info in RESOURCES:
        if info.group == group and info.plural == plural:
            return info
    return None
