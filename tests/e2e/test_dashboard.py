"""The dashboard (``/ui``) in a real browser against a real ``corral up`` cluster.

One module-scoped cluster, started with ``corral up`` on free ports (the Kubernetes API,
the Mesos master, Marathon and Chronos), one headless Debian ``chromium`` driven by
Playwright through ``executable_path`` (``make test`` installs it; Playwright never
downloads a browser here), and a few tests that use the page as a person would:

- log in by pasting the kubeconfig (``#login-kubeconfig``) and with its token
  (``#login-token``); the nav shows and the Node row appears;
- a Deployment's pods appear as ``[data-kind=Pod]``; scaled with kubectl, the new pods
  appear without a reload (no second navigation entry, a window marker survives); scaled
  through the page's scale action (dialog, confirm), kubectl sees ``spec.replicas``;
- a pod's detail streams its log: ``pre[data-testid=logs]`` grows;
- a Marathon app (created through Marathon's API) and two Chronos jobs, one the parent of
  the other (Chronos' API), show in their views, the jobs as a DAG with the edge;
- every safe action, confirmed in its <dialog> (Cancel and Escape first act on nothing):
  restart a rollout (kubectl sees ``restartedAt``; new pod names replace the old in the
  Pods view without a reload), delete a pod from its detail page (kubectl no longer has
  it), run a Chronos job now (Chronos counts a success; the DAG's box shows it), scale a
  Marathon app with the keyboard alone (Tab to the button, Enter, type, Tab to confirm,
  Enter; Marathon reports the new ``instances``);
- a pod asking for more CPU than the node has is pending demand on ``#/pool`` with the
  scheduler's answer ("Insufficient cpu");
- the Nodes view's "used" figure comes from ``metrics.k8s.io`` (the cluster's metrics
  server scrapes every second here: a node's usage is a rate between two scrapes, so at
  the default 15 s the first figure would come 15-30 s after start, past this budget).

Every view is checked with axe-core (``axe-playwright-python`` ships it; it runs inside
the page, offline): no "serious" or "critical" violations. A screenshot of every view is
written to ``$CORRAL_TEST_ARTIFACTS`` (default ``build/test-artifacts/dashboard/``).

The DOM markers used are the dashboard's contract (``data-kind``, ``data-name``,
``data-action``, ``data-confirm``, ``data-testid``; ``#login-*``, ``#live``), not its
layout. Root only (``corral up``'s agent), and skipped with the reason when chromium or
Playwright is missing. The cluster is ``upkit.Up`` (``test_up``'s too): its teardown is
SIGINT, then ``corral agent --reset``.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import upkit

from conftest import Kubectl
from corral.testing.process import free_ports
from corral.testing.wait import eventually

CHROMIUM = "/usr/bin/chromium"

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="corral up's agent needs root here"),
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason="Debian's chromium is not installed (scripts/test-deps.sh installs it as root)",
    ),
    pytest.mark.timeout(180),
]

playwright_sync = pytest.importorskip(
    "playwright.sync_api", reason="playwright: pip install -e '.[test]'"
)
from playwright.sync_api import Browser, Page, expect  # noqa: E402

IMAGE = "--image=corral.local/busybox:1.35"
TICK = "trap 'exit 0' TERM; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.5; done"
WAIT_MS = 30_000  # how long the page may take to show a change (a wait, not a measure)
KINDS = """
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: ds-sleep}
spec:
  selector: {matchLabels: {app: ds-sleep}}
  template:
    metadata: {labels: {app: ds-sleep}}
    spec:
      containers: [{name: c, image: corral.local/busybox:1.35, command: [sleep, "600"]}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: st-sleep}
