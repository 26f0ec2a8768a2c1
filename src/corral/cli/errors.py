"""How the ``corral`` command fails: one clear line on stderr and a non-zero exit.

``cli.main.main`` calls ``guarded(command, run)``, which turns what may go wrong before
or while a command runs into one line (``corral COMMAND: ...``) instead of a traceback:
a bad flag (``one_line_usage_errors``: argparse's usage block is left out, the line
points to ``--help``), a missing or unusable kubeconfig (``KubeConfigError`` from the
client), an API server that cannot be reached, a port already taken, any other error
(its type and message; ``--log-level debug`` prints the traceback too).

Long-running clients of the API server (scheduler, controller manager, agent, proxy,
dns, chronos, marathon, mesos-master) retry a lost server forever once running, as
Kubernetes components do; ``preflight`` checks, before they start, that their
kubeconfig is usable and that the server answers it, so a wrong path or URL is an
error at once rather than a loop of retries.
"""

from __future__ import annotations

import argparse
import logging
import os
import ssl
import sys
import traceback
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from typing import NoReturn

from corral.client.rest import KubeConfig, KubeConfigError

#: exit status of a command that failed (argparse's usage errors exit 2)
FAILED = 1
#: commands that run as clients of the API server until stopped
DAEMONS = frozenset(
    {
        "scheduler",
        "mesos-master",
        "chronos",
        "marathon",
        "controller-manager",
        "metrics-server",
        "agent",
        "proxy",
        "dns",
    }
)
#: the daemons whose --kubeconfig has a default (cli.scheduler.default_kubeconfig)
_DEFAULT_KUBECONFIG = frozenset({"scheduler", "mesos-master", "chronos", "marathon"})
PREFLIGHT_TIMEOUT = 5.0


class CommandError(Exception):
    """A failure already worded for the user (one line)."""


def one_line_usage_errors() -> None:
    """Make every argparse parser of this process (``corral``'s and those of the
    subcommands that parse their own flags) report a usage error in one line."""

    def error(self: argparse.ArgumentParser, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")

    argparse.ArgumentParser.error = error  # type: ignore[method-assign]


def parse_delegated(command: str, argv: Sequence[str]) -> argparse.Namespace:
    """The flags of a command that parses its own (``corral agent``, ``controller-manager``,
    ``proxy``, ``dns``), parsed with its own parser: a bad flag exits 2 with one line."""
    if command == "controller-manager":
        from corral.controllers.manager import build_parser
    elif command == "metrics-server":
        from corral.metrics.command import build_parser
    elif command == "dns":
        from corral.dns.server import build_parser
    elif command == "proxy":
        from corral.proxy.cmd import build_parser
    else:
        from corral.cli.agent import build_parser

        known, _ = build_parser().parse_known_args(argv)
        if known.runtime == "hollow":
            from corral.agent.hollow import build_parser
    return build_parser().parse_args(argv)


def preflight(command: str, args: argparse.Namespace) -> None:
    """For a daemon command (``args``: its parsed flags): its kubeconfig loads and its API
    server answers it. Raises ``KubeConfigError`` or ``CommandError``; does nothing for
    other commands, for ``agent --reset`` (no server needed) and without a kubeconfig
    (the command itself says it needs one)."""
    if command not in DAEMONS or getattr(args, "reset", False):
        return
    path = getattr(args, "kubeconfig", None)
    if not path:
        if command not in _DEFAULT_KUBECONFIG:
            return
        from corral.cli.scheduler import default_kubeconfig

        path = default_kubeconfig()
    cfg = KubeConfig.load(path, servers=str(getattr(args, "server", "") or ""))
    check_server(cfg, str(path))


def check_server(cfg: KubeConfig, path: str, timeout: float = PREFLIGHT_TIMEOUT) -> None:
    """GET ``/api`` with the kubeconfig's credentials; ``CommandError`` unless it answers
    200 (unreachable, TLS refused, credentials refused). With several servers (an HA
    cluster: ``KubeConfig.servers``) one answering is enough; else the first one's error."""
    errors: list[CommandError] = []
    for server in cfg.servers or [cfg.server]:
        try:
            return _check_one(cfg, server, path, timeout)
        except CommandError as e:
            errors.append(e)
    raise errors[0]


def _check_one(cfg: KubeConfig, server: str, path: str, timeout: float) -> None:
    request = urllib.request.Request(server + "/api")
    if cfg.token:
        request.add_header("Authorization", f"Bearer {cfg.token}")
    context = cfg.ssl_context()
    where = f"the API server at {server} (kubeconfig {path})"
    try:
        opener = urllib.request.build_opener(
            urllib.request.HTTPSHandler(
                context=context if isinstance(context, ssl.SSLContext) else None
            )
        )
        with opener.open(request, timeout=timeout) as answer:
            answer.read()
    except urllib.error.HTTPError as e:
        if e.code in (401, 403):
            raise CommandError(f"{where} refused the credentials: {e.code} {e.reason}") from None
        raise CommandError(f"{where} answered {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        raise CommandError(f"cannot reach {where}: {_reason(e.reason)}") from None
    except (OSError, ValueError) as e:
        raise CommandError(f"cannot reach {where}: {_reason(e)}") from None


def _reason(e: object) -> str:
    if isinstance(e, ssl.SSLCertVerificationError):
        return f"TLS: {e.verify_message}"
    if isinstance(e, OSError) and e.strerror:
        return e.strerror.lower() if e.strerror[:1].isupper() else e.strerror
    if isinstance(e, TimeoutError):
        return "timed out"
    return " ".join(str(e).split()) or type(e).__name__


def describe(e: BaseException) -> str:
    """One line for an error that reached the top of a command."""
    while isinstance(e, BaseExceptionGroup) and e.exceptions:  # a TaskGroup's failure
        e = e.exceptions[0]
    if isinstance(e, CommandError | KubeConfigError):
        return str(e)
    from corral.storage.base import StorageCorrupt

    if isinstance(e, StorageCorrupt):  # already worded (apiserver.server.corrupt_message)
        return str(e)
    from corral.apiserver.bootstrap_data import BootstrapError

    if isinstance(e, BootstrapError):  # already worded (a wrong cluster token, ...)
        return str(e)
    try:
        import aiohttp
    except ImportError:  # pragma: no cover - a dependency
        aiohttp = None  # type: ignore[assignment]
    if aiohttp is not None and isinstance(e, aiohttp.ClientConnectorError):
        err = e.os_error
        reason = os.strerror(err.errno).lower() if err.errno else _reason(err)
        return f"cannot reach {e.host}:{e.port}: {reason}"
    if aiohttp is not None and isinstance(e, aiohttp.ClientError):
        return f"{type(e).__name__}: {' '.join(str(e).split())}"
    from corral.api.errors import StatusError

    if isinstance(e, StatusError):
        return f"Error from server ({e.reason or e.code}): {e.message}"
    if isinstance(e, OSError):
        what = f"{e.filename}: " if e.filename else ""
        return f"{what}{e.strerror or e}"
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def guarded(command: str, run: Callable[[], int]) -> int:
    """Run one ``corral`` command; any error becomes one line ``corral COMMAND: ...`` on
    stderr and exit status 1 (Ctrl-C: 130), never a traceback."""
    prog = f"corral {command}" if command else "corral"
    try:
        return run()
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # the top of the command: every error ends here
        if logging.getLogger().isEnabledFor(logging.DEBUG):
            traceback.print_exc()
        print(f"{prog}: {describe(e)}", file=sys.stderr, flush=True)
        return FAILED
