"""End to end in a real browser: the Dagster UI over the demo bootstrap's instance, driven by Playwright + Chromium.

Nothing is mocked. A real ``dagster-webserver`` and ``dagster-daemon`` (the daemon dequeues runs launched from the
UI: dagster.yaml uses the queued run coordinator) serve a byte copy of the session's demo instance and warehouse,
so the run launched here never changes what other tests see. The code location gets the demo environment: its
resources point at the copied warehouse and at the session replay server (the network is closed, so a run that
tried a public provider would fail). Both schedules are stopped in the copy first: an hourly tick during the test
would start a refresh run that competes for the warehouse pool.

Screenshots, timings and the webserver/daemon logs go to ``artifacts/ui/``. ``CRYPTO_ASSETS_UPDATE_DOCS_IMAGES=1``
also refreshes ``docs/images/asset_graph.png`` (the README's picture). Needs Debian's Chromium
(``apt-get update && apt-get install -y chromium``); never ``playwright install``.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests

from crypto_assets.config import REPO_ROOT
from crypto_assets_tests.conftest import DEMO_END, DEMO_START, PipelineEnv

ARTIFACTS = REPO_ROOT / "artifacts" / "ui"
DOCS_IMAGE = REPO_ROOT / "docs" / "images" / "asset_graph.png"
VENV_BIN = Path(sys.executable).parent
INSTALL_HINT = "apt-get update && apt-get install -y chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# What the UI must show at least; the full expectation is read from the definitions.
MINIMUM_ASSET_GROUPS = {
    "raw/prices": "ingestion",
    "raw/news": "ingestion",
    "features/article_sentiment": "sentiment",
    "features/sentiment_hourly": "sentiment",
    "features/technical_indicators": "features",
    "features/feature_vectors": "features",
    "ml/training_set": "ml",
}
PRICES = "raw/prices"
LAUNCH_PARTITION = "2022-05-10"
DEMO_DAYS = (date.fromisoformat(DEMO_END) - date.fromisoformat(DEMO_START)).days + 1
# Wide enough that zoom-to-fit keeps the detailed asset cards (Dagster draws bare names below scale 0.6) once the
# navigation and the asset sidebar are hidden; tall enough for the whole graph below the graph's toolbar.
GRAPH_VIEWPORT = {"width": 1468, "height": 1100}
PAGE_VIEWPORT = {"width": 1400, "height": 900}
UI_TIMEOUT_MS = 30_000
SERVER_TIMEOUT_S = 120
RUN_TIMEOUT_S = 300


def _find_chromium() -> str | None:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


CHROMIUM = _find_chromium()
if CHROMIUM is None and os.environ.get("CRYPTO_ASSETS_REQUIRE_UI_TEST") == "1":
    raise RuntimeError(f"CRYPTO_ASSETS_REQUIRE_UI_TEST=1 but Chromium is not installed; run: {INSTALL_HINT}")

sync_api = pytest.importorskip("playwright.sync_api", reason="python playwright is missing: pip install -e '.[dev]'")
expect = sync_api.expect

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason=(
            "!!! UI TEST SKIPPED: no Chromium at /usr/bin/chromium or on PATH. "
            f"Install Debian's browser: `{INSTALL_HINT}` (never `playwright install`)."
        ),
    ),
]


# ------------------------------------------------------------------------------------------------ processes


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(path: Path, chars: int = 4000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"


@contextmanager
def _service(cmd: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A process in its own process group; stopping the group also stops its code servers and run workers."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield proc
        finally:
            for sig, grace_s in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    proc.wait(timeout=grace_s)
                    break
                except subprocess.TimeoutExpired:
                    continue


def _wait_for(condition: Callable[[], Any], timeout_s: float, what: str, interval_s: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval_s)


class GraphQL:
    def __init__(self, base: str) -> None:
        self.url = f"{base}/graphql"

    def __call__(self, query: str, **variables: Any) -> dict[str, Any]:
        response = requests.post(self.url, json={"query": query, "variables": variables}, timeout=30)
        response.raise_for_status()
        body = response.json()
        assert "errors" not in body, body["errors"]
        return body["data"]


def _wait_until_serving(base: str, gql: GraphQL, proc: subprocess.Popen[bytes], log: Path) -> None:
    """/server_info answers and the code location is LOADED (a load error fails at once, with its message)."""

    def location_loaded() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"dagster-webserver exited with {proc.returncode}:\n{_tail(log)}")
        try:
            if requests.get(f"{base}/server_info", timeout=5).status_code != 200:
                return False
            entries = gql(
                """{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus
                     locationOrLoadError { __typename ... on PythonError { message } } } } } }"""
            )["workspaceOrError"].get("locationEntries", [])
        except requests.RequestException:
            return False
        for entry in entries:
            loaded = entry["locationOrLoadError"]
            if loaded and loaded["__typename"] == "PythonError":
                raise AssertionError(f"code location {entry['name']} failed to load: {loaded['message']}")
        return any(e["name"] == "crypto_assets" and e["loadStatus"] == "LOADED" for e in entries)

    _wait_for(location_loaded, SERVER_TIMEOUT_S, "dagster-webserver to serve the crypto_assets code location")


def _stop_schedules(gql: GraphQL) -> list[str]:
    schedules = gql(
        """{ schedulesOrError(repositorySelector: {repositoryName: "__repository__",
                                                   repositoryLocationName: "crypto_assets"}) {
             ... on Schedules { results { name scheduleState { id status } } } } }"""
    )["schedulesOrError"]["results"]
    stopped = []
    for schedule in schedules:
        if schedule["scheduleState"]["status"] == "RUNNING":
            result = gql(
                """mutation($id: String) { stopRunningSchedule(id: $id) { __typename
                     ... on ScheduleStateResult { scheduleState { status } } ... on PythonError { message } } }""",
                id=schedule["scheduleState"]["id"],
            )["stopRunningSchedule"]
            assert result["__typename"] == "ScheduleStateResult", result
            stopped.append(schedule["name"])
    return stopped


def _isolated_copy(demo: PipelineEnv, root: Path) -> dict[str, str]:
    """The demo's instance and warehouse, copied: the UI may launch runs and stop schedules without side effects."""
    home = root / "dagster_home"
    shutil.copytree(demo.dagster_home, home)
    for source in demo.duckdb_path.parent.glob(demo.duckdb_path.name + "*"):  # the file and a possible .wal
        shutil.copy2(source, root / source.name)
    return {**demo.env, "DAGSTER_HOME": str(home), "CRYPTO_ASSETS_DUCKDB": str(root / demo.duckdb_path.name)}


