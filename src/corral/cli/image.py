"""``corral image``: import, pull and list the images of this node's agent.

``corral image import PATH [--name REF]`` loads an OCI layout directory, an OCI archive
or a docker-archive (``docker save``) into the agent's image store, so pods with
``imagePullPolicy: IfNotPresent`` or ``Never`` run it without a registry (as ``kind load``
and ``ctr image import`` do). ``corral image pull REF`` pulls through the configured
mirrors; ``corral image list`` shows what the node has. All three work on the store of
the agent whose data directory is ``--data-dir`` (default: ``corral agent``'s default,
``/var/lib/corral/agents/<hostname>`` as root) and may run while that agent runs: the store
serialises writers with a file lock. ``cli.main`` registers ``add_parser`` and calls
``run``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from corral.util.paths import absolute_path

if TYPE_CHECKING:  # the image store loads when a command uses it, not with the parser
    from corral.agent.images import ImageStore


def default_agent_dir() -> Path:
    """The data directory ``corral agent`` uses by default on this host (its
    ``default_data_dir(hostname)`` in ``cli/agent.py``): ``<base>/agents/<hostname>``."""
    root = Path("/var/lib/corral") if os.geteuid() == 0 else Path.home() / ".corral"
    return root / "agents" / socket.gethostname()


def add_registry_args(p: argparse.ArgumentParser) -> None:
    """``--registry-mirror`` and ``--insecure-registry``; the agent may add them too."""
    p.add_argument(
        "--registry-mirror",
        action="append",
        default=[],
        metavar="REGISTRY=URL[,URL]",
        help="pull REGISTRY's images from URL first, e.g. docker.io=http://127.0.0.1:5000 "
        "(repeatable; also DATA_DIR/certs.d/REGISTRY/hosts.toml as containerd reads it)",
    )
    p.add_argument(
        "--insecure-registry",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help="contact HOST over plain HTTP or without verifying its certificate "
        "(loopback hosts always are)",
    )


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``image`` with its ``import``, ``pull``, ``list`` and ``rm`` subcommands."""
    p: argparse.ArgumentParser = subparsers.add_parser("image", help="manage the node's images")
    p.add_argument(
        "--data-dir",
        type=absolute_path,
        default=default_agent_dir(),
        help="the node agent's data directory (images live in DATA_DIR/images)",
    )
    add_registry_args(p)
    sub = p.add_subparsers(dest="image_command", required=True)
    imp = sub.add_parser("import", help="import an OCI layout, OCI archive or docker-archive")
    imp.add_argument("path", type=Path, help="OCI layout directory or .tar archive")
    imp.add_argument("--name", default=None, help="the image's reference (one image only)")
    pull = sub.add_parser("pull", help="pull an image from its registry (or a mirror)")
    pull.add_argument("ref", help="image reference, e.g. busybox or 127.0.0.1:5000/app:v1")
    sub.add_parser("list", aliases=["ls"], help="list the images on this node")
    rm = sub.add_parser("rm", help="remove an image no container uses")
    rm.add_argument("ref")
    return p


def _store(args: argparse.Namespace) -> ImageStore:
    from corral.agent.images import ImageStore, RegistryHosts

    hosts = RegistryHosts.from_flags(
        args.registry_mirror, args.insecure_registry, args.data_dir / "certs.d"
    )
    return ImageStore(args.data_dir / "images", hosts)


def _short(digest: str) -> str:
    return digest.removeprefix("sha256:")[:12]


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.1f}{unit}"
        size /= 1000
    return f"{size:.1f}GB"


async def _run(args: argparse.Namespace) -> int:
    store = _store(args)
    cmd = args.image_command
    if cmd == "import":
        for info in await store.import_archive(args.path, args.name):
            print(f"imported {info.ref} {info.digest}")
    elif cmd == "pull":
        info = await store.pull(args.ref)
        print(f"{info.ref} {info.digest}")
    elif cmd in ("list", "ls"):
        rows = [("IMAGE", "DIGEST", "SIZE")]
        rows += [(r.ref, _short(r.digest), _size(r.size)) for r in store.list()]
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        for row in rows:
            print("   ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    elif cmd == "rm":
        if not await store.remove(args.ref):
            print(f"corral image rm: no image {args.ref}", file=sys.stderr)
            return 1
        print(f"removed {args.ref}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Run one ``corral image`` subcommand; 0 on success, 1 on failure (message on stderr)."""
    from corral.agent.images import ImagePullError

    try:
        return asyncio.run(_run(args))
    except ImagePullError as e:
        print(f"corral image {args.image_command}: {e.reason}: {e.message}", file=sys.stderr)
    except (ValueError, OSError) as e:
        print(f"corral image {args.image_command}: {e}", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    """``python -m corral.cli.image ...`` until ``cli.main`` wires ``corral image``."""
    parser = argparse.ArgumentParser(prog="corral")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(["image", *(sys.argv[1:] if argv is None else argv)]))


if __name__ == "__main__":
    sys.exit(main())
