"""Soak: the hourly refresh of the current partition, many times in ONE process, while the replay clock moves.

    .venv/bin/python benchmarks/soak.py [--iterations 50] [--start-clock 2022-07-29T01:05Z]

Setup (not measured): a ReplayServer (bundled real data over local HTTP), a fresh temp DAGSTER_HOME (a copy of
the repo's dagster.yaml, SQLite storage) and a temp DuckDB file, filled by ``crypto-assets bootstrap`` (in its
own process) over the 21 days before the first tick, so the 14-day indicator look-back is real.

Then, ``--iterations`` times: the replay clock is set to the next hourly tick (minute 5, one hour later each
time, across day boundaries), the `hourly_refresh` schedule function gives the RunRequest for that tick (the UTC
day of the bar that just closed), and the `refresh_day` job runs it with ``execute_in_process`` in this process,
against the same instance, as a long-lived run worker or a notebook would. After each run this prints its wall
time, the process RSS (VmRSS), the instance's storage on disk (every file under DAGSTER_HOME) and the DuckDB
file's size. The summary compares the first and last 10 iterations (mean RSS and run time, i.e. memory growth
and drift) and gives the storage cost per run. Figures only: nothing is asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from incremental import bootstrap  # noqa: E402  (the sibling script: the same set-up bootstrap)

# The run's console log is in the instance too: keep it out of the figures (and their formatting cost low).
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


MB = 1024 * 1024


@dataclass
class Iteration:
    number: int
    clock: datetime
    partition: str
    seconds: float
    status: str
    rss_mb: float
    storage_bytes: int
    duckdb_bytes: int
    events: int


def rss_mb() -> float:
    """This process's resident set size now (VmRSS), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # peak, where /proc is missing


def tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def file_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in (path, Path(f"{path}.wal")) if p.exists())


