"""Benchmark: the hourly incremental refresh, as the `hourly_refresh` schedule runs it, launch to new feature row.

    .venv/bin/python benchmarks/incremental.py [--repeat 3] [--modes process,warm]

Setup (not measured): a ReplayServer (bundled real data over local HTTP) whose clock stands in 2022-08-01, a fresh
temp DAGSTER_HOME (a copy of the repo's dagster.yaml: SQLite storage, the `duckdb` pool limited to 1) and a temp
DuckDB file, filled by ``crypto-assets bootstrap`` over the bundled window up to the day before (2022-05-04 ..
2022-07-31, 6 symbols). Then, per measurement, the replay clock moves one hour forward (one more closed bar on
2022-08-01), the `hourly_refresh` schedule function is evaluated for that tick (its RunRequest gives the
partition, 2022-08-01), and the `refresh_day` job runs for it:

- process: ``dagster job execute -j refresh_day`` in a fresh process with the job's own executor (in-process,
  see crypto_assets/defs/runtime.py): what the run worker does when the daemon launches a scheduled run (it too
  starts a Python process, imports Dagster and loads the definitions). The daemon's own share (its run-queue
  poll and the launch through the code server, ~1-2 s) is not included.
- warm:    ``execute_in_process`` in this already-running process (definitions imported once before): the
  floor, with no process start, imports or definition loading.

Figures per run: "launch -> row" is from the launch (process spawn, or the call for warm) to the moment the
`features/feature_vectors` materialization of the run was recorded, which is after its DuckDB transaction
committed; "created -> row" starts at the run's creation in the instance instead (what the schedule's own
launch would start from); "launch -> end" is to the end of the run (checks, training set and its Parquet export
included). After every run the new feature row (ts = the bar that just closed, every symbol) is checked in
DuckDB. Goal: launch -> row <= 30 s.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))


MODES = ("process", "warm")
GOAL_S = 30.0
FEATURES = "features/feature_vectors"


# The run's console log is in the instance too: keep it out of the figures (and their formatting cost low).
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


@dataclass
class Measurement:
    mode: str
    clock: datetime
    partition: str
    launch_to_row: float
    created_to_row: float
    launch_to_end: float
    cpu_s: float  # the process (and any children) from wait4; NaN for warm
    maxrss_mb: float  # largest single process among them
    status: str
    steps: int
    events: int
    row_ok: bool
    slowest: list[tuple[str, float]] = field(default_factory=list)


def pipeline_env(server_env: dict[str, str], home: Path, duckdb_path: Path, symbols: str) -> dict[str, str]:
    """As the tests' pipeline env: no inherited CRYPTO_ASSETS_*/DAGSTER_* settings, the replay server's URLs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRYPTO_ASSETS_", "DAGSTER_"))}
    env.update(server_env)
    env.update(
        {
            "DAGSTER_HOME": str(home),
            "CRYPTO_ASSETS_DUCKDB": str(duckdb_path),
            "CRYPTO_ASSETS_SYMBOLS": symbols,
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def schedule_request(clock: datetime) -> tuple[str, dict[str, str]]:
    """The partition and tags the `hourly_refresh` schedule asks for at the tick ``clock``."""
    import dagster as dg

    from crypto_assets.defs.automation import hourly_refresh

    request = hourly_refresh(dg.build_schedule_context(scheduled_execution_time=clock))
    tags = {**request.tags, "dagster/schedule_name": "hourly_refresh", "dagster/partition": request.partition_key}
    return request.partition_key, tags


def run_ids(home: Path) -> list[str]:
    """Run ids of the instance, newest first."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as instance:
        return [run.run_id for run in instance.get_runs()]


def run_facts(home: Path, run_id: str | None = None) -> dict[str, object]:
    """From the instance: the (latest) run's creation time, feature-row time, end, steps and slowest steps."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as instance:
        run_id = run_id or instance.get_runs(limit=1)[0].run_id
        record = instance.get_run_record_by_id(run_id)
        assert record is not None
        logs = instance.all_logs(run_id)
    created = record.create_timestamp.timestamp()
    row_at = end = None
    starts: dict[str, float] = {}
    durations: dict[str, float] = {}
    for entry in logs:
        event = entry.dagster_event
        if event is None:
            continue
        kind = event.event_type_value
        if kind == "ASSET_MATERIALIZATION" and event.asset_key.to_user_string() == FEATURES and row_at is None:
            row_at = entry.timestamp
        elif kind in ("PIPELINE_SUCCESS", "PIPELINE_FAILURE"):
            end = entry.timestamp
        elif kind == "STEP_START" and entry.step_key:
            starts[entry.step_key] = entry.timestamp
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE") and entry.step_key in starts:
            durations[entry.step_key] = entry.timestamp - starts[entry.step_key]
    return {
        "run_id": run_id,
        "status": record.dagster_run.status.value,
        "created": created,
        "row_at": row_at,
        "end": end or (logs[-1].timestamp if logs else created),
        "steps": len(starts),
        "events": len(logs),
        "slowest": sorted(durations.items(), key=lambda kv: -kv[1])[:5],
    }


def new_rows_present(duckdb_path: Path, clock: datetime, symbols: Sequence[str]) -> bool:
    """Whether every symbol's newest feature row is the bar that closed at the clock's last full hour."""
    from crypto_assets import warehouse as wh

    expected = clock.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    with wh.connect(duckdb_path, read_only=True) as conn:
        newest = dict(conn.execute("SELECT symbol, max(ts) FROM features.feature_vectors GROUP BY symbol").fetchall())
    return all(symbol in newest and newest[symbol] == expected for symbol in symbols)


def measure_subprocess(
    mode: str, env: dict[str, str], home: Path, clock: datetime, workdir: Path, symbols: Sequence[str]
) -> Measurement:
    partition, tags = schedule_request(clock)
    command = [
        sys.executable, "-m", "dagster", "job", "execute",
        "-m", "crypto_assets.definitions", "-a", "defs", "-j", "refresh_day",
        "--tags", json.dumps(tags),
    ]  # fmt: skip
    log = workdir / f"{mode}-{clock:%H}.log"
    before = run_ids(home)
    with open(log, "wb") as out:
        launched = time.time()
        proc = subprocess.Popen(command, env=env, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        ended = time.time()
    if os.waitstatus_to_exitcode(status) != 0:
        print(f"  !! {mode} exited {os.waitstatus_to_exitcode(status)}; log: {log}", file=sys.stderr)
    new_runs = [run_id for run_id in run_ids(home) if run_id not in before]
    if not new_runs:
        sys.exit(f"{mode}: no run was created; see {log}:\n{log.read_text()[-2000:]}")
    facts = run_facts(home, new_runs[0])
    return _measurement(mode, clock, partition, facts, launched, ended, usage.ru_utime + usage.ru_stime,
                        usage.ru_maxrss / 1024, env, symbols)  # fmt: skip


def measure_warm(
    env: dict[str, str], home: Path, clock: datetime, symbols: Sequence[str], state: dict[str, object]
) -> Measurement:
    import dagster as dg

    if "job" not in state:  # settings are read from the environment when the definitions load
        os.environ.update(env)
        from crypto_assets.definitions import defs

        state["job"] = defs.resolve_job_def("refresh_day")
        state["instance"] = dg.DagsterInstance.from_config(str(home))
    partition, tags = schedule_request(clock)
    launched = time.time()
    with quiet():
        result = state["job"].execute_in_process(  # type: ignore[attr-defined]
            partition_key=partition, instance=state["instance"], tags=tags, run_config=QUIET, raise_on_error=False
        )
    ended = time.time()
    facts = run_facts(home, result.run_id)
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return _measurement("warm", clock, partition, facts, launched, ended, float("nan"), maxrss, env, symbols)


def _measurement(
    mode: str,
    clock: datetime,
    partition: str,
    facts: dict[str, object],
    launched: float,
    ended: float,
    cpu: float,
    maxrss: float,
    env: dict[str, str],
    symbols: Sequence[str],
) -> Measurement:
    row_at = facts["row_at"]
    nan = float("nan")
    return Measurement(
        mode=mode,
        clock=clock,
        partition=partition,
        launch_to_row=(row_at - launched) if row_at else nan,  # type: ignore[operator]
        created_to_row=(row_at - facts["created"]) if row_at else nan,  # type: ignore[operator]
        launch_to_end=ended - launched,
        cpu_s=cpu,
        maxrss_mb=maxrss,
        status=str(facts["status"]),
        steps=int(facts["steps"]),  # type: ignore[arg-type]
        events=int(facts["events"]),  # type: ignore[arg-type]
        row_ok=new_rows_present(Path(env["CRYPTO_ASSETS_DUCKDB"]), clock, symbols),
        slowest=list(facts["slowest"]),  # type: ignore[arg-type]
    )


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print(
        "  " + "  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(headers, widths, strict=True)))
    )
    for row in rows:
        print(
            "  " + "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        )


def summarise(samples: list[Measurement], modes: Sequence[str]) -> None:
    runs = len(samples) // max(1, len(modes))
    print(f"\nsummary (median / min over {runs} runs each; goal launch -> row <= {GOAL_S:g} s):")
    rows = []
    for mode in modes:
        mine = [s for s in samples if s.mode == mode]
        if not mine:
            continue
        launch = [s.launch_to_row for s in mine]
        median = statistics.median(launch)
        rows.append(
            [
                mode,
                f"{median:.1f} / {min(launch):.1f}",
                f"{statistics.median(s.created_to_row for s in mine):.1f}",
                f"{statistics.median(s.launch_to_end for s in mine):.1f}",
                f"{statistics.median(s.cpu_s for s in mine):.1f}",
                f"{max(s.maxrss_mb for s in mine):.0f}",
                str(mine[-1].steps),
                "yes" if median <= GOAL_S else "NO",
                "yes" if all(s.row_ok and s.status == "SUCCESS" for s in mine) else "NO",
            ]
        )
    _table(
        ["mode", "launch->row s", "created->row s", "launch->end s", "cpu s", "max RSS MB", "steps", "goal", "rows ok"],
        rows,
    )
    for mode in modes:
        mine = [s for s in samples if s.mode == mode]
        if mine:
            slowest = ", ".join(f"{key} {seconds:.1f}" for key, seconds in mine[-1].slowest)
            print(f"  slowest steps ({mode}, last run): {slowest}")


def bootstrap(env: dict[str, str], start: str, end: str) -> float:
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "crypto_assets", "bootstrap", "--start", start, "--end", end],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        sys.exit(f"bootstrap failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return time.monotonic() - began


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per mode (default %(default)s)")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated subset of " + ",".join(MODES))
    parser.add_argument("--start", default="2022-05-04", help="first bootstrapped day (default %(default)s)")
    parser.add_argument("--day", default="2022-08-01", help="the refreshed (current) day (default %(default)s)")
    parser.add_argument("--first-hour", type=int, default=5, help="clock hour (UTC) before the first refresh")
    parser.add_argument("--symbols", default="BTC,ETH,SOL,XRP,BNB,ADA", help="universe (default the bundled six)")
    parser.add_argument("--keep", action="store_true", help="keep the temp instance, warehouse and logs")
    args = parser.parse_args(argv)
    args.mode_list = [m for m in args.modes.split(",") if m]
    if not args.mode_list or set(args.mode_list) - set(MODES):
        parser.error(f"--modes: choose from {', '.join(MODES)}")
    if args.repeat * len(args.mode_list) + args.first_hour > 23:
        parser.error("too many runs for one day: lower --repeat or --first-hour")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from crypto_assets.replay.server import ReplayServer

    day = datetime.fromisoformat(args.day).replace(tzinfo=UTC)
    clock = day + timedelta(hours=args.first_hour, minutes=5)  # the schedule ticks at minute 5
    symbols = args.symbols.split(",")
    root = Path(tempfile.mkdtemp(prefix="bench-incremental-"))
    home = root / "dagster_home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    samples: list[Measurement] = []
    state: dict[str, object] = {}
    try:
        with ReplayServer(clock=clock) as server:
            env = pipeline_env(server.env(), home, root / "crypto.duckdb", args.symbols)
            last = (day - timedelta(days=1)).date().isoformat()
            print(f"bootstrap {args.start} .. {last}, {len(symbols)} symbols ...", flush=True)
            print(f"  took {bootstrap(env, args.start, last):.1f} s (setup, not measured)", flush=True)
            for round_number in range(1, args.repeat + 1):
                for mode in args.mode_list:
                    clock += timedelta(hours=1)
                    server.set_clock(clock)
                    if mode == "warm":
                        sample = measure_warm(env, home, clock, symbols, state)
                    else:
                        sample = measure_subprocess(mode, env, home, clock, root, symbols)
                    samples.append(sample)
                    print(
                        f"  [{round_number}/{args.repeat}] {mode:<12} clock {clock:%Y-%m-%d %H:%M}  partition "
                        f"{sample.partition}  launch->row {sample.launch_to_row:5.1f} s  created->row "
                        f"{sample.created_to_row:5.1f} s  launch->end {sample.launch_to_end:5.1f} s  "
                        f"cpu {sample.cpu_s:5.1f} s  {sample.status}  new row {'ok' if sample.row_ok else 'MISSING'}",
                        flush=True,
                    )
        summarise(samples, args.mode_list)
    finally:
        instance = state.get("instance")
        if instance is not None:
            instance.dispose()  # type: ignore[attr-defined]
        if args.keep:
            print(f"\nkept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return 0 if samples and all(s.row_ok and s.status == "SUCCESS" for s in samples) else 1


if __name__ == "__main__":
    sys.exit(main())
