"""Invoking CNI plugins: how ``OciDriver`` gives a pod's network namespace an address.

The CNI contract is small: exec the plugin binary with ``CNI_COMMAND`` (ADD, DEL),
``CNI_CONTAINERID``, ``CNI_NETNS``, ``CNI_IFNAME`` and ``CNI_PATH`` in the environment and
the network configuration as JSON on stdin; it prints a result (or an error) as JSON.
``PodNetwork`` holds Corral's default configuration, a ``bridge`` (``corral0``,
``10.88.0.0/16``, the host is the gateway, no masquerading) with ``host-local`` IPAM whose
leases live under the driver's data directory, plus ``loopback`` for ``lo``. Errors become
``StartError`` with ``CreateContainerError`` (the sandbox could not be set up).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corral.agent.drivers.base import CREATE_CONTAINER_ERROR, StartError

CNI_VERSION = "1.0.0"

#: (hostPort, containerPort, protocol, hostIP) of one hostPort
PortMapping = tuple[int, int, str, str]
DEFAULT_CNI_PATH = ("/opt/cni/bin", "/usr/lib/cni", "/usr/libexec/cni")


class CniError(StartError):
    """A plugin failed; ``message`` is its error text."""

    def __init__(self, message: str) -> None:
        super().__init__(CREATE_CONTAINER_ERROR, message)


async def invoke(
    plugin: str,
    command: str,
    config: dict[str, Any],
    *,
    container_id: str,
    netns: str,
    ifname: str,
    cni_path: str,
    timeout: float = 30.0,
) -> dict[str, Any]:
    """Run one CNI plugin; return its parsed result (``{}`` for DEL)."""
    binary = next(
        (Path(d) / plugin for d in cni_path.split(":") if (Path(d) / plugin).is_file()), None
    )
    if binary is None:
        raise CniError(f"CNI plugin {plugin!r} not found in {cni_path}")
    env = {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": container_id,
        "CNI_NETNS": netns,
        "CNI_IFNAME": ifname,
        "CNI_PATH": cni_path,
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
    }
    proc = await asyncio.create_subprocess_exec(
        str(binary),
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(timeout):
            out, err = await proc.communicate(json.dumps(config).encode())
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise CniError(f"CNI {plugin} {command} timed out") from None
    result: dict[str, Any] = {}
    if out.strip():
        try:
            result = json.loads(out)
        except ValueError:
            raise CniError(f"CNI {plugin} {command}: bad output {out[:200]!r}") from None
    if proc.returncode != 0:
        msg = result.get("msg") or err.decode(errors="replace").strip() or "failed"
        details = result.get("details")
        raise CniError(f"CNI {plugin} {command}: {msg}" + (f" ({details})" if details else ""))
    return result


@dataclass(frozen=True)
class PodNetwork:
    """Corral's pod network: bridge + host-local IPAM, and loopback."""

    ipam_dir: Path
    bridge: str = "corral0"
    subnet: str = "10.88.0.0/16"
    network_name: str = "corral"
    cni_path: str = field(default=":".join(DEFAULT_CNI_PATH))

    def bridge_config(self) -> dict[str, Any]:
        return {
            "cniVersion": CNI_VERSION,
            "name": self.network_name,
            "type": "bridge",
            "bridge": self.bridge,
            "isGateway": True,
            "ipMasq": False,
            "hairpinMode": True,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": self.subnet}]],
                "routes": [{"dst": "0.0.0.0/0"}],
                "dataDir": str(self.ipam_dir),
            },
        }

    def loopback_config(self) -> dict[str, Any]:
        return {"cniVersion": CNI_VERSION, "name": "lo", "type": "loopback"}

    def portmap_config(
        self, mappings: Sequence[PortMapping], prev: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """The ``portmap`` plugin's config: hostPorts DNATed to the pod (SNAT for hairpin
        and localhost), as containerd chains it after the bridge."""
        cfg: dict[str, Any] = {
            "cniVersion": CNI_VERSION,
            "name": self.network_name,
            "type": "portmap",
            "capabilities": {"portMappings": True},
            "snat": True,
            "runtimeConfig": {
                "portMappings": [
                    {"hostPort": h, "containerPort": c, "protocol": p.lower()}
                    | ({"hostIP": ip} if ip else {})
                    for h, c, p, ip in mappings
                ]
            },
        }
        if prev is not None:
            cfg["prevResult"] = prev
        return cfg

    async def add(
        self, container_id: str, netns: str, port_mappings: Sequence[PortMapping] = ()
    ) -> str:
        """Attach ``netns`` to the pod network (and its hostPorts, through ``portmap``);
        return the pod IP (no prefix length)."""
        self.ipam_dir.mkdir(parents=True, exist_ok=True)
        await invoke(
            "loopback",
            "ADD",
            self.loopback_config(),
            container_id=container_id,
            netns=netns,
            ifname="lo",
            cni_path=self.cni_path,
        )
        result = await invoke(
            "bridge",
            "ADD",
            self.bridge_config(),
            container_id=container_id,
            netns=netns,
            ifname="eth0",
            cni_path=self.cni_path,
        )
        if port_mappings:
            await invoke(
                "portmap",
                "ADD",
                self.portmap_config(port_mappings, result),
                container_id=container_id,
                netns=netns,
                ifname="eth0",
                cni_path=self.cni_path,
            )
        for ip in result.get("ips", []):
            address = str(ip.get("address", ""))
            if address and ":" not in address:
                return address.split("/")[0]
        raise CniError(f"CNI bridge ADD returned no IPv4 address: {result}")

    async def delete(
        self, container_id: str, netns: str, port_mappings: Sequence[PortMapping] = ()
    ) -> None:
        """Detach and release the address (idempotent; a missing netns is fine)."""
        if port_mappings:
            await invoke(
                "portmap",
                "DEL",
                self.portmap_config(port_mappings),
                container_id=container_id,
                netns=netns,
                ifname="eth0",
                cni_path=self.cni_path,
            )
        await invoke(
            "bridge",
            "DEL",
            self.bridge_config(),
            container_id=container_id,
            netns=netns,
            ifname="eth0",
            cni_path=self.cni_path,
        )


#: the chains the ``portmap`` plugin makes once and shares between all its hostPorts
PORTMAP_CHAINS = ("CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-MASQ", "CNI-HOSTPORT-SETMARK")


def remove_idle_portmap_chains() -> int:
    """Remove the ``portmap`` plugin's shared chains (and the jumps to them from the
    built-in chains) when no hostPort on this host uses them any more: no rule in
    ``CNI-HOSTPORT-DNAT`` and no per-pod ``CNI-DN-*`` chain. The plugin makes them again on
    its next ADD. Returns how many chains were removed (``corral down``, ``agent
    --reset``)."""
    import shlex
    import subprocess

    save = subprocess.run(
        ["iptables-save", "-t", "nat"], capture_output=True, text=True, check=False
    ).stdout
    lines = save.splitlines()
    present = [c for c in PORTMAP_CHAINS if f":{c} " in save]
    if not present or any(line.startswith(("-A CNI-HOSTPORT-DNAT ", ":CNI-DN-")) for line in lines):
        return 0
    for line in lines:  # the jumps: -A PREROUTING ... -j CNI-HOSTPORT-DNAT
        argv = shlex.split(line)
        jump = argv[-2:-1] == ["-j"] and argv[-1] in PORTMAP_CHAINS
        if len(argv) > 2 and argv[0] == "-A" and argv[1] not in PORTMAP_CHAINS and jump:
            subprocess.run(
                ["iptables", "-w", "5", "-t", "nat", "-D", *argv[1:]],
                capture_output=True, check=False,
            )  # fmt: skip
    removed = 0
    for op in ("-F", "-X"):  # all flushed before any is deleted
        for chain in present:
            res = subprocess.run(
                ["iptables", "-w", "5", "-t", "nat", op, chain], capture_output=True, check=False
            )
            removed += op == "-X" and res.returncode == 0
    return removed
