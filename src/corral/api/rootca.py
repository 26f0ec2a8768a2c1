"""The ``kube-root-ca.crt`` ConfigMap: its name, key and shape.

Every namespace holds it: the ServiceAccount admission's projected volume mounts its
``ca.crt`` at ``/var/run/secrets/kubernetes.io/serviceaccount/ca.crt``. The controller
manager's root-ca-cert-publisher keeps it current (``controllers/rootca.py``), and the
API server's lifecycle loop creates it with each namespace's ``default`` ServiceAccount
(``apiserver/lifecycle.py``), so a cluster run without the controller manager still
starts pods whose token volume needs it.
"""

from __future__ import annotations

from typing import Any

NAME = "kube-root-ca.crt"
KEY = "ca.crt"
DESCRIPTION_ANNOTATION = "kubernetes.io/description"
DESCRIPTION = (
    "Contains a CA bundle that can be used to verify the kube-apiserver when using "
    "internal endpoints such as the internal service IP or kubernetes.default.svc. No "
    "other usage is guaranteed across distributions of Kubernetes clusters."
)


def configmap(ca_pem: str) -> dict[str, Any]:
    """The ConfigMap as upstream's publisher writes it."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": NAME, "annotations": {DESCRIPTION_ANNOTATION: DESCRIPTION}},
        "data": {KEY: ca_pem},
    }
