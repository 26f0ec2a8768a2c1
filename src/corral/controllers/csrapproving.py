"""The ``csrapproving`` controller: auto-approves the CertificateSigningRequests of nodes,
as upstream's ``pkg/controller/certificates/approver`` (sarapprove).

A pending CSR (no Approved/Denied condition, no certificate) is recognised as:

- a node's client certificate (signer ``kubernetes.io/kube-apiserver-client-kubelet``,
  subject ``O=system:nodes, CN=system:node:NAME``, no SANs, usages ``digital
  signature`` + ``client auth`` [+ ``key encipherment``]); renewed by the node itself
  (``spec.username`` equals the CN) it is approved when a SubjectAccessReview says the
  requestor may ``create certificatesigningrequests/selfnodeclient``, else (a first
  join with a bootstrap token) ``.../nodeclient``; kubeadm binds ``nodeclient`` to the
  default token group and ``selfnodeclient`` to ``system:nodes``;
- Corral's addition, as k3s does: a node's serving certificate (signer
  ``kubernetes.io/kubelet-serving``, ``O=system:nodes, CN=system:node:NAME`` asked by
  that node itself, usages ``digital signature`` + ``server auth`` [+ ``key
  encipherment``]) whose DNS names and IPs are all the Node's own (its name and the
  addresses in ``status.addresses``), claimed by no other Node, and neither the API
  server's names nor loopback (a node writes its own status; the cluster CA signs the
  API server's certificate too). Upstream leaves these to an external approver.

Anything else is left alone for a person (``kubectl certificate approve``). The
recognisers are pure (``kubelet_client_problem``, ``kubelet_serving_problem``) and the
signer (``csrsigning.py``) checks the same constraints before it signs.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from typing import Any, ClassVar

from corral.api.errors import StatusError
from corral.client.rest import NODES, Client, Resource
from corral.controllers.base import Controller, InformerFactory
from corral.util.clock import Clock

log = logging.getLogger("corral.controllers.csrapproving")

Obj = dict[str, Any]

CSRS = Resource("certificates.k8s.io", "v1", "certificatesigningrequests", namespaced=False)
SARS = Resource("authorization.k8s.io", "v1", "subjectaccessreviews", namespaced=False)
KUBELET_CLIENT = "kubernetes.io/kube-apiserver-client-kubelet"
KUBELET_SERVING = "kubernetes.io/kubelet-serving"
KUBE_APISERVER_CLIENT = "kubernetes.io/kube-apiserver-client"
NODE_PREFIX = "system:node:"
NODES_GROUP = "system:nodes"
#: Corral's: Go keeps a subject's last CN, Python's readers of peer certificates differ
MORE_THAN_ONE_CN = "subject has more than one common name"

_CLIENT_USAGES = (
    {"digital signature", "key encipherment", "client auth"},
    {"digital signature", "client auth"},
)
_SERVING_USAGES = (
    {"digital signature", "key encipherment", "server auth"},
    {"digital signature", "server auth"},
)


@dataclass(frozen=True)
class Request:
    """What the recognisers read of a CSR's PKCS#10 request."""

    common_name: str
    organizations: tuple[str, ...]
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    uris: tuple[str, ...] = ()
    #: how many CNs the subject has: the API server's authenticator reads the last one
    #: (as Go does), the agent's and metrics-server's the first, so a subject with two
    #: (``CN=system:node:n1, CN=system:kube-controller-manager``) is never signed
    common_name_count: int = 1


