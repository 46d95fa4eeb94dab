"""Benchmark: the bootstrap backfill (90 UTC days x 6 symbols) against the Dagster floor, and where its time goes.

    .venv/bin/python benchmarks/bootstrap.py [--repeat 3] [--profile] [--only floor,shape,prices,full,limited]
    .venv/bin/python benchmarks/bootstrap.py --rate-limits on [--repeat 1]

Five measurements, each in its own fresh subprocess with its own temp DAGSTER_HOME (a copy of the repo's
dagster.yaml: SQLite run/event storage) and its own temp DuckDB file, all against one ReplayServer that this
script starts (bundled real data over local HTTP, with the server's environment: client-side rate limits off,
as in ``make demo``; retries, timeouts and circuit breakers apply):

- floor:  one trivial asset (returns a MaterializeResult, no I/O) with the same daily partitions and
          ``BackfillPolicy.single_run()``, over the same 90 partitions, run by ``execute_in_process`` with the
          bootstrap's tags on a fresh instance of the same kind. What Dagster alone costs for such a run. Its
          process starts and exits as the CLI's does (Python's defaults, ``sys.exit``).
- shape:  the floor with 8 trivial partitioned assets in a chain instead of one: the bootstrap's asset count
          (7 partitioned + the training set) without any work, i.e. Dagster's per-asset, per-partition
          bookkeeping (planned and materialization events, steps). No goal: it splits the ratio.
- prices: only raw/prices (its asset checks come along, as in any asset selection) over the 90 days x 6
          symbols: ``crypto-assets bootstrap`` itself (CLI and ``run_bootstrap``: same instance, job, tags, run
          config, summary) with ``asset_selection=[AssetKey(["raw", "prices"])]`` added to its
          ``execute_in_process`` call (this script's ``--child prices`` entry wraps that method).
- full:   exactly ``python -m crypto_assets bootstrap --start 2022-05-04 --end 2022-08-01``.
- limited: the same with ``CRYPTO_ASSETS_RATE_LIMITS=on``: every provider's client-side rate limit applies, as
          live (GDELT: one request per 5 s). Its HTTP table gives the least time the providers' published limits
          allow for the run's requests; goal: the measured wall time within 1.3x of that least time.
          ``--rate-limits on`` measures this one alone.

Per measurement: wall time from subprocess start to exit; the run's own time from the instance (first event
of the run, i.e. run creation, to the run's end; "exec" = PIPELINE_START to end); the child's CPU time and
peak RSS (``os.wait4`` on that child: its own rusage, never another process's); "others", the CPU cores other
processes of the machine used meanwhile (from /proc/stat: noise, 0 on a quiet machine). Before each
measurement the script waits (``--wait-idle``, ``--wait-max``) for the machine to be idle. Each measurement
is repeated ``--repeat`` times (interleaved); the table shows median and min, then prices/floor (goal <= 2x),
full/floor (goal <= 3x), shape/floor and limited/floor (for reference).

Then: the phases of each run (startup, planning = the ASSET_MATERIALIZATION_PLANNED events written while the
run is created, steps, exit); the per-step durations of the last full run from its STEP_START / STEP_OUTPUT /
STEP_SUCCESS events ("compute" = the step's own code up to its output, "events" = the materialization events
Dagster writes after it, one per partition); the last limited run's HTTP requests and the least time the rate
limiters allow for them. ``--profile`` also runs the full bootstrap once under cProfile and prints where the time went
(event-log writes, HTTP and rate-limit waits, pandera, DuckDB, quality scores, imports).

Experiments: ``--dagster-yaml PATH`` (another instance config), ``--env KEY=VALUE`` (e.g.
``DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS=1``), ``--json PATH`` (all samples).
"""

import argparse
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from crypto_assets.replay.server import ReplayServer

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

DEFAULT_START = "2022-05-04"
DEFAULT_END = "2022-08-01"
KINDS = ("floor", "shape", "prices", "full", "limited")
GOALS = {"shape": None, "prices": 2.0, "full": 3.0, "limited": None}  # x the floor's wall time; None: no goal
NO_GOAL = {"shape": "no goal: Dagster's bookkeeping for 8 assets", "limited": "no goal: the providers' rate limits"}
SHAPE_ASSETS = 8
# The replay server's env turns the client-side rate limits off; "limited" turns them back on, as live.
PROFILED_CLI = (
    "import cProfile, sys; from crypto_assets.cli import main; cProfile.run('main(sys.argv[2:])', sys.argv[1])"
)
KIND_ENV = {"limited": {"CRYPTO_ASSETS_RATE_LIMITS": "on"}}
PARTITIONS_START = "2022-01-01"  # the same as crypto_assets.defs.common (not imported: the floor stays pure Dagster)