spec:
  serviceName: st-sleep
  replicas: 1
  selector: {matchLabels: {app: st-sleep}}
  template:
    metadata: {labels: {app: st-sleep}}
    spec:
      containers: [{name: c, image: corral.local/busybox:1.35, command: [sleep, "600"]}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: once}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: corral.local/busybox:1.35, command: [echo, done]}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly}
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{name: c, image: corral.local/busybox:1.35, command: [echo, hi]}]
"""
REPO = Path(__file__).resolve().parents[2]

Obj = dict[str, Any]


def _artifacts() -> Path:
    d = Path(os.environ.get("CORRAL_TEST_ARTIFACTS") or REPO / "build/test-artifacts/dashboard")
    d.mkdir(parents=True, exist_ok=True)
    return d


class Up(upkit.Up):
    """``corral up`` (``upkit.Up``) with every face on a free port, and the faces' APIs as
    the tests call them."""

    def __init__(
        self, data: Path, port: int, mesos_port: int, marathon_port: int, chronos_port: int
    ) -> None:
        self.mesos_port = mesos_port
        self.marathon_port = marathon_port
        self.chronos_port = chronos_port
        faces = ["--mesos-port", str(mesos_port), "--marathon-port", str(marathon_port)]
        faces += ["--chronos-port", str(chronos_port)]
        # the metrics server scrapes every second (15 s by default): a node's usage is a rate
        # between two scrapes, so the first "used" figure comes ~2 s after the first scrape
        faces += ["--metric-resolution", "1s"]
        super().__init__(data, port, faces)

    def face(self, port: int, method: str, path: str, body: Obj) -> int:
        """A JSON request to Marathon's or Chronos' API with the kubeconfig's token."""
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}{path}",
            data=json.dumps(body).encode(),
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            return int(resp.status)

    def face_json(self, port: int, path: str) -> Any:
        """A GET of Marathon's or Chronos' API with the kubeconfig's token, as JSON."""
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {self.token}"}
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    tmp = tmp_path_factory.mktemp("dashboard")
    port, mesos, marathon, chronos = free_ports(4)
    u = Up(tmp / "corral", port, mesos, marathon, chronos)
    try:
        u.start()
        yield u
    finally:
        u.stop()


