"""Names shared by the control plane and the agents for persistent volumes.

The local-path provisioner (a controller) and the node agents meet only through the
API, as DESIGN.md asks; these are the names they meet by. An agent publishes where its
volumes live in its Node's ``LOCAL_PATH_ROOT`` annotation; the provisioner creates a
PersistentVolume whose ``hostPath`` is a directory under that root (``volume_dir``),
with a node affinity to that node and the ``LOCAL_PATH_CLEANUP`` finalizer; the agent
creates the directory when a pod first mounts it, and once the PersistentVolume is
being deleted removes the directory (reclaim policy Delete only) and then the finalizer.
The PersistentVolume is labelled with its node too, so that each agent watches only its
own volumes (``node_label_selector``).
"""

from __future__ import annotations

from corral.api.selectors import label_value_errors

#: the provisioner name of Corral's local-path StorageClass (k3s' local-path-provisioner
#: uses the same name, so manifests written for k3s work unchanged)
LOCAL_PATH_PROVISIONER = "rancher.io/local-path"
#: the default StorageClass Corral creates
LOCAL_PATH_CLASS = "local-path"
#: Node annotation: the absolute directory under which the agent keeps local volumes
LOCAL_PATH_ROOT = "storage.corral.dev/local-path-root"
#: PersistentVolume finalizer: held until the agent of its node removed the directory
LOCAL_PATH_CLEANUP = "storage.corral.dev/local-path-cleanup"
#: PersistentVolume annotation naming the node whose agent owns the directory; also a
#: label (when the node name is a valid label value), which the agents watch by
LOCAL_PATH_NODE = "storage.corral.dev/node"

#: upstream annotations and finalizers (Kubernetes 1.32)
SELECTED_NODE = "volume.kubernetes.io/selected-node"
STORAGE_PROVISIONER = "volume.kubernetes.io/storage-provisioner"
BETA_STORAGE_PROVISIONER = "volume.beta.kubernetes.io/storage-provisioner"
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
BIND_COMPLETED = "pv.kubernetes.io/bind-completed"
BOUND_BY_CONTROLLER = "pv.kubernetes.io/bound-by-controller"
DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"
PVC_PROTECTION = "kubernetes.io/pvc-protection"
PV_PROTECTION = "kubernetes.io/pv-protection"


def volume_dir(root: str, pv_name: str, namespace: str, claim: str) -> str:
    """The directory of a provisioned volume under an agent's ``root`` (as k3s names
    them: ``<pv>_<namespace>_<claim>``)."""
    return f"{root.rstrip('/')}/{pv_name}_{namespace}_{claim}"


def node_label_selector(node: str) -> str:
    """The label selector of the local-path volumes of ``node`` (what its agent watches);
    "" (every volume) for a node name that cannot be a label value."""
    return "" if label_value_errors(node) else f"{LOCAL_PATH_NODE}={node}"