# ------------------------------------------------------------------------------------ child entries


def child_prices(start: str, end: str) -> NoReturn:
    """``crypto-assets bootstrap`` itself (CLI, run_bootstrap), with ``asset_selection=[raw/prices]`` injected.

    Wrapping ``JobDefinition.execute_in_process`` keeps everything else exactly as in the full bootstrap:
    instance, job, tags, run config, the warehouse check before and the summary after.
    """
    import dagster as dg

    from crypto_assets.cli import main as cli_main

    original = dg.JobDefinition.execute_in_process

    def prices_only(self: dg.JobDefinition, *args: object, **kwargs: object) -> dg.ExecuteInProcessResult:
        kwargs.setdefault("asset_selection", [dg.AssetKey(["raw", "prices"])])
        return original(self, *args, **kwargs)  # type: ignore[arg-type]

    dg.JobDefinition.execute_in_process = prices_only  # type: ignore[method-assign]
    sys.exit(cli_main(["bootstrap", "--start", start, "--end", end]))  # and exits as the console script does


def child_floor(start: str, end: str, assets: int = 1) -> NoReturn:
    """Trivial partitioned assets (a chain of ``assets``; 1 by default), single-run backfill, run like the bootstrap.

    The process starts and ends as the CLI's does (Python's defaults, ``sys.exit`` with the run's outcome): both
    sides pay the interpreter's start-up and teardown.
    """
    import dagster as dg

    partitions = dg.DailyPartitionsDefinition(start_date=PARTITIONS_START, end_offset=1)

    def trivial(number: int) -> dg.AssetsDefinition:
        @dg.asset(
            key=["bench", f"floor_{number}"] if assets > 1 else ["bench", "floor"],
            deps=[dg.AssetKey(["bench", f"floor_{number - 1}"])] if number > 1 else [],
            partitions_def=partitions,
            backfill_policy=dg.BackfillPolicy.single_run(),
        )
        def floor_asset() -> dg.MaterializeResult:
            return dg.MaterializeResult()

        return floor_asset

    floor_assets = [trivial(number) for number in range(1, assets + 1)]
    defs = dg.Definitions(
        assets=floor_assets, jobs=[dg.define_asset_job("bootstrap_floor", selection=dg.AssetSelection.all())]
    )
    result = defs.resolve_job_def("bootstrap_floor").execute_in_process(
        instance=dg.DagsterInstance.get(),
        tags={  # the partition-range and command tags of crypto_assets.bootstrap.run_bootstrap
            "dagster/asset_partition_range_start": start,
            "dagster/asset_partition_range_end": end,
            "crypto_assets/command": "bootstrap",
        },
        run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
        raise_on_error=False,
    )
    print(f"run {result.run_id}: {'SUCCESS' if result.success else 'FAILURE'}", flush=True)
    sys.exit(0 if result.success else 1)


# ------------------------------------------------------------------------------------ run analysis


@dataclass
class Step:
    key: str
    start: float  # s after the run was created
    total: float  # STEP_START -> STEP_SUCCESS/FAILURE
    compute: float  # STEP_START -> first STEP_OUTPUT (the step's own code, its log lines included)
    events: float  # first STEP_OUTPUT -> end (the materialization/check events written after the output)
    materializations: int
    event_count: int
    ok: bool


@dataclass
class RunInfo:
    run_id: str
    status: str
    created: float  # epoch of the run's first event (planned events are written while the run is created)
    started: float  # PIPELINE_START
    ended: float  # PIPELINE_SUCCESS / PIPELINE_FAILURE
    event_count: int
    event_types: dict[str, int]
    steps: list[Step] = field(default_factory=list)

    @property
    def run_s(self) -> float:
        return self.ended - self.created

    @property
    def exec_s(self) -> float:
        return self.ended - self.started


