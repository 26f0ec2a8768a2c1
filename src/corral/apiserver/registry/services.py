"""Strategies for Services, core/v1 Endpoints and discovery.k8s.io/v1 EndpointSlices.

Service defaults follow ``SetDefaults_Service`` (type ClusterIP, sessionAffinity None,
port protocol TCP, targetPort = port, traffic policies) plus the single-stack IPv4 family
fields the REST layer fills. ClusterIP and nodePort *allocation* is the server's job,
not this module's; on update this module only carries the allocated values over from the
old object when a client leaves them out (``patchAllocatedValues`` upstream), and refuses
to change a ``clusterIP`` once set.

Called by the generic store through the registry table (``table.py``).
"""

from __future__ import annotations

import ipaddress
from typing import Any

import orjson

from corral.api.errors import FieldError, duplicate, forbidden, invalid, not_supported, required
from corral.api.validation import (
    is_dns1123_label,
    is_dns1123_subdomain,
    is_valid_port_name,
    is_valid_port_num,
    validate_dns1123_label,
    validate_enum,
    validate_immutable,
    validate_labels,
)
from corral.apiserver.registry.base import Obj, Strategy

SERVICE_TYPES = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]
PROTOCOLS = ["SCTP", "TCP", "UDP"]
SESSION_AFFINITIES = ["ClientIP", "None"]
TRAFFIC_POLICIES = ["Cluster", "Local"]
ADDRESS_TYPES = ["FQDN", "IPv4", "IPv6"]
IP_MESSAGE = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
LB_IP_MODES = ["Proxy", "VIP"]


def _is_ip(value: Any, version: int | None = None) -> bool:
    try:
        ip = ipaddress.ip_address(str(value))
    except ValueError:
        return False
    return version is None or ip.version == version


def _validate_protocol(proto: Any, path: str) -> list[FieldError]:
    if not proto:
        return [required(path)]
    if proto not in PROTOCOLS:
        return [not_supported(path, proto, PROTOCOLS)]
    return []


def _validate_port_num_or_name(value: Any, path: str) -> list[FieldError]:
    if isinstance(value, str):
        return [invalid(path, value, m) for m in is_valid_port_name(value)]
    return [invalid(path, value, m) for m in is_valid_port_num(value)]


def _drop_type_dependent_fields(new: Obj, old: Obj) -> None:
    """What a type change leaves behind goes, unless the client changed it too
    (Kubernetes' dropTypeDependentFields)."""
    new_type, old_type = new.get("type", "ClusterIP"), old.get("type", "ClusterIP")
    if new_type == old_type:
        return
    if new_type == "ExternalName":
        for key in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
            if new.get(key) == old.get(key):
                new.pop(key, None)
    if new_type not in ("NodePort", "LoadBalancer"):
        old_ports = {
            (p.get("port"), p.get("protocol")): p.get("nodePort") for p in old.get("ports") or []
        }
        for p in new.get("ports") or []:
            if p.get("nodePort") and p.get("nodePort") == old_ports.get(
                (p.get("port"), p.get("protocol"))
            ):
                p.pop("nodePort")
        if new.get("externalTrafficPolicy") == old.get("externalTrafficPolicy"):
            new.pop("externalTrafficPolicy", None)
    if new_type != "LoadBalancer":
        for key in ("healthCheckNodePort", "allocateLoadBalancerNodePorts", "loadBalancerClass"):
            if new.get(key) == old.get(key):
                new.pop(key, None)