def mean(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def slope(values: Sequence[float]) -> float:
    """Least-squares change per iteration."""
    if len(values) < 2:
        return float("nan")
    xs = range(len(values))
    x_mean, y_mean = statistics.fmean(xs), statistics.fmean(values)
    num = sum((x - x_mean) * (y - y_mean) for x, y in zip(xs, values, strict=True))
    return num / sum((x - x_mean) ** 2 for x in xs)


def parse_clock(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=50, help="hourly refreshes (default %(default)s)")
    parser.add_argument(
        "--start-clock", default="2022-07-29T01:05Z", help="first tick, UTC (default %(default)s, minute 5)"
    )
    parser.add_argument("--history-days", type=int, default=21, help="days bootstrapped before the first tick")
    parser.add_argument("--symbols", default="BTC,ETH,SOL,XRP,BNB,ADA", help="universe (default the bundled six)")
    parser.add_argument("--gc", action="store_true", help="gc.collect() before each RSS reading")
    parser.add_argument("--keep", action="store_true", help="keep the temp instance and warehouse")
    args = parser.parse_args(argv)
    from crypto_assets.replay.data import WINDOW_END

    args.clock = parse_clock(args.start_clock)
    last_tick = args.clock + timedelta(hours=args.iterations - 1)
    if last_tick > WINDOW_END + timedelta(minutes=5):
        parser.error(f"the last tick {last_tick:%Y-%m-%d %H:%M} is past the bundled data ({WINDOW_END:%Y-%m-%d})")
    if args.iterations < 1:
        parser.error("--iterations must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from crypto_assets.replay.server import ReplayServer

    root = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    home = root / "dagster_home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    duckdb_path = root / "crypto.duckdb"
    iterations: list[Iteration] = []
    try:
        with ReplayServer(clock=args.clock) as server:
            env = {k: v for k, v in os.environ.items() if not k.startswith(("CRYPTO_ASSETS_", "DAGSTER_"))}
            env.update(server.env())
            env.update(
                {
                    "DAGSTER_HOME": str(home),
                    "CRYPTO_ASSETS_DUCKDB": str(duckdb_path),
                    "CRYPTO_ASSETS_SYMBOLS": args.symbols,
                }
            )
            first_day = (args.clock - timedelta(hours=1)).date()
            start, end = first_day - timedelta(days=args.history_days), first_day - timedelta(days=1)
            print(f"bootstrap {start} .. {end} ({args.symbols}) in its own process ...", flush=True)
            print(f"  took {bootstrap(env, str(start), str(end)):.1f} s (setup, not measured)", flush=True)

            # This process becomes the run worker: settings are read from the environment when definitions load.
            os.environ.update(env)
            import dagster as dg

            from crypto_assets.definitions import defs
            from crypto_assets.defs.automation import hourly_refresh

            job = defs.resolve_job_def("refresh_day")
            rss_start = rss_mb()
            storage_start = tree_bytes(home)
            duckdb_start = file_bytes(duckdb_path)
            print(
                f"before the first refresh: RSS {rss_start:.0f} MiB (Dagster and the definitions imported), "
                f"instance storage {storage_start / MB:.1f} MiB, DuckDB {duckdb_start / MB:.1f} MiB"
            )
            print(" iter  tick (UTC)        partition    run s  status    RSS MiB  storage MiB  DuckDB MiB  events")
            with dg.DagsterInstance.from_config(str(home)) as instance:
                for number in range(1, args.iterations + 1):
                    clock = args.clock + timedelta(hours=number - 1)
                    server.set_clock(clock)
                    request = hourly_refresh(dg.build_schedule_context(scheduled_execution_time=clock))
                    tags = {**request.tags, "dagster/schedule_name": "hourly_refresh"}
                    began = time.monotonic()
                    with quiet():
                        result = job.execute_in_process(
                            partition_key=request.partition_key,
                            instance=instance,
                            tags=tags,
                            run_config=QUIET,
                            raise_on_error=False,
                        )
                    seconds = time.monotonic() - began
                    if args.gc:
                        gc.collect()
                    item = Iteration(
                        number=number,
                        clock=clock,
                        partition=str(request.partition_key),
                        seconds=seconds,
                        status="SUCCESS" if result.success else "FAILURE",
                        rss_mb=rss_mb(),
                        storage_bytes=tree_bytes(home),
                        duckdb_bytes=file_bytes(duckdb_path),
                        events=len(result.all_events),
                    )
                    iterations.append(item)
                    print(
                        f" {number:4d}  {clock:%Y-%m-%d %H:%M}  {item.partition}  {seconds:6.1f}  {item.status:<8}"
                        f"  {item.rss_mb:7.0f}  {item.storage_bytes / MB:11.1f}  {item.duckdb_bytes / MB:10.1f}"
                        f"  {item.events:6d}",
                        flush=True,
                    )
            duckdb_end = file_bytes(duckdb_path)
        summarise(iterations, rss_start, storage_start)
        print(
            f"  DuckDB file (+ WAL): {duckdb_start / MB:.1f} MiB before the first refresh, "
            f"{duckdb_end / MB:.1f} MiB after the last ({(duckdb_end - duckdb_start) / MB:+.2f} MiB; every connection "
            "checkpoints the file when it closes)"
        )
    finally:
        if args.keep:
            print(f"\nkept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return 0 if iterations and all(i.status == "SUCCESS" for i in iterations) else 1


def summarise(iterations: list[Iteration], rss_start: float, storage_start: int) -> None:
    n = len(iterations)
    k = min(10, n)
    last = iterations[-k:]
    failed = [i.number for i in iterations if i.status != "SUCCESS"]
    storage = iterations[-1].storage_bytes - storage_start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    events = mean([i.events for i in iterations])
    print(f"\nsummary over {n} hourly refreshes in one process ({len(failed)} failed {failed or ''}):")
    print(f"  {'':20}{'first ' + str(k):>10}{'last ' + str(k):>10}{'change':>10}{'per iteration (fit)':>21}")
    for label, values, fmt in (
        ("RSS MiB (mean)", [i.rss_mb for i in iterations], ".0f"),
        ("run s (mean)", [i.seconds for i in iterations], ".2f"),
    ):
        a, b = mean(values[:k]), mean(values[-k:])
        print(f"  {label:20}{a:10{fmt}}{b:10{fmt}}{b - a:+10{fmt}}{slope(values):+21.3f}")
    print(
        f"  RSS before the first refresh {rss_start:.0f} MiB, after the last {last[-1].rss_mb:.0f} MiB, "
        f"peak {peak:.0f} MiB"
    )
    print(
        f"  instance storage: +{storage / MB:.2f} MiB over {n} runs = {storage / n / 1024:.0f} KiB per run "
        f"(run and event-log SQLite files under DAGSTER_HOME; {events:.0f} events per run)"
    )


if __name__ == "__main__":
    sys.exit(main())