def read_run(dagster_home: Path) -> RunInfo | None:
    """The one run recorded in ``dagster_home``: its timings and per-step durations from the event log."""
    import dagster as dg

    previous = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(dagster_home)  # instance configs may read it ({env: DAGSTER_HOME})
    try:
        with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
            runs = instance.get_runs()
            if not runs:
                return None
            run = runs[0]
            records = instance.all_logs(run.run_id)
    finally:
        if previous is None:
            os.environ.pop("DAGSTER_HOME", None)
        else:
            os.environ["DAGSTER_HOME"] = previous
    types: dict[str, int] = {}
    marks: dict[str, float] = {}
    per_step: dict[str, dict[str, object]] = {}
    for record in records:
        event = record.dagster_event
        kind = event.event_type_value if event is not None else "LOG_MESSAGE"
        types[kind] = types.get(kind, 0) + 1
        if kind in ("PIPELINE_START", "PIPELINE_SUCCESS", "PIPELINE_FAILURE", "PIPELINE_CANCELED"):
            marks[kind] = record.timestamp
        if not record.step_key or kind == "ASSET_MATERIALIZATION_PLANNED":
            continue
        step = per_step.setdefault(record.step_key, {"materializations": 0, "events": 0})
        step["events"] = int(step["events"]) + 1
        if kind == "STEP_START":
            step["start"] = record.timestamp
        elif kind == "STEP_OUTPUT":
            step.setdefault("output", record.timestamp)
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE"):
            step["end"] = record.timestamp
            step["ok"] = kind == "STEP_SUCCESS"
        elif kind == "ASSET_MATERIALIZATION":
            step["materializations"] = int(step["materializations"]) + 1
    created = records[0].timestamp if records else 0.0
    ended = next((marks[k] for k in ("PIPELINE_SUCCESS", "PIPELINE_FAILURE", "PIPELINE_CANCELED") if k in marks), 0.0)
    info = RunInfo(
        run_id=run.run_id,
        status=run.status.value,
        created=created,
        started=marks.get("PIPELINE_START", created),
        ended=ended or (records[-1].timestamp if records else 0.0),
        event_count=len(records),
        event_types=dict(sorted(types.items(), key=lambda kv: -kv[1])),
    )
    for key, data in per_step.items():
        if "start" not in data:
            continue
        start, end = float(data["start"]), float(data.get("end", data["start"]))
        output = float(data.get("output", end))
        info.steps.append(
            Step(
                key=key,
                start=start - created,
                total=end - start,
                compute=output - start,
                events=end - output,
                materializations=int(data["materializations"]),
                event_count=int(data["events"]),
                ok=bool(data.get("ok", False)),
            )
        )
    info.steps.sort(key=lambda s: s.start)
    return info


# ------------------------------------------------------------------------------------ measuring


@dataclass
class Sample:
    kind: str
    wall_s: float
    cpu_s: float
    maxrss_mb: float
    returncode: int
    spawned: float  # epoch just before the subprocess was started
    exited: float
    others_cores: float  # mean CPU cores used by OTHER processes during the measurement (noise indicator)
    http_requests: dict[str, int]  # served by the replay server during the measurement, per provider
    run: RunInfo | None
    workdir: str