class ServiceStrategy(Strategy):
    has_status = True
    spec_fields = ()  # Services carry no generation
    return_deleted_object = True  # as upstream's registry: DELETE answers the Service

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        stype = spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        if spec["sessionAffinity"] == "ClientIP":
            cfg = spec.setdefault("sessionAffinityConfig", {}).setdefault("clientIP", {})
            cfg.setdefault("timeoutSeconds", 10800)
        for port in spec.get("ports") or []:
            if not isinstance(port, dict):
                continue
            port.setdefault("protocol", "TCP")
            if port.get("targetPort") in (None, 0, ""):
                port["targetPort"] = port.get("port")
        if stype in ("NodePort", "LoadBalancer"):
            spec.setdefault("externalTrafficPolicy", "Cluster")
        if stype == "LoadBalancer":
            spec.setdefault("allocateLoadBalancerNodePorts", True)
        if stype != "ExternalName":
            spec.setdefault("internalTrafficPolicy", "Cluster")
            spec.setdefault("ipFamilyPolicy", "SingleStack")
            spec.setdefault("ipFamilies", ["IPv4"])
            if spec.get("clusterIP") and not spec.get("clusterIPs"):
                spec["clusterIPs"] = [spec["clusterIP"]]
            elif spec.get("clusterIPs") and not spec.get("clusterIP"):
                spec["clusterIP"] = spec["clusterIPs"][0]

    def default_status(self, obj: Obj) -> None:
        obj["status"] = {"loadBalancer": {}}

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        """Carry allocated clusterIP(s) and nodePorts over when the client left them out;
        keep clusterIP and clusterIPs[0] together; drop what the new type cannot have,
        including ``status.loadBalancer`` once the type is no longer LoadBalancer."""
        new_spec, old_spec = new.setdefault("spec", {}), old.get("spec") or {}
        _drop_type_dependent_fields(new_spec, old_spec)
        ip, ips = new_spec.get("clusterIP"), new_spec.get("clusterIPs")
        if ip and ips and ip != ips[0] and ips == old_spec.get("clusterIPs"):
            # a client changed only clusterIP: it speaks for clusterIPs[0] (then fails
            # validation: an allocated address may not change)
            new_spec["clusterIPs"] = [ip, *ips[1:]]
        if new_spec.get("type") != "ExternalName" and old_spec.get("type") != "ExternalName":
            for key in ("clusterIP", "clusterIPs"):
                if not new_spec.get(key) and old_spec.get(key):
                    new_spec[key] = old_spec[key]
        if new_spec.get("type") in ("NodePort", "LoadBalancer"):
            old_ports = {
                (p.get("port"), p.get("protocol")): p.get("nodePort")
                for p in old_spec.get("ports") or []
            }
            for p in new_spec.get("ports") or []:
                node_port = old_ports.get((p.get("port"), p.get("protocol")))
                if not p.get("nodePort") and node_port:
                    p["nodePort"] = node_port
            if not new_spec.get("healthCheckNodePort") and old_spec.get("healthCheckNodePort"):
                new_spec["healthCheckNodePort"] = old_spec["healthCheckNodePort"]
        super().prepare_for_update(new, old)
        if new_spec.get("type") != "LoadBalancer" and (new.get("status") or {}).get("loadBalancer"):
            # upstream's dropTypeDependentFields: a load-balancer status no longer appropriate
            # is cleared in the same write (de-provisioning is not the user's concern)
            new["status"] = {**new["status"], "loadBalancer": {}}

    def validate(self, obj: Obj) -> list[FieldError]:
        spec = obj.get("spec") or {}
        errs: list[FieldError] = []
        stype = spec.get("type")
        if not stype:
            errs.append(required("spec.type"))
        else:
            errs.extend(validate_enum(stype, "spec.type", SERVICE_TYPES))
        cluster_ip = spec.get("clusterIP") or ""
        headless = cluster_ip == "None"
        if stype == "ExternalName":
            name = spec.get("externalName") or ""
            if not name:
                errs.append(required("spec.externalName"))
            else:
                errs.extend(
                    invalid("spec.externalName", name, m)
                    for m in is_dns1123_subdomain(name.rstrip("."))
                )
            if cluster_ip:
                errs.append(
                    forbidden("spec.clusterIPs", "may not be set for ExternalName services")
                )
        else:
            for i, ip in enumerate(spec.get("clusterIPs") or ([cluster_ip] if cluster_ip else [])):
                if ip != "None" and not _is_ip(ip):
                    errs.append(invalid(f"spec.clusterIPs[{i}]", ip, IP_MESSAGE))
        ports = spec.get("ports") or []
        if not ports and not headless and stype != "ExternalName":
            errs.append(required("spec.ports"))
        names: set[str] = set()
        for i, port in enumerate(ports):
            p = f"spec.ports[{i}]"
            name = port.get("name") or ""
            if len(ports) > 1 and not name:
                errs.append(required(f"{p}.name"))
            elif name:
                msgs = is_dns1123_label(name)
                errs.extend(invalid(f"{p}.name", name, m) for m in msgs)
                if name in names:
                    errs.append(duplicate(f"{p}.name", name))
                names.add(name)
            errs.extend(
                invalid(f"{p}.port", port.get("port", 0), m)
                for m in is_valid_port_num(port.get("port"))
            )
            errs.extend(_validate_protocol(port.get("protocol"), f"{p}.protocol"))
            if "targetPort" in port:
                errs.extend(_validate_port_num_or_name(port["targetPort"], f"{p}.targetPort"))
            node_port = port.get("nodePort")
            if node_port:
                if stype == "ClusterIP":
                    errs.append(
                        forbidden(f"{p}.nodePort", "may not be used when `type` is 'ClusterIP'")
                    )
                else:
                    errs.extend(
                        invalid(f"{p}.nodePort", node_port, m) for m in is_valid_port_num(node_port)
                    )
        affinity = spec.get("sessionAffinity")
        if not affinity:
            errs.append(required("spec.sessionAffinity"))
        else:
            errs.extend(validate_enum(affinity, "spec.sessionAffinity", SESSION_AFFINITIES))
        errs.extend(validate_labels(spec.get("selector"), "spec.selector"))
        etp = spec.get("externalTrafficPolicy")
        if etp and stype not in ("NodePort", "LoadBalancer"):
            errs.append(
                invalid(
                    "spec.externalTrafficPolicy",
                    etp,
                    "may only be set when `type` is 'NodePort' or 'LoadBalancer'",
                )
            )
        elif etp:
            errs.extend(validate_enum(etp, "spec.externalTrafficPolicy", TRAFFIC_POLICIES))
        itp = spec.get("internalTrafficPolicy")
        if itp:
            errs.extend(validate_enum(itp, "spec.internalTrafficPolicy", TRAFFIC_POLICIES))
        return errs

    def prepare_for_status_update(self, new: Obj, old: Obj) -> None:
        """As upstream's defaulting: an ingress ``ip`` without ``ipMode`` is a VIP."""
        super().prepare_for_status_update(new, old)
        lb = (new.get("status") or {}).get("loadBalancer")
        for ing in (lb or {}).get("ingress") or [] if isinstance(lb, dict) else []:
            if isinstance(ing, dict) and ing.get("ip") and ing.get("ipMode") is None:
                ing["ipMode"] = "VIP"

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        """Upstream's ValidateLoadBalancerStatus."""
        lb = (new.get("status") or {}).get("loadBalancer") or {}
        ingress = lb.get("ingress") or []
        path = "status.loadBalancer.ingress"
        if ingress and (new.get("spec") or {}).get("type") != "LoadBalancer":
            return [forbidden(path, "may only be used when `spec.type` is 'LoadBalancer'")]
        errs: list[FieldError] = []
        for i, ing in enumerate(ingress):
            p = f"{path}[{i}]"
            ip, mode, host = ing.get("ip") or "", ing.get("ipMode"), ing.get("hostname") or ""
            if ip and not _is_ip(ip):
                errs.append(invalid(f"{p}.ip", ip, IP_MESSAGE))
            if mode is None and ip:
                errs.append(required(f"{p}.ipMode", "must be specified when `ip` is set"))
            elif mode is not None and not ip:
                errs.append(forbidden(f"{p}.ipMode", "may not be specified when `ip` is not set"))
            elif mode is not None and mode not in LB_IP_MODES:
                errs.append(not_supported(f"{p}.ipMode", mode, LB_IP_MODES))
            if host:
                errs.extend(invalid(f"{p}.hostname", host, m) for m in is_dns1123_subdomain(host))
                if _is_ip(host):
                    errs.append(
                        invalid(f"{p}.hostname", host, "must be a DNS name, not an IP address")
                    )
        return errs

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        errs = self.validate(new)
        new_spec, old_spec = new.get("spec") or {}, old.get("spec") or {}
        if new_spec.get("type") != "ExternalName" and old_spec.get("type") != "ExternalName":
            old_ips, new_ips = old_spec.get("clusterIPs") or [], new_spec.get("clusterIPs") or []
            if old_ips and new_ips and old_ips[0] != new_ips[0]:
                text = "[]string{" + ", ".join(orjson.dumps(ip).decode() for ip in new_ips) + "}"
                errs.append(
                    invalid("spec.clusterIPs[0]", orjson.Fragment(text), "may not change once set")
                )
        return errs


