"""``corral top`` and ``corral why framework/NAME``: the Mesos master's view of the pool.

``corral top [--master HOST:PORT] [-n ITERATIONS] [-d DELAY]`` reads the master's
``GET /corral/top`` every DELAY seconds and draws a ``top``-like screen: the pool's
total (pod slots too: the ``pods`` resource offers advertise) and how much of it is
allocated and offered, one row per role (the Kubernetes
role included, with its pending pods) and one per framework. On a terminal the screen is
redrawn in place with ANSI codes; otherwise (a pipe, a file, a test) each refresh is a
plain block followed by a blank line. ``-n 1`` prints once and exits.

``corral why framework/NAME`` (or ``fw/NAME``; NAME is a framework id or name) prints
``GET /corral/why/NAME``: why the allocator makes that framework no offers now.

Called by ``cli.main`` (the ``top`` parser and command) and by ``cli.scheduler.why``
(targets ``framework/`` and ``fw/``). Both speak plain HTTP to the master with urllib:
this module imports nothing heavy, so the commands start fast. The rendering
(``render_top``, ``render_why``) is pure, from the JSON the master serves
(``mesos/state.py``: ``top`` and ``why``). Exit status: 0, or 1 when the master cannot
be reached, answers with an error, or does not know the framework.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, TextIO

Obj = dict[str, Any]

DEFAULT_MASTER = "127.0.0.1:5050"
#: the kinds ``corral why`` hands to this module
FRAMEWORK_KINDS = ("framework", "frameworks", "fw")
#: what the master answers for an id or name it does not know (``state.why``)
#: quota columns at or above this are unlimited (the allocator's UNLIMITED, in Mesos units)
_UNLIMITED = 1e12
#: ANSI: cursor home; erase to the end of the line; erase to the end of the screen
_HOME, _EOL, _EOS = "\x1b[H", "\x1b[K", "\x1b[J"
_TIMEOUT = 10.0


class MasterUnreachable(Exception):
    """The master did not answer, or answered with an error; the message says which."""


# --- parsers ------------------------------------------------------------------------------------
def add_parsers(sub: Any) -> None:
    """Add ``corral top`` and the ``--master`` flag of ``corral why`` (whose parser
    ``cli/scheduler.py`` adds first)."""
    t = sub.add_parser(
        "top",
        help="show roles and frameworks of the Mesos master, refreshed like top",
        description="Allocation by role (the Kubernetes role included) and by framework, "
        "from the Mesos master's /corral/top, redrawn every SECONDS (-d).",
    )
    _master_arg(t)
    t.add_argument(
        "-n",
        "--iterations",
        type=_positive_int,
        default=0,
        metavar="N",
        help="refresh N times, then exit (default: until Ctrl-C)",
    )
    t.add_argument(
        "-d",
        "--delay",
        type=_positive_float,
        default=1.0,
        metavar="SECONDS",
        help="seconds between refreshes (default 1)",
    )
    why = sub.choices.get("why")
    if why is not None:
        _master_arg(why, "for framework/NAME: ")
        for action in why._actions:
            if action.dest == "target":
                action.help = "pod/NAME (or NAME), or framework/NAME (fw/NAME; an id or a name)"


def _master_arg(p: argparse.ArgumentParser, prefix: str = "") -> None:
    p.add_argument(
        "--master",
        default=DEFAULT_MASTER,
        metavar="HOST:PORT",
        help=f"{prefix}the Mesos master API (default {DEFAULT_MASTER})",
    )


def _positive_int(text: str) -> int:
    n = int(text)
    if n <= 0:
        raise argparse.ArgumentTypeError(f"want a positive number, got {text}")
    return n


def _positive_float(text: str) -> float:
    x = float(text)
    if not x > 0:
        raise argparse.ArgumentTypeError(f"want a positive number of seconds, got {text}")
    return x


# --- HTTP ---------------------------------------------------------------------------------------
def base_url(master: str) -> str:
    """``http://HOST:PORT`` from ``HOST:PORT``, ``HOST`` (port 5050) or a URL."""
    text = master.strip().rstrip("/")
    if "://" not in text:
        text = "http://" + text
    parts = urllib.parse.urlsplit(text)
    host = parts.hostname or "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}:{parts.port or 5050}"


def kubeconfig_token(path: str | None = None) -> str:
    """The bearer token of the current user of the kubeconfig (``$KUBECONFIG`` or the
    default), "" when it has none: sent to the master, whose read-only endpoints
    authenticate (``mesos/auth.py`` accepts a bearer token as well as basic auth)."""
    from corral.cli.scheduler import default_kubeconfig

    try:
        import yaml

        with open(path or default_kubeconfig(), encoding="utf-8") as f:
            cfg = yaml.safe_load(f) or {}
        ctx_name = cfg.get("current-context")
        ctx = next(c["context"] for c in cfg.get("contexts") or [] if c["name"] == ctx_name)
        user = next(u["user"] for u in cfg.get("users") or [] if u["name"] == ctx["user"])
        return str(user.get("token") or "")
    except (OSError, ValueError, KeyError, TypeError, StopIteration, AttributeError):
        return ""
    except Exception:  # yaml's errors: no token then
        return ""