@pytest.fixture(scope="module")
def kubectl(up: Up, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return Kubectl(up.kubeconfig, tmp_path_factory.mktemp("kubecache"))


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with playwright_sync.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        expect.set_options(timeout=WAIT_MS)
        try:
            yield b
        finally:
            b.close()


class Trouble:
    """What went wrong in a page as it loaded: console errors, uncaught exceptions,
    failed requests and error answers, said when the page never starts."""

    def __init__(self, page: Page) -> None:
        self.seen: list[str] = []
        page.on("console", lambda m: self.seen.append(f"console {m.type}: {m.text}")
                if m.type in ("error", "warning") else None)  # fmt: skip
        page.on("pageerror", lambda e: self.seen.append(f"page error: {e}"))
        page.on("requestfailed", lambda r: self.seen.append(f"failed: {r.url} {r.failure}"))
        page.on("response", lambda r: self.seen.append(f"answer {r.status}: {r.url}")
                if r.status >= 400 else None)  # fmt: skip

    def network_changed(self) -> bool:
        return any("ERR_NETWORK_CHANGED" in s for s in self.seen)


#: loads of the page that Chromium may drop for a network change (``_open``)
LOADS = 3


def _open(page: Page, url: str, ready: str) -> None:
    """Load ``url`` until ``ready`` is visible. Chromium fails the requests in flight
    with ``net::ERR_NETWORK_CHANGED`` whenever an interface comes or goes on the host,
    and the oci agent makes one (a veth) for every pod it starts: a module of the page
    dropped so leaves it in its initial HTML (seen twice in CI). Such a load is made
    again, as a user would reload; any other failure fails, with what the page met."""
    trouble = Trouble(page)
    for attempt in range(1, LOADS + 1):
        trouble.seen.clear()
        page.goto(url)
        try:
            expect(page.locator(ready)).to_be_visible(timeout=3_000)
            return
        except AssertionError:
            if trouble.network_changed() and attempt < LOADS:
                print(f"{url}: loaded again after a network change: {trouble.seen}")
                continue
        try:
            expect(page.locator(ready)).to_be_visible()
            return
        except AssertionError as e:
            raise AssertionError(f"{e}\nwhat the page met: {trouble.seen}") from None


@pytest.fixture(scope="module")
def page(browser: Browser, up: Up) -> Iterator[Page]:
    """The page the tests share, logged in with the kubeconfig's token."""
    ctx = browser.new_context(ignore_https_errors=True, viewport={"width": 1280, "height": 900})
    pg = ctx.new_page()
    pg.set_default_timeout(WAIT_MS)
    try:
        _open(pg, up.ui, "#login-token")
        pg.fill("#login-token", up.token)
        pg.click("#login-submit")
        expect(pg.locator('nav[aria-label="Sections"]')).to_be_visible()
        yield pg
    finally:
        ctx.close()


def _go(page: Page, route: str) -> None:
    """Follow the nav link to ``route`` (a hash change: never a reload)."""
    page.click(f'nav[aria-label="Sections"] a[href="{route}"]')
    page.wait_for_function("r => location.hash.startsWith(r)", arg=route)


def _shot(page: Page, name: str) -> None:
    page.screenshot(path=str(_artifacts() / f"{name}.png"), full_page=True)


def _axe(page: Page, view: str) -> None:
    """No serious or critical axe-core violation on the page as it is now."""
    from axe_playwright_python.sync_playwright import Axe  # type: ignore[import-untyped]

    results = Axe().run(page)
    bad = [v for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
    report = "\n".join(
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in bad
    )
    assert not bad, f"accessibility violations on {view}:\n{report}"


def _no_reload_since_marker(page: Page) -> None:
    assert page.evaluate("window.__corralMarker") == 1, "the page was reloaded"
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1


class _Streams:
    """The page's requests seen by Playwright: the ``/ui/watch`` answers still open, and
    any watch made past the multiplexed stream (there should be none)."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.open: set[Any] = set()
        self.direct: list[str] = []
        page.on("request", self._request)
        page.on("requestfinished", self._done)
        page.on("requestfailed", self._done)

    def _request(self, req: Any) -> None:
        if "/ui/watch?" in req.url:
            self.open.add(req)
        elif "watch=1" in req.url or "watch=true" in req.url:
            self.direct.append(req.url)

    def _done(self, req: Any) -> None:
        self.open.discard(req)

    def one_open(self) -> bool:
        self.page.wait_for_timeout(100)  # lets Playwright deliver the events
        return len(self.open) == 1


def _pods(page: Page, prefix: str) -> Any:
    return page.locator(f'[data-kind="Pod"][data-ns="default"][data-name^="{prefix}-"]')


def _tab_to(page: Page, selector: str, limit: int = 200) -> None:
    """Press Tab until the focused element matches ``selector`` (the keyboard alone)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("s => !!document.activeElement?.matches(s)", selector):
            return
    raise AssertionError(f"Tab never reached {selector}")


def _poll(kubectl: Kubectl, pred: Any, what: str) -> Any:
    """``eventually`` for conditions read with kubectl (a process each: not too often)."""
    return eventually(pred, timeout=WAIT_MS / 1000, interval=0.3, what=what)


def test_login_with_the_kubeconfig_and_the_token_shows_the_nodes(
    browser: Browser, up: Up, page: Page
) -> None:
    ctx = browser.new_context(ignore_https_errors=True)
    try:  # a second session: pasting the kubeconfig
        other = ctx.new_page()
        other.set_default_timeout(WAIT_MS)
        _open(other, up.ui, "#login-kubeconfig")
        expect(other.locator("#logout")).to_be_hidden()  # nobody to log out yet
        _axe(other, "login")
        _shot(other, "login")
        other.fill("#login-kubeconfig", up.kubeconfig.read_text())
        other.click("#login-submit")
        expect(other.locator('nav[aria-label="Sections"]')).to_be_visible()
        expect(other.locator('[data-kind="Node"]')).to_have_count(1)
    finally:
        ctx.close()

    # the shared page logged in with the token (the fixture): every section is in the nav
    nav = page.locator('nav[aria-label="Sections"]')
    for route in ("#/nodes", "#/pool", "#/workloads", "#/pods", "#/events"):
        expect(nav.locator(f'a[href="{route}"]')).to_have_count(1)
    _go(page, "#/nodes")
    expect(page.locator('[data-kind="Node"]')).to_have_count(1)
    expect(page.locator("#live")).to_have_text("live")
    _axe(page, "nodes")
    _shot(page, "nodes")

    # the keyboard reaches the nav from the top of the page
    page.evaluate("document.activeElement && document.activeElement.blur()")
    for _ in range(30):
        page.keyboard.press("Tab")
        if page.evaluate("!!document.activeElement?.closest('nav[aria-label=\"Sections\"]')"):
            break
    else:
        raise AssertionError("Tab never reached the Sections nav")


def test_pods_follow_kubectl_scale_live_and_the_scale_action(
    up: Up, kubectl: Kubectl, page: Page
) -> None:
    kubectl("create", "deployment", "tick", IMAGE, "--replicas=1", "--", "sh", "-c", TICK)
    _go(page, "#/pods")
    page.evaluate("window.__corralMarker = 1")
    expect(_pods(page, "tick")).to_have_count(1)

    kubectl("scale", "deployment", "tick", "--replicas=3")
    expect(_pods(page, "tick")).to_have_count(3)
    _no_reload_since_marker(page)
    _axe(page, "pods")
    _shot(page, "pods")

    _go(page, "#/workloads")
    row = page.locator('[data-kind="Deployment"][data-ns="default"][data-name="tick"]')
    row.locator('button[data-action="scale"]').click()
    dialog = page.locator("dialog[open]")
    dialog.locator('input[name="replicas"]').fill("2")
    _shot(page, "workloads-scale-dialog")
    dialog.locator("button[data-confirm]").click()
    eventually(
        lambda: kubectl("get", "deploy", "tick", "-o", "jsonpath={.spec.replicas}").stdout == "2",
        timeout=30,
        what="spec.replicas 2 after the scale action",
    )
    _go(page, "#/pods")
    expect(_pods(page, "tick")).to_have_count(2)
    _no_reload_since_marker(page)
    streams = _Streams(page)
    _go(page, "#/workloads")
    # its six lists (five kinds and the pods) are all watched, through the one /ui/watch
    expect(page.locator('[data-kind="Deployment"][data-name="tick"]')).to_have_count(1)
    expect(page.locator("#live")).to_have_text("live")
    eventually(streams.one_open, timeout=30, what="one /ui/watch stream open")
    assert not streams.direct, f"watches past /ui/watch: {streams.direct}"
    _axe(page, "workloads")
    _shot(page, "workloads")

    # a row shows the pods it owns; a link to the Deployment opens with its row highlighted
    # and its pods shown
    rows = 'tr[data-kind="Deployment"][data-ns="default"][data-name="tick"]'
    owned = page.locator('tr[data-key="pods:Deployment/default/tick"] [data-kind="Pod"]')
    toggle = page.locator(f'{rows} button[data-action="pods"]')
    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(owned.first).to_be_visible()
    page.evaluate("location.hash = '#/workloads/Deployment/default/tick'")
    expect(page.locator(f"{rows}.highlight")).to_have_count(1)
    expect(owned.first).to_be_visible()


RESTARTED_AT = r"jsonpath={.spec.template.metadata.annotations.kubectl\.kubernetes\.io/restartedAt}"


def test_restart_a_rollout_replaces_its_pods(kubectl: Kubectl, page: Page) -> None:
    def restarted_at() -> str:
        return str(kubectl("get", "deploy", "tick", "-o", RESTARTED_AT).stdout)

    old = kubectl("get", "pods", "-l", "app=tick", "-o", "jsonpath={.items[*].metadata.name}")
    _go(page, "#/workloads")
    row = page.locator('[data-kind="Deployment"][data-ns="default"][data-name="tick"]')
    dialog = page.locator("dialog[open]")
    # Escape closes the confirmation and restarts nothing
    row.locator('button[data-action="restart"]').click()
    expect(dialog).to_have_count(1)
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    assert restarted_at() == ""

    row.locator('button[data-action="restart"]').click()
    _shot(page, "workloads-restart-dialog")
    dialog.locator("button[data-confirm]").click()
    _poll(kubectl, restarted_at, "the restartedAt annotation after the restart action")
    # the Deployment's pods are replaced, and the Pods view follows without a reload
    _go(page, "#/pods")
    page.wait_for_function(
        """old => {
          const names = [...document.querySelectorAll(
            '[data-kind="Pod"][data-ns="default"][data-name^="tick-"]')].map(e => e.dataset.name);
          return names.length === 2 && names.every(n => !old.includes(n));
        }""",
        arg=old.stdout.split(),
    )
    _no_reload_since_marker(page)


def test_a_pods_detail_streams_its_log(up: Up, kubectl: Kubectl, page: Page) -> None:
    kubectl("create", "deployment", "talk", IMAGE, "--", "sh", "-c", TICK)
    kubectl("rollout", "status", "deployment/talk", "--timeout=60s", timeout=90)
    pods = json.loads(kubectl("get", "pods", "-l", "app=talk", "-o", "json").stdout)["items"]
    name = pods[0]["metadata"]["name"]
    _go(page, "#/pods")
    page.locator(f'a[href="#/pods/default/{name}"]').first.click()
    logs = page.locator('pre[data-testid="logs"]')
    expect(logs).to_contain_text("tick 1")
    seen = len(logs.text_content() or "")
    # streamed: more lines arrive while the page stays as it is
    page.wait_for_function(
        "n => document.querySelector('pre[data-testid=\"logs\"]').textContent.length > n",
        arg=seen,
    )
    expect(logs).to_contain_text("tick 4")
    _axe(page, "pod detail")
    _shot(page, "pod-detail")
    _go(page, "#/events")
    expect(page.locator('[data-kind="Event"]').first).to_be_visible()
    _axe(page, "events")
    _shot(page, "events")


def test_delete_a_pod_from_its_detail_page(kubectl: Kubectl, page: Page) -> None:
    def deleting() -> str:
        r = kubectl("get", "pod", "doomed", "-o", "jsonpath={.metadata.deletionTimestamp}")
        return str(r.stdout)

    kubectl("run", "doomed", IMAGE, "--", "sh", "-c", TICK)
    _go(page, "#/pods")
    page.locator('a[href="#/pods/default/doomed"]').first.click()
    delete = page.locator('button[data-action="delete"]')
    expect(delete).to_be_enabled()
    dialog = page.locator("dialog[open]")
    # Cancel, then Escape: the pod is left alone
    delete.click()
    expect(dialog.locator("button[data-confirm]")).to_be_visible()
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_have_count(0)
    delete.click()
    expect(dialog).to_have_count(1)
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    assert deleting() == "", "the pod was deleted without a confirmation"

    delete.click()
    dialog.locator("button[data-confirm]").click()
    _poll(
        kubectl,
        lambda: kubectl("get", "pod", "doomed", "--ignore-not-found", "-o", "name").stdout == "",
        "pod doomed gone after the delete action",
    )
    expect(page.locator("main")).to_contain_text("does not exist")


def test_marathon_apps_and_the_chronos_dag(up: Up, page: Page) -> None:
    app = {"id": "/sleeper", "cmd": "sleep 600", "cpus": 0.05, "mem": 16, "instances": 1}
    assert up.face(up.marathon_port, "POST", "/v2/apps", app) == 201
    job = {"owner": "me@example.com", "cpus": 0.05, "mem": 16, "disabled": False}
    parent = {**job, "name": "extract", "command": "echo extract"}
    parent["schedule"] = "R/2030-01-01T00:00:00Z/P1D"
    child = {**job, "name": "load", "command": "echo load", "parents": ["extract"]}
    assert up.face(up.chronos_port, "POST", "/v1/scheduler/iso8601", parent) == 204
    assert up.face(up.chronos_port, "POST", "/v1/scheduler/dependency", child) == 204

    _go(page, "#/frameworks")
    expect(page.locator('[data-kind="MarathonApp"][data-name="/sleeper"]')).to_be_visible()
    expect(page.locator('[data-kind="Framework"]').first).to_be_visible()
    _axe(page, "frameworks")
    _shot(page, "frameworks")
    # a link to the app opens its row highlighted, with its task pod shown
    page.evaluate("location.hash = '#/frameworks/app/sleeper'")
    app_row = 'tr[data-kind="MarathonApp"][data-name="/sleeper"]'
    expect(page.locator(f"{app_row}.highlight")).to_have_count(1)
    expect(page.locator(f'{app_row} button[data-action="pods"]')).to_have_attribute(
        "aria-expanded", "true"
    )
    expect(
        page.locator('tr[data-key="pods:MarathonApp//sleeper"] [data-kind="Pod"]')
    ).to_have_count(1)

    _go(page, "#/chronos")
    dag = page.locator('svg[data-testid="chronos-dag"]')
    for name in ("extract", "load"):
        expect(dag.locator(f'g[data-kind="ChronosJob"][data-name="{name}"]')).to_have_count(1)
    expect(dag.locator('path[data-edge="extract->load"]')).to_have_count(1)
    _axe(page, "chronos")
    _shot(page, "chronos")

    _go(page, "#/pool")
    expect(page.locator('svg[data-testid="drf-plot"]')).to_be_visible()
    expect(page.locator('[data-kind="Namespace"][data-name="default"]').first).to_be_visible()
    _axe(page, "pool")
    _shot(page, "pool")


def test_scale_a_marathon_app_with_the_keyboard(up: Up, page: Page) -> None:
    _go(page, "#/frameworks")
    row = page.locator('tr[data-kind="MarathonApp"][data-name="/sleeper"]')
    scale = 'tr[data-kind="MarathonApp"][data-name="/sleeper"] button[data-action="scale"]'
    expect(page.locator(scale)).to_be_visible()
    dialog = page.locator("dialog[open]")
    page.evaluate("document.activeElement && document.activeElement.blur()")
    _tab_to(page, scale)
    # Enter opens the dialog with its field focused; Escape closes it
    page.keyboard.press("Enter")
    expect(dialog.locator('input[name="replicas"]')).to_be_focused()
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    if not page.evaluate("s => !!document.activeElement?.matches(s)", scale):
        _tab_to(page, scale)
    # opened, filled and confirmed with Tab and Enter
    page.keyboard.press("Enter")
    expect(dialog.locator('input[name="replicas"]')).to_be_focused()
    page.keyboard.type("2")  # the field's text is selected: typing replaces it
    _tab_to(page, "dialog[open] button[data-confirm]", limit=5)
    page.keyboard.press("Enter")
    expect(dialog).to_have_count(0)
    eventually(
        lambda: up.face_json(up.marathon_port, "/v2/apps/sleeper")["app"]["instances"] == 2,
        timeout=WAIT_MS / 1000,
        interval=0.2,
        what="Marathon's app /sleeper at 2 instances after the scale dialog",
    )
    expect(row).to_contain_text("/2")


def test_run_a_chronos_job_now(up: Up, page: Page) -> None:
    def successes() -> int:
        job = up.face_json(up.chronos_port, "/v1/scheduler/job/extract")
        return int(job.get("successCount") or 0)

    assert successes() == 0
    _go(page, "#/chronos")
    box = page.locator(
        'svg[data-testid="chronos-dag"] g[data-kind="ChronosJob"][data-name="extract"]'
    )
    last = box.locator('text[data-time="success"]')
    expect(last).to_have_text("last success: never")
    page.locator(
        'tr[data-kind="ChronosJob"][data-name="extract"] button[data-action="run"]'
    ).click()
    page.locator("dialog[open] button[data-confirm]").click()
    eventually(successes, timeout=WAIT_MS / 1000, interval=0.2, what="a success of extract")
    # the graph's box shows it without a reload
    expect(last).not_to_have_text("last success: never")
    expect(last).to_contain_text("ago")
    expect(box).to_have_attribute("data-current", "idle")  # not "running" any more
    _shot(page, "chronos-after-run")


HUGE = """
apiVersion: v1
kind: Pod
metadata: {name: huge, namespace: default}
spec:
  containers:
  - name: c
    image: corral.local/busybox:1.35
    command: [sleep, "600"]
    resources: {requests: {cpu: "64"}}
"""


def test_the_pool_names_each_user_and_workloads_show_each_kind(
    up: Up, kubectl: Kubectl, page: Page
) -> None:
    """The split names the Kubernetes namespaces, the Mesos roles and frameworks, the
    Marathon app and the Chronos jobs (made by the test above); the Workloads view shows a
    DaemonSet, a StatefulSet, a Job (run to completion) and a CronJob as kubectl made them."""
    _go(page, "#/pool")
    split = 'tr[data-section="split"]'
    for kind, name in [("Namespace", "default"), ("Role", "kubernetes"),
                       ("Framework", "marathon"), ("Framework", "chronos"),
                       ("MarathonApp", "/sleeper"), ("ChronosJob", "extract"),
                       ("ChronosJob", "load")]:  # fmt: skip
        expect(page.locator(f'{split}[data-kind="{kind}"][data-name="{name}"]')).to_have_count(1)

    kubectl("apply", "-f", "-", input=KINDS)
    _go(page, "#/workloads")
    for kind, name in [("DaemonSet", "ds-sleep"), ("StatefulSet", "st-sleep"),
                       ("Job", "once"), ("CronJob", "nightly")]:  # fmt: skip
        row = page.locator(f'[data-kind="{kind}"][data-ns="default"][data-name="{name}"]')
        expect(row).to_have_count(1)
    expect(page.locator('[data-kind="Job"][data-name="once"]')).to_contain_text("Complete")
    expect(page.locator('[data-kind="CronJob"][data-name="nightly"]')).to_contain_text("0 3 * * *")
    _axe(page, "workloads of every kind")
    _shot(page, "workloads-kinds")
    kubectl("delete", "daemonset/ds-sleep", "statefulset/st-sleep", "job/once",
            "cronjob/nightly", "--wait=false")  # fmt: skip


def test_nodes_mark_cordoned_and_tainted(kubectl: Kubectl, page: Page) -> None:
    node = kubectl("get", "nodes", "-o", "jsonpath={.items[0].metadata.name}").stdout
    _go(page, "#/nodes")
    row = page.locator(f'tr[data-kind="Node"][data-name="{node}"]')
    expect(row).to_contain_text("Ready")
    kubectl("cordon", node)
    kubectl("taint", "nodes", node, "corral.test/dashboard=yes:PreferNoSchedule")
    try:
        expect(row.locator(".badge", has_text="cordoned")).to_have_count(1)
        expect(row).to_contain_text("corral.test/dashboard=yes:PreferNoSchedule")
        expect(page.locator("main")).to_contain_text("1 cordoned")
        _shot(page, "nodes-cordoned-tainted")
    finally:
        kubectl("taint", "nodes", node, "corral.test/dashboard=yes:PreferNoSchedule-")
        kubectl("uncordon", node)
    expect(row.locator(".badge", has_text="cordoned")).to_have_count(0)


def test_nodes_mark_a_node_whose_kubelet_says_not_ready(kubectl: Kubectl, page: Page) -> None:
    ghost = f"ghost-{uuid.uuid4().hex[:6]}"  # a Node no agent runs: its status is ours to set
    kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "Node",
                                                  "metadata": {"name": ghost}}))  # fmt: skip
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    cond = {"type": "Ready", "status": "False", "reason": "KubeletNotReady",
            "message": "container runtime is down", "lastHeartbeatTime": now,
            "lastTransitionTime": now}  # fmt: skip
    _go(page, "#/nodes")
    try:
        kubectl("patch", "node", ghost, "--subresource=status", "--type=merge",
                "-p", json.dumps({"status": {"conditions": [cond]}}))  # fmt: skip
        row = page.locator(f'tr[data-kind="Node"][data-name="{ghost}"]')
        expect(row).to_contain_text("NotReady")
        expect(page.locator("main .counts")).to_contain_text("1 NotReady")
        _axe(page, "nodes with one NotReady")
        _shot(page, "nodes-not-ready")
    finally:
        kubectl("delete", "node", ghost, "--wait=false")
    expect(page.locator(f'tr[data-kind="Node"][data-name="{ghost}"]')).to_have_count(0)
    expect(page.locator("main .counts")).to_contain_text("0 NotReady")