# ------------------------------------------------------------------------------------------------ expectations


@dataclass
class Expected:
    """What the UI must show, read from the code (not from the UI) and from the demo bootstrap."""

    groups: dict[str, str]  # asset key -> group
    prices_checks: dict[str, tuple[bool, str]]  # check name -> (blocking, description)
    prices_columns: list[str]
    bootstrap_run: str


def _expected(demo: PipelineEnv) -> Expected:
    import dagster as dg

    from crypto_assets.definitions import defs
    from crypto_assets.schemas import dagster_table_schema

    graph = defs.resolve_asset_graph()
    prices = dg.AssetKey.from_user_string(PRICES)
    checks = {}
    for key in sorted(graph.asset_check_keys, key=lambda k: k.name):
        if key.asset_key == prices:
            spec = graph.get_check_spec(key)
            checks[key.name] = (spec.blocking, spec.description or "")
    found = re.search(r"^run ([0-9a-f-]{36}): SUCCESS$", demo.output, re.MULTILINE)  # type: ignore[attr-defined]
    assert found, "the demo bootstrap did not print `run <id>: SUCCESS`"
    return Expected(
        groups={key.to_user_string(): graph.get(key).group_name for key in graph.get_all_asset_keys()},
        prices_checks=checks,
        prices_columns=[column.name for column in dagster_table_schema("raw.prices").columns],
        bootstrap_run=found.group(1),
    )


# ------------------------------------------------------------------------------------------------ the test