# --- Endpoints -------------------------------------------------------------------------


class EndpointsStrategy(Strategy):
    spec_fields = ()

    def default(self, obj: Obj) -> None:
        for subset in obj.get("subsets") or []:
            for port in subset.get("ports") or []:
                if isinstance(port, dict):
                    port.setdefault("protocol", "TCP")

    def validate(self, obj: Obj) -> list[FieldError]:
        errs: list[FieldError] = []
        for i, subset in enumerate(obj.get("subsets") or []):
            sp = f"subsets[{i}]"
            for key in ("addresses", "notReadyAddresses"):
                for j, addr in enumerate(subset.get(key) or []):
                    ip = addr.get("ip") or ""
                    if not _is_ip(ip):
                        errs.append(invalid(f"{sp}.{key}[{j}].ip", ip, IP_MESSAGE))
            ports = subset.get("ports") or []
            for j, port in enumerate(ports):
                pp = f"{sp}.ports[{j}]"
                name = port.get("name") or ""
                if len(ports) > 1 and not name:
                    errs.append(required(f"{pp}.name"))
                elif name:
                    errs.extend(invalid(f"{pp}.name", name, m) for m in is_dns1123_label(name))
                errs.extend(
                    invalid(f"{pp}.port", port.get("port", 0), m)
                    for m in is_valid_port_num(port.get("port"))
                )
                errs.extend(_validate_protocol(port.get("protocol"), f"{pp}.protocol"))
        return errs