def system_busy_seconds() -> float:
    """CPU seconds all processes of the machine spent busy so far (/proc/stat), or -inf when unknown."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return float("-inf")
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    """This process's CPU (the replay server's threads answer the children's requests from here)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def wait_for_idle(idle_percent: float, max_wait: float, window: float = 3.0) -> None:
    """Wait until the machine was at least ``idle_percent`` idle over ``window`` s (other sessions' load)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    deadline = time.monotonic() + max_wait
    while True:
        before = system_busy_seconds()
        time.sleep(window)
        idle = 100.0 * (1 - (system_busy_seconds() - before) / (window * cores))
        if idle >= idle_percent:
            return
        if time.monotonic() >= deadline:
            print(f"  (machine still only {idle:.0f}% idle after {max_wait:.0f} s: measuring anyway)", flush=True)
            return


def child_command(kind: str, start: str, end: str, *, profile_to: Path | None = None) -> list[str]:
    if kind in ("full", "limited"):
        bootstrap = ["bootstrap", "--start", start, "--end", end]
        if profile_to:  # cProfile around cli.main(), which returns its exit code
            return [sys.executable, "-c", PROFILED_CLI, str(profile_to), *bootstrap]
        return [sys.executable, "-m", "crypto_assets", *bootstrap]
    child = "prices" if kind == "prices" else "floor"
    command = [sys.executable, str(Path(__file__).resolve()), "--child", child, "--start", start, "--end", end]
    return [*command, "--floor-assets", str(SHAPE_ASSETS if kind == "shape" else 1)] if child == "floor" else command


def child_env(server_env: dict[str, str], home: Path, duckdb_path: Path, extra: dict[str, str]) -> dict[str, str]:
    """As the tests' pipeline env: no inherited CRYPTO_ASSETS_*/DAGSTER_* settings, the replay server's URLs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRYPTO_ASSETS_", "DAGSTER_"))}
    env.update(server_env)
    env.update({"DAGSTER_HOME": str(home), "CRYPTO_ASSETS_DUCKDB": str(duckdb_path), "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


def measure(
    kind: str,
    server: "ReplayServer",
    args: argparse.Namespace,
    root: Path,
    *,
    profile_to: Path | None = None,
) -> Sample:
    workdir = Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=root))
    home = workdir / "dagster_home"
    home.mkdir()
    shutil.copy(args.dagster_yaml, home / "dagster.yaml")
    env = child_env(server.env(), home, workdir / "crypto.duckdb", {**KIND_ENV.get(kind, {}), **dict(args.env)})
    command = child_command(kind, args.start, args.end, profile_to=profile_to)
    if args.wait_idle:
        wait_for_idle(args.wait_idle, args.wait_max)
    server.reset_stats()
    with open(workdir / "stdout.txt", "wb") as out, open(workdir / "stderr.txt", "wb") as err:
        busy_before, own_before = system_busy_seconds(), _own_cpu_seconds()
        spawned = time.time()
        began = time.monotonic()
        proc = subprocess.Popen(command, env=env, cwd=REPO_ROOT, stdout=out, stderr=err)
        try:
            _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage, reaped here
        except BaseException:  # Ctrl-C / SIGTERM: do not leave the child running
            proc.kill()
            proc.wait()
            raise
        wall = time.monotonic() - began
        exited = time.time()
        busy, own = system_busy_seconds() - busy_before, _own_cpu_seconds() - own_before
    proc.returncode = os.waitstatus_to_exitcode(status)
    child_cpu = usage.ru_utime + usage.ru_stime
    sample = Sample(
        kind=kind,
        wall_s=wall,
        cpu_s=child_cpu,
        maxrss_mb=usage.ru_maxrss / 1024,  # KiB on Linux
        returncode=proc.returncode,
        spawned=spawned,
        exited=exited,
        others_cores=max(0.0, (busy - child_cpu - own) / wall) if busy >= 0 else float("nan"),
        http_requests={provider: n for provider, n in server.stats().items() if n},
        run=read_run(home),
        workdir=str(workdir),
    )
    if sample.returncode != 0:
        tail = (workdir / "stderr.txt").read_text(errors="replace")[-3000:]
        print(f"  !! {kind} exited {sample.returncode}; stderr tail:\n{tail}", file=sys.stderr)
    return sample


# ------------------------------------------------------------------------------------ reporting


def machine() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / 1024**2:.1f} GiB"
                break
    except OSError:
        pass
    versions = {"python": platform.python_version()}
    for package in ("dagster", "duckdb", "pandas", "pandera"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return {
        "nproc": str(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()),
        "cpu": cpu,
        "memory": memory,
        "os": f"{platform.system()} {platform.release()}",
        "load_1m_at_start": f"{os.getloadavg()[0]:.2f}",
        **versions,
    }


def _fmt(values: Sequence[float], digits: int = 1) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):.{digits}f} / {min(values):.{digits}f}"