def _request(url: str) -> urllib.request.Request:
    token = kubeconfig_token()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return urllib.request.Request(url, headers=headers)


def get_json(master: str, path: str) -> Obj:
    """GET ``path`` of the master as JSON; ``MasterUnreachable`` on any failure."""
    url = base_url(master) + path
    where = f"cannot reach the Mesos master at {master}"
    try:
        with urllib.request.urlopen(_request(url), timeout=_TIMEOUT) as r:
            body = r.read()
    except urllib.error.HTTPError as e:
        detail = e.read(200).decode(errors="replace").strip()
        hint = " (is it Corral's master?)" if e.code == 404 else ""
        raise MasterUnreachable(
            f"the Mesos master at {master} answered GET {path} with HTTP {e.code}"
            f"{': ' + detail if detail else ''}{hint}"
        ) from None
    except urllib.error.URLError as e:
        raise MasterUnreachable(f"{where}: {e.reason}") from None
    except (OSError, ValueError) as e:  # timeouts, resets, bad host names
        raise MasterUnreachable(f"{where}: {e}") from None
    try:
        out = json.loads(body)
    except ValueError:
        raise MasterUnreachable(f"the Mesos master at {master} sent no JSON for {path}") from None
    if not isinstance(out, dict):
        raise MasterUnreachable(f"the Mesos master at {master} sent no object for {path}")
    return out


# --- rendering ----------------------------------------------------------------------------------
def _cpus(x: float) -> str:
    return "inf" if x >= _UNLIMITED else f"{round(x, 2):g}"


def _mem(mb: float) -> str:
    """Mesos MB as a short size: 512M, 1.5G, 2.0T."""
    if mb >= _UNLIMITED:
        return "inf"
    if mb == 0:
        return "0"
    if mb < 1024:
        return f"{mb:.0f}M"
    if mb < 1024 * 1024:
        return f"{mb / 1024:.1f}G"
    return f"{mb / 1024 / 1024:.1f}T"


def _cm(res: Obj | None) -> str:
    """``cpus/mem`` of a resource map."""
    res = res or {}
    return f"{_cpus(float(res.get('cpus', 0.0)))}/{_mem(float(res.get('mem', 0.0)))}"


def _pct(part: float, whole: float) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "-"


def _quota(role: Obj) -> str:
    g, lim = role.get("guarantee"), role.get("limit")
    parts = []
    if g:
        parts.append("g " + _cm(g))
    if lim:
        parts.append("l " + _cm(lim))
    return " ".join(parts) or "-"


def short_id(fid: str) -> str:
    """A framework id short enough for a column: Mesos ids are ``<master uuid>-NNNN``,
    so keep the head (the master) and the tail (the sequence number)."""
    return fid if len(fid) <= 16 else f"{fid[:8]}..{fid[-4:]}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
        for r in [header, *rows]
    ]