def test_pending_demand_shows_the_schedulers_why(kubectl: Kubectl, page: Page) -> None:
    kubectl("apply", "-f", "-", input=HUGE)
    _go(page, "#/pool")
    row = page.locator(
        'tr[data-section="pending"][data-kind="Pod"][data-ns="default"][data-name="huge"]'
    )
    expect(row).to_contain_text("Insufficient cpu")
    _axe(page, "pool with pending demand")
    _shot(page, "pool-pending")
    kubectl("delete", "pod", "huge", "--wait=false")
    expect(row).to_have_count(0)


def test_the_nodes_used_figure_comes_from_the_metrics_api(kubectl: Kubectl, page: Page) -> None:
    def usage() -> Any:
        r = kubectl("get", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes", check=False)
        items = json.loads(r.stdout).get("items") if r.returncode == 0 else None
        return items[0]["usage"] if items else None

    assert "cpu" in _poll(kubectl, usage, "a node in metrics.k8s.io")
    _go(page, "#/nodes")
    cpu = page.locator('tr[data-kind="Node"] [role="img"]').first
    expect(cpu).to_have_attribute("aria-label", re.compile(r"used: \d"))
    expect(page.locator("main")).to_contain_text("from metrics.k8s.io")
    _shot(page, "nodes-used")