def print_summary(samples: list[Sample], kinds: Sequence[str]) -> dict[str, dict[str, float]]:
    headers = ["measurement", "wall s", "run s", "exec s", "cpu s", "peak RSS MB", "events", "others", "n"]
    rows = []
    medians: dict[str, dict[str, float]] = {}
    for kind in kinds:
        mine = [s for s in samples if s.kind == kind]
        if not mine:
            continue
        runs = [s.run for s in mine if s.run is not None]
        walls = [s.wall_s for s in mine]
        medians[kind] = {
            "wall_s": statistics.median(walls),
            "wall_min_s": min(walls),
            "run_s": statistics.median([r.run_s for r in runs]) if runs else float("nan"),
            "exec_s": statistics.median([r.exec_s for r in runs]) if runs else float("nan"),
            "cpu_s": statistics.median([s.cpu_s for s in mine]),
            "maxrss_mb": statistics.median([s.maxrss_mb for s in mine]),
        }
        failed = sum(1 for s in mine if s.returncode != 0 or (s.run and s.run.status != "SUCCESS"))
        rows.append(
            [
                kind + (f" ({failed} FAILED)" if failed else ""),
                _fmt(walls),
                _fmt([r.run_s for r in runs]),
                _fmt([r.exec_s for r in runs]),
                _fmt([s.cpu_s for s in mine]),
                _fmt([s.maxrss_mb for s in mine], 0),
                str(runs[-1].event_count) if runs else "-",
                f"{statistics.median([s.others_cores for s in mine]):.2f}",
                str(len(mine)),
            ]
        )
    print("\nmedian / min over the repeats (wall: subprocess start to exit; run: run created to run end;")
    print("exec: PIPELINE_START to run end; cpu: the child's user+sys; events: rows in the run's event log;")
    print("others: mean CPU cores busy with OTHER processes meanwhile, i.e. noise; 0 on a quiet machine)")
    _table(headers, rows)
    if "floor" in medians:
        floor = medians["floor"]
        print("\nratios to the floor (wall and run on the medians, min wall on the minima, cpu on the medians):")
        for kind, goal in GOALS.items():
            if kind in medians:
                mine = medians[kind]
                wall = mine["wall_s"] / floor["wall_s"]
                if goal is None:
                    verdict = NO_GOAL[kind]
                else:
                    verdict = f"goal <= {goal:g}x on wall: " + ("meets" if wall <= goal else "MISSES")
                print(
                    f"  {kind}/floor  wall {wall:5.2f}x   min wall {mine['wall_min_s'] / floor['wall_min_s']:5.2f}x"
                    f"   run {mine['run_s'] / floor['run_s']:5.2f}x   cpu {mine['cpu_s'] / floor['cpu_s']:5.2f}x"
                    f"   ({verdict})"
                )
        if "shape" in medians and "full" in medians:
            shape, full = medians["shape"], medians["full"]
            print(
                f"  full/shape  wall {full['wall_s'] / shape['wall_s']:5.2f}x   min wall "
                f"{full['wall_min_s'] / shape['wall_min_s']:5.2f}x   (the work on top of the same Dagster bookkeeping)"
            )
    return medians


def _table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(x)) for x in column) for column in zip(headers, *rows, strict=True)]
    line = "  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths, strict=True)))
    print(line)
    print("-" * len(line))
    for row in rows:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))))


def print_phases(samples: list[Sample], kinds: Sequence[str]) -> None:
    """Where the wall time of each kind goes, outside and inside the run (medians)."""
    headers = ["measurement", "startup s", "planning s", "steps s", "after run s", "planned events", "mat. events"]
    rows = []
    for kind in kinds:
        mine = [s for s in samples if s.kind == kind and s.run is not None]
        if not mine:
            continue
        startup = [s.run.created - s.spawned for s in mine]  # type: ignore[union-attr]
        planning = [s.run.started - s.run.created for s in mine]  # type: ignore[union-attr]
        steps = [s.run.exec_s for s in mine]  # type: ignore[union-attr]
        after = [s.exited - s.run.ended for s in mine]  # type: ignore[union-attr]
        last = mine[-1].run
        assert last is not None
        rows.append(
            [
                kind,
                f"{statistics.median(startup):.1f}",
                f"{statistics.median(planning):.1f}",
                f"{statistics.median(steps):.1f}",
                f"{statistics.median(after):.1f}",
                str(last.event_types.get("ASSET_MATERIALIZATION_PLANNED", 0)),
                str(last.event_types.get("ASSET_MATERIALIZATION", 0)),
            ]
        )
    print("\nphases (medians): startup = process start to run creation (imports, definitions, instance);")
    print("planning = run creation to PIPELINE_START (ASSET_MATERIALIZATION_PLANNED events, one per asset partition);")
    print("steps = PIPELINE_START to run end; after run = run end to exit (bootstrap summary, interpreter exit)")
    _table(headers, rows)