# --- EndpointSlice ---------------------------------------------------------------------


class EndpointSliceStrategy(Strategy):
    #: generation is 1 on create and bumps when anything but metadata changes.
    spec_fields = ("addressType", "endpoints", "ports")

    def default(self, obj: Obj) -> None:
        for port in obj.get("ports") or []:
            if isinstance(port, dict):
                port.setdefault("protocol", "TCP")
                port.setdefault("name", "")

    def validate(self, obj: Obj) -> list[FieldError]:
        errs: list[FieldError] = []
        atype = obj.get("addressType")
        if not atype:
            errs.append(required("addressType"))
        else:
            errs.extend(validate_enum(atype, "addressType", ADDRESS_TYPES))
        for i, ep in enumerate(obj.get("endpoints") or []):
            ap = f"endpoints[{i}].addresses"
            addrs = ep.get("addresses") or []
            if not addrs:
                errs.append(required(ap, "must contain at least 1 address"))
            for j, addr in enumerate(addrs):
                if atype == "IPv4" and not _is_ip(addr, 4):
                    errs.append(invalid(f"{ap}[{j}]", addr, "must be a valid IPv4 address"))
                elif atype == "IPv6" and not _is_ip(addr, 6):
                    errs.append(invalid(f"{ap}[{j}]", addr, "must be a valid IPv6 address"))
                elif atype == "FQDN":
                    errs.extend(
                        invalid(f"{ap}[{j}]", addr, m)
                        for m in is_dns1123_subdomain(str(addr).rstrip("."))
                    )
        names: set[str] = set()
        for i, port in enumerate(obj.get("ports") or []):
            pp = f"ports[{i}]"
            name = port.get("name") or ""
            if name:
                errs.extend(validate_dns1123_label(name, f"{pp}.name"))
                if name in names:
                    errs.append(duplicate(f"{pp}.name", name))
                names.add(name)
            if port.get("port") is not None:
                errs.extend(
                    invalid(f"{pp}.port", port["port"], m) for m in is_valid_port_num(port["port"])
                )
            errs.extend(_validate_protocol(port.get("protocol"), f"{pp}.protocol"))
        return errs

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return self.validate(new) + validate_immutable(
            new.get("addressType"), old.get("addressType"), "addressType"
        )
