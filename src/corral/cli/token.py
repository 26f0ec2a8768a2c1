"""``corral token create|list|delete``: bootstrap tokens, like ``kubeadm token``.

A token is a Secret ``kube-system/bootstrap-token-ID`` (``api/bootstraptoken.py``)
written through the API with the admin kubeconfig (``DATA/kubeconfig`` or
``--kubeconfig``). ``create`` prints the join command for a new node:
``corral agent --server URL --token ID.SECRET --ca-cert-hash sha256:HEX`` (the hash of
the cluster CA's public key, as kubeadm's ``--discovery-token-ca-cert-hash``).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
from pathlib import Path
from typing import Any

from corral.api import bootstraptoken as bt
from corral.api.errors import StatusError
from corral.client.rest import SECRETS, Client, KubeConfig
from corral.util.durations import parse_go_duration
from corral.util.paths import absolute_path


def _default_data_dir() -> Path:
    return Path("/var/lib/corral") if os.geteuid() == 0 else Path.home() / ".corral"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``token`` with ``create``, ``list`` and ``delete``."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "token", help="manage bootstrap tokens (corral agent --token joins with one)"
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", type=absolute_path, default=_default_data_dir())
    common.add_argument(
        "--kubeconfig", default="", help="admin kubeconfig (default DATA_DIR/kubeconfig)"
    )
    sub = p.add_subparsers(dest="token_command", required=True)
    create = sub.add_parser(
        "create", parents=[common], help="create a bootstrap token and print the join command"
    )
    create.add_argument("token", nargs="?", default="", help="the token (default: random)")
    create.add_argument(
        "--ttl", default="24h", help="how long it stays valid ('0' never expires; default 24h)"
    )
    create.add_argument("--description", default="", help="a human description")
    create.add_argument(
        "--usages",
        default="signing,authentication",
        help="comma-separated: signing, authentication (default both)",
    )
    create.add_argument(
        "--groups",
        default=bt.DEFAULT_EXTRA_GROUP,
        help=f"extra groups to authenticate as (default {bt.DEFAULT_EXTRA_GROUP})",
    )
    create.add_argument(
        "--print-join-command", action="store_true", help="print only the join command"
    )
    sub.add_parser("list", aliases=["ls"], parents=[common], help="list the bootstrap tokens")
    delete = sub.add_parser("delete", parents=[common], help="delete bootstrap tokens")
    delete.add_argument("ids", nargs="+", metavar="TOKEN-ID|TOKEN")
    return p


def ca_cert_hash(ca_pem: bytes) -> str:
    """``sha256:HEX`` of the CA certificate's SubjectPublicKeyInfo."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_pem_x509_certificate(ca_pem)
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return bt.ca_cert_hash(spki)


def join_command(cfg: KubeConfig, token: str) -> str:
    servers = ",".join(cfg.servers or [cfg.server])  # an HA cluster: every server
    cmd = f"corral agent --server {servers} --token {token}"
    if cfg.ca_pem:
        cmd += f" --ca-cert-hash {ca_cert_hash(cfg.ca_pem)}"
    return cmd


def _ttl_text(data: dict[str, str], now: dt.datetime) -> tuple[str, str]:
    when = bt.expiration(data)
    if when is None:
        return "<forever>", "<never>"
    left = (when - now).total_seconds()
    hours, rest = divmod(max(0, int(left)), 3600)
    return (f"{hours}h" if hours else f"{rest // 60}m"), bt.rfc3339(when)


async def _run(args: argparse.Namespace, cfg: KubeConfig) -> int:
    client = Client(cfg, user_agent="corral-token")
    now = dt.datetime.now(dt.UTC)
    try:
        if args.token_command == "create":
            token = args.token or bt.generate_token()
            ttl = dt.timedelta(seconds=parse_go_duration(args.ttl)) if args.ttl != "0" else None
            usages = tuple(u.strip() for u in args.usages.split(",") if u.strip())
            for u in usages:
                if u not in ("signing", "authentication"):
                    raise ValueError(f'unknown usage "{u}" (signing, authentication)')
            groups = [g.strip() for g in args.groups.split(",") if g.strip()]
            secret = bt.token_secret(
                token, ttl=ttl, now=now, groups=groups, usages=usages, description=args.description
            )
            await client.create(SECRETS, secret, bt.NAMESPACE)
            if args.print_join_command:
                print(join_command(cfg, token))
            else:
                print(token)
                print(f"join with: {join_command(cfg, token)}")
            return 0
        if args.token_command in ("list", "ls"):
            secrets = await client.list(SECRETS, bt.NAMESPACE)
            rows = [["TOKEN", "TTL", "EXPIRES", "USAGES", "DESCRIPTION", "EXTRA GROUPS"]]
            for s in secrets.get("items") or []:
                if s.get("type") != bt.SECRET_TYPE:
                    continue
                data = bt.secret_data(s)
                ttl_text, expires = _ttl_text(data, now)
                usage_text = ",".join(
                    k.removeprefix("usage-bootstrap-")
                    for k, v in sorted(data.items())
                    if k.startswith("usage-bootstrap-") and v == "true"
                )
                rows.append(
                    [
                        f"{data.get(bt.ID_KEY, '')}.{data.get(bt.SECRET_KEY, '')}",
                        ttl_text,
                        expires,
                        usage_text,
                        data.get(bt.DESCRIPTION_KEY, "") or "<none>",
                        data.get(bt.EXTRA_GROUPS_KEY, ""),
                    ]
                )
            widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
            for r in rows:
                print("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
            return 0
        for given in args.ids:
            token_id = given.split(".", 1)[0]
            if not bt.ID_RE.match(token_id):
                raise ValueError(f'given token ID "{given}" didn\'t match the expected format')
            await client.delete(SECRETS, bt.secret_name(token_id), bt.NAMESPACE)
            print(f'bootstrap token "{token_id}" deleted')
        return 0
    finally:
        await client.close()


def run(args: argparse.Namespace) -> int:
    """Run ``corral token ...``; errors are one line on stderr."""
    import sys

    cfg = KubeConfig.load(args.kubeconfig or args.data_dir / "kubeconfig")
    try:
        return asyncio.run(_run(args, cfg))
    except (ValueError, StatusError) as e:
        print(f"corral token: {e}", file=sys.stderr)
        return 1