def print_steps(run: RunInfo, title: str) -> None:
    rows = []
    for step in run.steps:
        rows.append(
            [
                step.key + ("" if step.ok else " (FAILED)"),
                f"{step.start:.1f}",
                f"{step.total:.2f}",
                f"{step.compute:.2f}",
                f"{step.events:.2f}",
                str(step.materializations),
                str(step.event_count),
            ]
        )
    asset_steps = [s for s in run.steps if s.materializations]
    check_steps = [s for s in run.steps if not s.materializations]
    planned = run.event_types.get("ASSET_MATERIALIZATION_PLANNED", 0)
    planning = run.started - run.created
    print(f"\n{title}: run {run.run_id} {run.status}, {run.event_count} events, run {run.run_s:.1f} s")
    print("(start: s after run creation; compute: STEP_START to STEP_OUTPUT; events: STEP_OUTPUT to STEP_SUCCESS)")
    _table(["step", "start", "total s", "compute s", "events s", "mats", "events"], rows)
    mats = sum(s.materializations for s in asset_steps)
    mat_time = sum(s.events for s in asset_steps)
    print(f"  planning (before PIPELINE_START): {planning:6.1f} s for {planned} planned events")
    if planned:
        print(f"{'':36}= {1000 * planning / planned:.2f} ms per planned event")
    print(f"  asset steps, own code:            {sum(s.compute for s in asset_steps):6.1f} s")
    print(f"  asset steps, after the output:    {mat_time:6.1f} s for {mats} materialization events", end="")
    print(f" = {1000 * mat_time / mats:.2f} ms each" if mats else "")
    print(f"  asset-check steps ({len(check_steps):2d}):            {sum(s.total for s in check_steps):6.1f} s")
    gaps = run.exec_s - sum(s.total for s in run.steps)
    print(f"  between steps / run start + end:  {gaps:6.1f} s")


def rate_limits() -> dict[str, tuple[float, float]]:
    """(requests per second, burst) of each provider's process-wide limiter (token bucket), from the registry."""
    from crypto_assets.providers import registry

    return {spec.name: (spec.rate_limit.per_second, spec.rate_limit.burst) for spec in registry.all_providers()}


# raw/news fetches its providers concurrently; every other request of a run waits for the one before it.
CONCURRENT_NEWS = ("gdelt", "rss", "newsapi")


RATE_LIMITED_GOAL = 1.3  # the limited bootstrap's wall time / the least time the providers' limits allow


def print_http(sample: Sample, floor_wall_s: float | None) -> float:
    """The HTTP requests of one run, the least time the rate limiters allow for them, and what that means
    for the goals: that least time is spent in every bootstrap, however fast the rest. Returns the least time."""
    limits = rate_limits()
    rows, sequential, concurrent = [], 0.0, 0.0
    for provider, count in sorted(sample.http_requests.items()):
        rate, burst = limits.get(provider, (0.0, 1.0))
        least = max(0.0, count - burst) / rate if rate else 0.0
        if provider in CONCURRENT_NEWS:
            concurrent = max(concurrent, least)
        else:
            sequential += least
        rows.append([provider, str(count), f"{rate:g}" if rate else "?", f"{burst:g}", f"{least:.1f}"])
    print(f"\nHTTP requests of the last {sample.kind} run (replay server count), the least time the providers'")
    print("rate limiters allow for them (all but the first `burst` requests spaced at the rate):")
    _table(["provider", "requests", "limit /s", "burst", "least s"], rows)
    floor = sequential + concurrent
    print(
        f"  rate-limit floor of the run's HTTP: ~{floor:.1f} s (the news providers concurrently: "
        f"{concurrent:.1f} s; the price requests one after another: {sequential:.1f} s)"
    )
    if floor_wall_s:
        print(
            f"  = {floor / floor_wall_s:.2f}x the Dagster floor's wall time before any startup, Dagster or pipeline "
            f"work; this run's wall time without it: {(sample.wall_s - floor) / floor_wall_s:.2f}x"
        )
    if floor > 0:
        ratio = sample.wall_s / floor
        verdict = "met" if ratio <= RATE_LIMITED_GOAL else "MISSED"
        print(
            f"  measured {sample.wall_s:.1f} s = {ratio:.2f}x that least time (goal <= {RATE_LIMITED_GOAL}x: {verdict})"
        )
    return floor