def render_top(data: Obj, master: str = DEFAULT_MASTER, now: float | None = None) -> list[str]:
    """The lines of one ``corral top`` screen from the master's ``/corral/top`` JSON."""
    total = data.get("total") or {}
    roles: list[Obj] = list(data.get("roles") or [])
    frameworks: list[Obj] = list(data.get("frameworks") or [])
    stamp = time.strftime("%H:%M:%S", time.localtime(now))
    lines = [f"corral top - Mesos master {master} - {stamp}"]
    alloc = {k: sum(float((r.get("allocated") or {}).get(k, 0.0)) for r in roles) for k in total}
    offer = {k: sum(float((r.get("offered") or {}).get(k, 0.0)) for r in roles) for k in total}
    t = {k: float(total.get(k, 0.0)) for k in ("cpus", "mem", "disk")}
    pods = data.get("pods") or {}
    slots = int(pods.get("total", 0))
    lines.append(
        f"Total:   cpus {_cpus(t['cpus'])}, mem {_mem(t['mem'])}, disk {_mem(t['disk'])}"
        + (f", pods {slots}" if slots else "")
        + f"; {len(roles)} role(s), {len(frameworks)} framework(s), "
        f"{sum(1 for f in frameworks if f.get('connected'))} connected"
    )
    for label, used, what in (
        ("Used:", alloc, "allocated to tasks and pods"),
        ("Offered:", offer, "held by outstanding offers"),
    ):
        # pod slots are used by pods only: offers advertise them but do not hold them
        in_use = f", pods {_pct(float(pods.get('used', 0)), slots)}" if slots else ""
        lines.append(
            f"{label:<8} cpus {_pct(used.get('cpus', 0.0), t['cpus'])}, "
            f"mem {_pct(used.get('mem', 0.0), t['mem'])}, "
            f"disk {_pct(used.get('disk', 0.0), t['disk'])}"
            + (in_use if label == "Used:" else "")
            + f" ({what})"
        )
    lines.append("")
    role_rows = []
    for r in roles:
        pending = "-"
        p = r.get("pending")
        if isinstance(p, dict):
            pending = f"{int(p.get('pods', 0))} pods {_cm(p)}"
        name = str(r.get("role", ""))
        role_rows.append(
            [
                name + (" (k8s)" if r.get("kubernetes") else ""),
                f"{float(r.get('weight', 1.0)):g}",
                _quota(r),
                _cm(r.get("allocated")),
                _cm(r.get("offered")),
                f"{100.0 * float(r.get('dominant_share', 0.0)):.1f}%",
                pending,
                str(len(r.get("frameworks") or [])),
            ]
        )
    lines += _table(
        [
            "ROLE",
            "WEIGHT",
            "QUOTA g/l",
            "ALLOCATED",
            "OFFERED",
            "DOMINANT SHARE",
            "PENDING",
            "FRAMEWORKS",
        ],
        role_rows,
    )
    lines.append("")
    fw_rows = []
    order = sorted(
        frameworks, key=lambda f: (-float(f.get("dominant_share", 0.0)), str(f.get("name", "")))
    )
    for f in order:
        suppressed = set(f.get("suppressed_roles") or [])
        roles_text = ",".join(
            r + ("(suppressed)" if r in suppressed else "") for r in f.get("roles") or []
        )
        offers = int(f.get("outstanding_offers", 0))
        fw_rows.append(
            [
                str(f.get("name", "")) or "-",
                short_id(str(f.get("id", ""))),
                roles_text or "-",
                "yes" if f.get("connected") else "no",
                str(int(f.get("tasks_running", 0))),
                _cm(f.get("allocated")),
                _cm(f.get("offered")) + (f" ({offers})" if offers else ""),
                f"{100.0 * float(f.get('dominant_share', 0.0)):.1f}%",
                "yes" if f.get("pending_demand") else "no",
            ]
        )
    header = ["NAME", "ID", "ROLES", "CONNECTED", "TASKS", "ALLOCATED", "OFFERED", "SHARE"]
    lines += _table([*header, "DEMAND"], fw_rows) if fw_rows else ["(no frameworks)"]
    return lines


def render_why(target: str, data: Obj) -> list[str]:
    """``framework/NAME (id):`` and the reasons, one per line."""
    fid = str(data.get("framework", ""))
    head = f"{target} ({fid}):" if fid and fid != target.partition("/")[2] else f"{target}:"
    return [head, *(f"  {r}" for r in data.get("reasons") or [])]


# --- commands -----------------------------------------------------------------------------------
def _draw(out: TextIO, lines: list[str], tty: bool) -> None:
    if tty:
        out.write(_HOME + "".join(line + _EOL + "\n" for line in lines) + _EOS)
    else:
        out.write("\n".join(lines) + "\n\n")
    out.flush()


def top(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """``corral top``: 0 when stopped by ``-n`` or Ctrl-C; 1 when the master could not be
    reached at the start or at the last refresh."""
    out = out or sys.stdout
    tty = out.isatty()
    shown = 0
    failed = False
    try:
        while True:
            try:
                data = get_json(args.master, "/corral/top")
                lines = render_top(data, args.master)
                failed = False
            except MasterUnreachable as e:
                if shown == 0:
                    print(f"corral top: {e}", file=sys.stderr)
                    return 1
                failed = True  # keep the last screen's place: the master may come back
                lines = [f"corral top: {e} (retrying every {args.delay:g}s)"]
            _draw(out, lines, tty)
            shown += 1
            if args.iterations and shown >= args.iterations:
                break
            time.sleep(args.delay)
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:  # `corral top | head`
        return 0
    return 1 if failed else 0


def why_framework(args: argparse.Namespace, who: str) -> int:
    """``corral why framework/NAME``."""
    master = getattr(args, "master", DEFAULT_MASTER)
    url = base_url(master) + "/corral/why/" + urllib.parse.quote(who, safe="")
    try:
        with urllib.request.urlopen(_request(url), timeout=_TIMEOUT) as r:
            data = json.loads(r.read())
    except urllib.error.HTTPError as e:
        if e.code != 404:
            print(
                f"corral why: the Mesos master at {master} answered HTTP {e.code}", file=sys.stderr
            )
            return 1
        try:
            reasons = [str(r) for r in json.loads(e.read()).get("reasons") or []]
        except ValueError:
            reasons = ["not found"]
        print(f"corral why: framework/{who}: {'; '.join(reasons)}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as e:
        print(f"corral why: cannot reach the Mesos master at {master}: {e}", file=sys.stderr)
        return 1
    print("\n".join(render_why(f"framework/{who}", data)))
    return 0