def test_ui_shows_the_demo_and_launches_one_partition(demo_pipeline: PipelineEnv, tmp_path: Path) -> None:
    expected = _expected(demo_pipeline)
    assert MINIMUM_ASSET_GROUPS.items() <= expected.groups.items(), expected.groups
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    env = _isolated_copy(demo_pipeline, tmp_path)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    gql = GraphQL(base)
    web_log, daemon_log = tmp_path / "webserver.log", tmp_path / "daemon.log"
    webserver = [str(VENV_BIN / "dagster-webserver"), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)]
    daemon = [str(VENV_BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"]
    timings: dict[str, float] = {}
    started = time.monotonic()
    try:
        with _service(webserver, env, web_log) as web_proc:
            _wait_until_serving(base, gql, web_proc, web_log)
            timings["webserver ready"] = time.monotonic() - started
            assert {"hourly_refresh", "daily_finalize"} <= set(_stop_schedules(gql))
            with _service(daemon, env, daemon_log), sync_api.sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    UI(browser, base, gql, expected).run_all(timings)
                finally:
                    browser.close()
    finally:
        timings["total"] = time.monotonic() - started
        report = "\n".join(f"{name:<30} {seconds:6.1f} s" for name, seconds in timings.items())
        (ARTIFACTS / "timings.txt").write_text(report + "\n")
        print(report)
        for log in (web_log, daemon_log):
            if log.exists():
                shutil.copy(log, ARTIFACTS / log.name)


class UI:
    """One browser page over the webserver; each ``check_*`` visits a page, asserts, and saves a screenshot."""

    def __init__(self, browser: Any, base: str, gql: GraphQL, expected: Expected) -> None:
        self.context = browser.new_context(viewport=GRAPH_VIEWPORT)
        self.context.set_default_timeout(UI_TIMEOUT_MS)
        expect.set_options(timeout=UI_TIMEOUT_MS)
        self.page = self.context.new_page()
        # A fresh instance greets its first visitor with a newsletter modal: skip it whenever it shows up.
        self.page.add_locator_handler(
            self.page.get_by_text("Join the Dagster community"),
            lambda: self.page.get_by_role("button", name="Skip").click(),
        )
        self.base, self.gql, self.expected = base, gql, expected

    def run_all(self, timings: dict[str, float]) -> None:
        steps = [
            ("asset graph", self.check_asset_graph),
            ("asset catalog", self.check_catalog),
            ("raw/prices partitions", self.check_prices_partitions),
            ("raw/prices checks", self.check_prices_checks),
            ("raw/prices columns", self.check_prices_columns),
            ("runs", self.check_runs),
            ("launch 1 partition + run", self.launch_one_partition),
        ]
        try:
            for name, step in steps:
                started = time.monotonic()
                step()
                timings[name] = time.monotonic() - started
        except Exception:
            self.page.screenshot(path=ARTIFACTS / "failure.png")
            raise
        finally:
            self.context.close()

    def goto(self, path: str) -> Any:
        self.page.goto(f"{self.base}{path}")
        return self.page

    def shot(self, name: str, **options: Any) -> None:
        self.page.screenshot(path=ARTIFACTS / f"{name}.png", **options)

    # -------------------------------------------------------------------------------------------- pages

    def check_asset_graph(self) -> None:
        page = self.goto("/asset-groups")
        graph = page.locator("[data-svg-viewport]")
        groups = sorted(set(self.expected.groups.values()))
        for group in groups:  # collapsed group boxes first
            expect(graph.get_by_text(group, exact=True).first).to_be_visible()
        page.get_by_role("button", name="Hide navigation").click()
        graph.get_by_role("button", name="settings").click()
        expand = page.get_by_role("menuitem", name="Expand all groups")
        expect(expand.or_(page.get_by_role("menuitem", name="Collapse all groups"))).to_be_visible()
        if expand.is_visible():
            expand.click()
        page.keyboard.press("Escape")
        page.get_by_role("button", name="panel_show_right").click()  # hide the "Jump to…" asset sidebar
        box = graph.bounding_box()
        assert box is not None
        page.mouse.dblclick(box["x"] + 15, box["y"] + box["height"] - 15)  # on the background: zoom to fit
        for key in self.expected.groups:
            expect(graph.get_by_text(_node_name(key.split("/")[-1])).first).to_be_visible()
        for group in groups:
            expect(graph.get_by_text(group, exact=True).first).to_be_visible()
        _wait_still(graph.get_by_text(_node_name("training_set")).first)
        self.shot("asset_graph", clip=_frame_graph(page, graph))
        if os.environ.get("CRYPTO_ASSETS_UPDATE_DOCS_IMAGES") == "1":
            DOCS_IMAGE.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ARTIFACTS / "asset_graph.png", DOCS_IMAGE)
        page.set_viewport_size(PAGE_VIEWPORT)

    def check_catalog(self) -> None:
        page = self.goto("/assets")
        for key, group in self.expected.groups.items():
            expect(page.locator(f'a[href="/assets/{key}"]')).to_be_visible()
            # Each row links its group as /asset-groups~group:"<group>"/<url-encoded key>.
            in_group = page.locator(f'a[href$="/{quote(key, safe="")}"]').filter(has_text=re.compile(rf"^{group}$"))
            expect(in_group).to_be_visible()
        self.shot("asset_catalog")

    def check_prices_partitions(self) -> None:
        page = self.goto(f"/assets/{PRICES}?view=partitions")
        expect(page.get_by_text(f"Materialized ({DEMO_DAYS})", exact=True)).to_be_visible()
        expect(page.get_by_text("Failed (0)", exact=True)).to_be_visible()
        page.get_by_placeholder("Filter by name…").fill(LAUNCH_PARTITION)
        page.get_by_text(LAUNCH_PARTITION, exact=True).first.click()
        expect(page).to_have_url(re.compile(rf"[?&]partition={LAUNCH_PARTITION}"))
        expect(page.get_by_text("Materialized", exact=True).first).to_be_visible()
        expect(page.get_by_role("link", name=self.expected.bootstrap_run[:8])).to_be_visible()  # written by it
        self.shot("prices_partitions")

    def check_prices_checks(self) -> None:
        page = self.goto(f"/assets/{PRICES}?view=checks")
        checks = self.expected.prices_checks
        expect(page.get_by_text(f"Checks ({len(checks)})", exact=True)).to_be_visible()
        for name, (blocking, _) in checks.items():
            expect(page.get_by_text(name, exact=True).first).to_be_visible()
            if blocking:  # a failed blocking check would have failed the bootstrap run
                expect(page.locator("span", has_text=name).filter(has_text="Succeeded").first).to_be_visible()
        page.get_by_text("ohlc_consistency", exact=True).first.click()
        expect(page.get_by_text(checks["ohlc_consistency"][1], exact=True)).to_be_visible()
        expect(page.get_by_text("blocking", exact=True).first).to_be_visible()  # "This is a blocking asset check."
        expect(page.get_by_text("Passed", exact=True).first).to_be_visible()
        self.shot("prices_checks")

    def check_prices_columns(self) -> None:
        page = self.goto(f"/assets/{PRICES}?view=overview")
        table = page.locator("table").filter(has_text="Column name")
        expect(table.locator("tr td:first-child")).to_have_text(["Column name", *self.expected.prices_columns])
        provider = table.locator("tr").filter(has=page.get_by_text("provider", exact=True))
        expect(provider).to_contain_text("VARCHAR")
        expect(provider).to_contain_text("price provider that served the bar")
        table.scroll_into_view_if_needed()
        self.shot("prices_columns")

    def check_runs(self) -> None:
        page = self.goto("/runs")
        expect(page.get_by_role("link", name=self.expected.bootstrap_run[:8])).to_be_visible()
        expect(page.get_by_text("bootstrap", exact=True).first).to_be_visible()
        self.shot("runs")
        self.expect_successful_run(self.expected.bootstrap_run)

    def expect_successful_run(self, run_id: str) -> None:
        """The run is listed under the runs page's "status is Success" filter."""
        page = self.goto("/runs?q[]=status:SUCCESS")
        expect(page.get_by_text("Status is")).to_be_visible()
        expect(page.get_by_role("link", name=run_id[:8])).to_be_visible()

    def launch_one_partition(self) -> None:
        page = self.goto(f"/assets/{PRICES}")
        page.get_by_role("button", name="Materialize…").click()
        dialog = page.get_by_role("dialog")
        # The dialog opens on the last 90 days (all missing here); the demo days are years older.
        dialog.get_by_text("Show all partitions").click()
        expect(dialog.get_by_role("button", name=re.compile("^All time"))).to_be_visible()
        selection = dialog.locator("input[type=text]").first
        selection.fill(LAUNCH_PARTITION)
        selection.press("Enter")
        expect(dialog.get_by_text("1 partition", exact=True)).to_be_visible()
        launch = dialog.get_by_role("button", name="Launch 1 run")
        expect(launch).to_be_enabled()
        self.shot("launch_dialog")
        launch.click()
        toast = page.get_by_text(re.compile(r"^Launched run [0-9a-f]{8}$"))
        expect(toast).to_be_visible()
        short_id = toast.inner_text().split()[-1]

        run = self.wait_for_run(short_id)
        assert run["status"] == "SUCCESS", f"run {run['runId']} ended {run['status']}; see {ARTIFACTS}/daemon.log"
        assert {"key": "dagster/partition", "value": LAUNCH_PARTITION} in run["tags"]
        materialized = {("/".join(m["assetKey"]["path"]), m["partition"]) for m in run["assetMaterializations"]}
        assert materialized == {(PRICES, LAUNCH_PARTITION)}, materialized

        page = self.goto(f"/runs/{run['runId']}")
        expect(page.get_by_text("Success", exact=True).first).to_be_visible()
        expect(page.get_by_text(f"partition: {LAUNCH_PARTITION}")).to_be_visible()
        expect(page.get_by_text("RUN_SUCCESS", exact=True).first).to_be_visible()
        self.shot("launched_run")

        page = self.goto(f"/assets/{PRICES}?view=partitions&partition={LAUNCH_PARTITION}")
        expect(page.get_by_role("link", name=short_id)).to_be_visible()  # now the partition's latest writer
        self.expect_successful_run(run["runId"])
        page = self.goto("/runs")
        expect(page.get_by_role("link", name=short_id)).to_be_visible()
        self.shot("runs_after_launch")

    def wait_for_run(self, short_id: str) -> dict[str, Any]:
        """The launched run once it ends: queued, dequeued by the daemon, executed by a run worker it spawns."""
        runs = self.gql(
            """query($partition: String!) {
                 runsOrError(filter: {tags: [{key: "dagster/partition", value: $partition}]}) {
                   ... on Runs { results { runId } } } }""",
            partition=LAUNCH_PARTITION,
        )["runsOrError"]["results"]
        run_id = next(run["runId"] for run in runs if run["runId"].startswith(short_id))

        def ended() -> dict[str, Any] | None:
            run = self.gql(
                """query($runId: ID!) { runOrError(runId: $runId) { ... on Run { runId status
                     tags { key value } assetMaterializations { assetKey { path } partition } } } }""",
                runId=run_id,
            )["runOrError"]
            return run if run["status"] in {"SUCCESS", "FAILURE", "CANCELED"} else None

        return _wait_for(ended, RUN_TIMEOUT_S, f"run {short_id} to end", interval_s=1.0)


# ------------------------------------------------------------------------------------------------ graph helpers


def _node_name(name: str) -> re.Pattern[str]:
    """An asset's name on a graph node: in full, or middle-truncated ("techni…_indicators") at small zoom."""
    return re.compile(rf"^({re.escape(name)}|{re.escape(name[:4])}\S*…\S*{re.escape(name[-4:])})$")


def _wait_still(locator: Any, timeout_s: float = 10) -> None:
    """Until the element stops moving (zoom-to-fit is animated)."""
    last: list[Any] = [None]

    def still() -> bool:
        box = locator.bounding_box()
        settled = box is not None and box == last[0]
        last[0] = box
        return settled

    _wait_for(still, timeout_s, "the asset graph to settle", interval_s=0.25)


def _graph_bounds(graph: Any) -> dict[str, float]:
    """The page rectangle holding every node and group box."""
    return graph.evaluate(
        """vp => {
            const r = [...vp.querySelectorAll("svg foreignObject")].map(e => e.getBoundingClientRect())
                .filter(b => b.width > 0);
            return {left: Math.min(...r.map(b => b.left)), top: Math.min(...r.map(b => b.top)),
                    right: Math.max(...r.map(b => b.right)), bottom: Math.max(...r.map(b => b.bottom))};
        }"""
    )


def _frame_graph(page: Any, graph: Any, margin: float = 24) -> dict[str, float]:
    """Pan the graph out from under the toolbar (zoom-to-fit ignores it); return a clip around the graph."""
    box = graph.bounding_box()
    toolbar = page.get_by_role("button", name="Materialize all").bounding_box()
    assert box is not None and toolbar is not None
    pane_top, pane_bottom = toolbar["y"] + toolbar["height"] + 12, box["y"] + box["height"]
    bounds = _graph_bounds(graph)
    shift = pane_top + margin - bounds["top"]
    if shift > 0 and bounds["bottom"] + shift + margin <= pane_bottom:  # drag the background down by `shift`
        x, y = box["x"] + 15, box["y"] + box["height"] - 15 - shift
        page.mouse.move(x, y)
        page.mouse.down()
        page.mouse.move(x, y + shift, steps=5)
        page.mouse.up()
        target = bounds["top"] + shift
        _wait_for(lambda: abs(_graph_bounds(graph)["top"] - target) < 1, 5, "the graph to pan")
        bounds = _graph_bounds(graph)
    left, top = max(box["x"], bounds["left"] - margin), max(pane_top, bounds["top"] - margin)
    right, bottom = min(box["x"] + box["width"], bounds["right"] + margin), min(pane_bottom, bounds["bottom"] + margin)
    return {"x": left, "y": top, "width": right - left, "height": bottom - top}