# (label, path suffix, function name); cumulative times, so nested entries overlap their parents.
HOTSPOTS: tuple[tuple[str, str, str], ...] = (
    ("Dagster event-log writes, SQLite (store_event)", "event_log/sqlite/sqlite_event_log.py", "store_event"),
    ("Dagster event-log writes, PostgreSQL (store_event)", "dagster_postgres/event_log/event_log.py", "store_event"),
    ("  of which planned events at run creation", "instance/runs/run_domain.py", "_log_asset_planned_events"),
    ("  of which asset-event index writes", "event_log/sql_event_log.py", "_store_asset_event"),
    ("  SQLite connections (a new one per write)", "event_log/sqlite/sqlite_event_log.py", "_connect"),
    ("  sqlite3 commit (fsync)", "~", "<method 'commit' of 'sqlite3.Connection' objects>"),
    ("  SQLAlchemy statement compile", "sqlalchemy/sql/elements.py", "_compile_w_cache"),
    ("HTTP requests (incl. retries)", "crypto_assets/http.py", "_attempt"),
    ("HTTP rate-limiter waits", "crypto_assets/http.py", "_throttle"),
    ("pandera validation (validate_frame)", "crypto_assets/schemas.py", "validate_frame"),
    ("DuckDB writes (replace_rows)", "crypto_assets/warehouse.py", "replace_rows"),
    ("DuckDB writes (replace_table)", "crypto_assets/warehouse.py", "replace_table"),
    ("Parquet export", "crypto_assets/warehouse.py", "export_parquet"),
    ("DuckDB reads (read_window)", "crypto_assets/warehouse.py", "read_window"),
    ("quality scores (partition_scores)", "crypto_assets/transforms/quality.py", "partition_scores"),
    ("news normalisation", "crypto_assets/transforms/news.py", "normalize_news"),
    ("article sentiment scoring", "crypto_assets/transforms/sentiment.py", "score_articles"),
    ("technical indicators", "crypto_assets/transforms/indicators.py", "technical_indicators"),
    ("feature vectors", "crypto_assets/transforms/features.py", "build_feature_vectors"),
    ("module imports (incl. lazy ones)", "<frozen importlib._bootstrap>", "_find_and_load"),
    ("loading the definitions", "crypto_assets/definitions.py", "<module>"),
)


def print_profile(path: Path, top: int = 15) -> None:
    import pstats

    stats = pstats.Stats(str(path))
    raw = stats.stats  # type: ignore[attr-defined]
    total = max((ct for (_, _, _, ct, _) in raw.values()), default=0.0)

    def cumulative(suffix: str, name: str) -> tuple[float, int]:
        ct, calls = 0.0, 0
        for (filename, _, function), (_, nc, _, c, _) in raw.items():
            if function == name and filename.endswith(suffix):
                ct += c
                calls += nc
        return ct, calls

    print(f"\ncProfile of one full bootstrap (main thread, {total:.1f} s under the profiler, which inflates")
    print("Python-heavy code ~1.3-2x; read shares, not absolute times):")
    rows = []
    for label, suffix, name in HOTSPOTS:
        ct, calls = cumulative(suffix, name)
        if calls:
            rows.append([label, f"{ct:.1f}", f"{100 * ct / total:.0f}%", str(calls)])
    _table(["where", "cum s", "share", "calls"], rows)

    project = [
        (c, nc, f"{Path(f).relative_to(REPO_ROOT)}:{line}({fn})")
        for (f, line, fn), (_, nc, _, c, _) in raw.items()
        if f.startswith(str(REPO_ROOT / "crypto_assets")) and fn not in ("<module>", "<listcomp>", "<lambda>")
    ]
    project.sort(reverse=True)
    print(f"\ntop {top} project functions by cumulative time:")
    _table(["function", "cum s", "calls"], [[name, f"{c:.1f}", str(nc)] for c, nc, name in project[:top]])

    own = sorted(
        ((tt, nc, f"{Path(f).name}:{line}({fn})") for (f, line, fn), (_, nc, tt, _, _) in raw.items()), reverse=True
    )
    print(f"\ntop {top} functions by own time (tottime):")
    _table(["function", "own s", "calls"], [[name, f"{tt:.1f}", str(nc)] for tt, nc, name in own[:top]])


# ------------------------------------------------------------------------------------ main