def parse_request(csr: Obj) -> Request:
    """The subject and SANs of ``spec.request``; ``ValueError`` when it does not parse."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    pem = base64.b64decode(str((csr.get("spec") or {}).get("request") or ""))
    req = x509.load_pem_x509_csr(pem)
    cns = req.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    orgs = req.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    try:
        san = req.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = x509.SubjectAlternativeName([])
    return Request(
        str(cns[-1].value) if cns else "",
        tuple(str(o.value) for o in orgs),
        tuple(san.get_values_for_type(x509.DNSName)),
        tuple(str(ip) for ip in san.get_values_for_type(x509.IPAddress)),
        tuple(san.get_values_for_type(x509.RFC822Name)),
        tuple(san.get_values_for_type(x509.UniformResourceIdentifier)),
        len(cns),
    )


def kubelet_client_problem(req: Request, usages: list[str]) -> str:
    """``ValidateKubeletClientCSR``: why ``req`` is not a node client CSR, or ``""``."""
    if list(req.organizations) != [NODES_GROUP]:
        return "subject organization is not system:nodes"
    if req.dns_names:
        return "dnsNames are not allowed"
    if req.emails:
        return "email addresses are not allowed"
    if req.ip_addresses:
        return "IP addresses are not allowed"
    if req.uris:
        return "URIs are not allowed"
    if not req.common_name.startswith(NODE_PREFIX):
        return 'subject common name does not begin with "system:node:"'
    if req.common_name_count != 1:
        return MORE_THAN_ONE_CN
    if set(usages) not in _CLIENT_USAGES or len(set(usages)) != len(usages):
        return "usages did not match [client auth digital signature key encipherment]"
    return ""


def kubelet_serving_problem(req: Request, usages: list[str]) -> str:
    """``ValidateKubeletServingCSR``: why ``req`` is not a node serving CSR, or ``""``."""
    if list(req.organizations) != [NODES_GROUP]:
        return "subject organization is not system:nodes"
    if not req.dns_names and not req.ip_addresses:
        return "DNS or IP subjectAltName is required"
    if req.emails:
        return "Email subjectAltNames are not allowed"
    if req.uris:
        return "URI subjectAltNames are not allowed"
    if not req.common_name.startswith(NODE_PREFIX):
        return 'subject common name does not begin with "system:node:"'
    if req.common_name_count != 1:
        return MORE_THAN_ONE_CN
    if set(usages) not in _SERVING_USAGES or len(set(usages)) != len(usages):
        return "usages did not match [digital signature key encipherment server auth]"
    return ""


#: names a node may never have in a serving certificate, whatever its status says: the
#: API server's (the cluster CA signs both, and pods trust it) and loopback
RESERVED_DNS = ("kubernetes", "kubernetes.default", "kubernetes.default.svc", "localhost")
RESERVED_DNS_SUFFIXES = (".svc", ".svc.cluster.local", ".localhost")


def _names(node: Obj) -> set[str]:
    name = str((node.get("metadata") or {}).get("name") or "")
    return {name} | {
        str(a.get("address"))
        for a in (node.get("status") or {}).get("addresses") or []
        if isinstance(a, dict)
    }


def _reserved(name: str, is_ip: bool) -> bool:
    if is_ip:
        import ipaddress

        try:
            ip = ipaddress.ip_address(name)
        except ValueError:
            return True
        return ip.is_loopback or ip.is_unspecified
    low = name.lower().rstrip(".")
    return low in RESERVED_DNS or low.endswith(RESERVED_DNS_SUFFIXES)


def node_owns_names(req: Request, node: Obj, others: list[Obj] | tuple[Obj, ...] = ()) -> bool:
    """Every DNS name and IP of ``req`` is the Node's name or one of its addresses, none
    is also another Node's (a node writes its own status: it could claim a neighbour's
    address) and none is reserved (``RESERVED_DNS``, loopback)."""
    own = _names(node)
    me = (node.get("metadata") or {}).get("name")
    theirs: set[str] = set()
    for other in others:
        if (other.get("metadata") or {}).get("name") != me:
            theirs |= _names(other)
    wanted = [(d, False) for d in req.dns_names] + [(ip, True) for ip in req.ip_addresses]
    return all(n in own and n not in theirs and not _reserved(n, ip) for n, ip in wanted)


def is_pending(csr: Obj) -> bool:
    status = csr.get("status") or {}
    if status.get("certificate"):
        return False
    kinds = {c.get("type") for c in status.get("conditions") or [] if isinstance(c, dict)}
    return not kinds & {"Approved", "Denied"}


def client_permission(csr: Obj, req: Request) -> str:
    """The subresource a node client CSR is checked against: ``selfnodeclient`` when
    the node renews its own, else ``nodeclient`` (None of the two: ``""``)."""
    spec = csr.get("spec") or {}
    if spec.get("signerName") != KUBELET_CLIENT:
        return ""
    if kubelet_client_problem(req, list(spec.get("usages") or [])):
        return ""
    return "selfnodeclient" if spec.get("username") == req.common_name else "nodeclient"


class CSRApprovingController(Controller):
    """Approves node CSRs the requestor is allowed to have approved."""

    name: ClassVar[str] = "csrapproving"

    def __init__(
        self,
        client: Client,
        factory: InformerFactory,
        *,
        workers: int = 1,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(client, factory, workers=workers, clock=clock)
        self.csrs = factory.informer(CSRS)
        self.csrs.add_handler(lambda _t, obj, _old: self.enqueue(obj))

    async def _allowed(self, csr: Obj, subresource: str) -> bool:
        spec = csr.get("spec") or {}
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": spec.get("username", ""),
                "uid": spec.get("uid", ""),
                "groups": spec.get("groups") or [],
                "extra": spec.get("extra") or {},
                "resourceAttributes": {
                    "group": "certificates.k8s.io",
                    "resource": "certificatesigningrequests",
                    "verb": "create",
                    "subresource": subresource,
                    "version": "*",
                },
            },
        }
        out = await self.client.create(SARS, review)
        return bool((out.get("status") or {}).get("allowed"))

    async def _approve(self, csr: Obj, message: str) -> None:
        body = {
            "apiVersion": "certificates.k8s.io/v1",
            "kind": "CertificateSigningRequest",
            "metadata": csr["metadata"],
            "spec": csr.get("spec"),
            "status": {
                **(csr.get("status") or {}),
                "conditions": [
                    *((csr.get("status") or {}).get("conditions") or []),
                    {
                        "type": "Approved",
                        "status": "True",
                        "reason": "AutoApproved",
                        "message": message,
                    },
                ],
            },
        }
        await self.client.update(CSRS, body, sub="approval")
        log.info("approved %s: %s", csr["metadata"]["name"], message)

    async def sync(self, key: str) -> None:
        csr = self.csrs.get(key)
        if csr is None or not is_pending(csr):
            return
        try:
            req = parse_request(csr)
        except ValueError:
            return  # validation let it in: leave it to a person
        spec = csr.get("spec") or {}
        try:
            permission = client_permission(csr, req)
            if permission:
                if await self._allowed(csr, permission):
                    what = "self kubelet" if permission == "selfnodeclient" else "kubelet"
                    await self._approve(
                        csr, f"Auto approving {what} client certificate after SubjectAccessReview."
                    )
                else:
                    log.info(
                        "recognized csr %s as [%s] but subject access review was not approved",
                        key,
                        permission,
                    )
                return
            if (
                spec.get("signerName") == KUBELET_SERVING
                and spec.get("username") == req.common_name
            ):
                if kubelet_serving_problem(req, list(spec.get("usages") or [])):
                    return
                try:
                    node = await self.client.get(NODES, req.common_name[len(NODE_PREFIX) :])
                except StatusError as e:
                    if e.code == 404:
                        return
                    raise
                others = (await self.client.list(NODES)).get("items") or []
                if node_owns_names(req, node, others):
                    await self._approve(
                        csr, "Auto approving kubelet serving certificate for the node's own names."
                    )
        except StatusError as e:
            if e.code in (404, 409):
                return
            raise