def _env_pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--env {text!r}: use KEY=VALUE")
    return key, value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (default 3)")
    parser.add_argument("--profile", action="store_true", help="also run the full bootstrap once under cProfile")
    parser.add_argument("--only", default=",".join(KINDS), help=f"comma-separated subset of {','.join(KINDS)}")
    parser.add_argument("--start", default=DEFAULT_START, help="first UTC day (default %(default)s)")
    parser.add_argument("--end", default=DEFAULT_END, help="last UTC day, inclusive (default %(default)s)")
    parser.add_argument(
        "--dagster-yaml",
        type=Path,
        default=REPO_ROOT / "dagster.yaml",
        help="instance config copied into each fresh DAGSTER_HOME (default: the repo's)",
    )
    parser.add_argument(
        "--env",
        type=_env_pair,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for the children (repeatable), e.g. DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS=1",
    )
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=60.0,
        metavar="PCT",
        help="before each measurement wait until the machine is PCT%% idle (default %(default)s; 0: never wait)",
    )
    parser.add_argument("--wait-max", type=float, default=120.0, help="longest wait for idle, s (default %(default)s)")
    parser.add_argument(
        "--rate-limits",
        choices=("off", "on"),
        default="off",
        help="on: measure only the rate-limited bootstrap against the least time the providers' limits allow",
    )
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--keep", action="store_true", help="keep the temp instances, warehouses and logs")
    parser.add_argument("--floor-assets", type=int, default=1, help=argparse.SUPPRESS)  # the floor child's chain
    parser.add_argument("--child", choices=("prices", "floor"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    kinds = [k for k in args.only.split(",") if k]
    unknown = set(kinds) - set(KINDS)
    if unknown or not kinds:
        parser.error(f"--only: choose from {', '.join(KINDS)}")
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    args.kinds = ["limited"] if args.rate_limits == "on" else [k for k in KINDS if k in kinds]
    return args


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)  # clean up (temp dirs, the running child) on kill as on Ctrl-C
    if args.child == "prices":
        return child_prices(args.start, args.end)
    if args.child == "floor":
        return child_floor(args.start, args.end, args.floor_assets)

    from crypto_assets.replay.server import ReplayServer

    info = machine()
    print("machine:  " + ", ".join(f"{k} {info[k]}" for k in ("nproc", "cpu", "memory", "os", "load_1m_at_start")))
    print("versions: " + ", ".join(f"{k} {info[k]}" for k in ("python", "dagster", "duckdb", "pandas", "pandera")))
    print(f"window:   {args.start} .. {args.end}; instance config {args.dagster_yaml}; extra env {dict(args.env)}")

    root = Path(tempfile.mkdtemp(prefix="bench-bootstrap-"))
    samples: list[Sample] = []
    profile_path = root / "full.prof"
    try:
        with ReplayServer() as server:
            for round_number in range(1, args.repeat + 1):
                for kind in args.kinds:
                    sample = measure(kind, server, args, root)
                    samples.append(sample)
                    run = sample.run
                    print(
                        f"  [{round_number}/{args.repeat}] {kind:<6} wall {sample.wall_s:6.1f} s"
                        f"  run {run.run_s if run else float('nan'):6.1f} s  cpu {sample.cpu_s:6.1f} s"
                        f"  peak RSS {sample.maxrss_mb:5.0f} MB  others {sample.others_cores:4.2f} cores"
                        f"  {run.status if run else 'no run'}",
                        flush=True,
                    )
            profiled = None
            if args.profile:
                print("  profiling one full bootstrap under cProfile ...", flush=True)
                profiled = measure("full", server, args, root, profile_to=profile_path)

        medians = print_summary(samples, args.kinds)
        print_phases(samples, args.kinds)
        last_full = next((s for s in reversed(samples) if s.kind == "full" and s.run), None)
        if last_full is not None and last_full.run is not None:
            print_steps(last_full.run, "per-step durations of the last full bootstrap")
        last_limited = next((s for s in reversed(samples) if s.kind == "limited" and s.run), None)
        if last_limited is not None:
            print_http(last_limited, medians.get("floor", {}).get("wall_s"))
        if profiled is not None and profile_path.exists():
            print_profile(profile_path)
        if args.json:
            payload = {
                "command": " ".join([Path(sys.executable).name, *sys.argv]),
                "machine": info,
                "medians": medians,
                "samples": [{**asdict(s), "run": asdict(s.run) if s.run else None} for s in samples],
            }
            args.json.write_text(json.dumps(payload, indent=2, default=str))
            print(f"\nresults written to {args.json}")
    finally:
        if args.keep:
            print(f"\nkept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    failed = [s for s in samples if s.returncode != 0]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
