"""Benchmark: bootstrap time against the number of symbols (1, 6, 20, 100), and what grows past Dagster's fixed cost.

    .venv/bin/python benchmarks/scaling.py [--counts 1,6,20,100] [--start 2022-05-04 --end 2022-08-01] [--repeat 1]

Each measurement is exactly ``python -m crypto_assets bootstrap --start .. --end .. --symbols ..`` in a fresh
subprocess with its own temp DAGSTER_HOME (a copy of the repo's dagster.yaml, SQLite storage) and DuckDB file,
against one ReplayServer started here. Only six symbols are bundled, so past six the server replays bundled
series under other names (``ReplayServer(aliases=...)``, benchmark-only: AL01 serves BTC's bars, AL02 ETH's,
... cycling): the same bar count and HTTP requests per symbol as real ones. No article mentions an alias, so
their sentiment features are the no-news values (zero counts). ``--rate-limits on`` applies the providers'
client-side rate limits as live (off by default, as for any run against the replay server).

Per count: wall time (spawn to exit), the run's time from the instance (run creation to end), CPU and peak RSS
of the child, the HTTP requests the replay server answered, and the slowest steps. Then a least-squares line
wall = fixed + per_symbol * n over the counts: the fixed part (process start, imports, run planning, the
steps' per-run cost) and what each extra symbol adds over the window. Goals (reported, not asserted): 100
symbols within 4x the 6-symbol run's wall time, and under 2 GB peak memory.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

BUNDLED = ("BTC", "ETH", "SOL", "XRP", "BNB", "ADA")
GOAL_RATIO, GOAL_PEAK_MB = 4.0, 2048


@dataclass
class Sample:
    count: int
    wall_s: float
    run_s: float
    cpu_s: float
    maxrss_mb: float
    returncode: int
    requests: dict[str, int]
    steps: dict[str, float] = field(default_factory=dict)


def aliases_for(count: int) -> dict[str, str]:
    """AL01 -> BTC, AL02 -> ETH, ... for the symbols past the six bundled ones."""
    return {f"AL{i:02d}": BUNDLED[(i - 1) % len(BUNDLED)] for i in range(1, max(0, count - len(BUNDLED)) + 1)}


def universe(count: int) -> list[str]:
    return [*BUNDLED, *aliases_for(count)][:count]


def run_facts(home: Path) -> tuple[float, dict[str, float]]:
    """The run's duration (creation to end) and each step's duration, from the instance's event log."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs(limit=1)
        if not runs:
            return float("nan"), {}
        logs = instance.all_logs(runs[0].run_id)
    if not logs:
        return float("nan"), {}
    starts: dict[str, float] = {}
    steps: dict[str, float] = {}
    for entry in logs:
        event = entry.dagster_event
        if event is None or not entry.step_key:
            continue
        if event.event_type_value == "STEP_START":
            starts[entry.step_key] = entry.timestamp
        elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE") and entry.step_key in starts:
            steps[entry.step_key] = entry.timestamp - starts[entry.step_key]
    return logs[-1].timestamp - logs[0].timestamp, steps


def measure(count: int, server, args: argparse.Namespace, root: Path) -> Sample:
    workdir = Path(tempfile.mkdtemp(prefix=f"n{count}-", dir=root))
    home = workdir / "dagster_home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRYPTO_ASSETS_", "DAGSTER_"))}
    env.update(server.env())
    env.update(
        {
            "DAGSTER_HOME": str(home),
            "CRYPTO_ASSETS_DUCKDB": str(workdir / "crypto.duckdb"),
            "CRYPTO_ASSETS_RATE_LIMITS": args.rate_limits,
        }
    )
    command = [sys.executable, "-m", "crypto_assets", "bootstrap", "--start", args.start, "--end", args.end]
    command += ["--symbols", ",".join(universe(count))]
    server.reset_stats()
    with open(workdir / "output.txt", "wb") as out:
        began = time.monotonic()
        proc = subprocess.Popen(command, env=env, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - began
    returncode = os.waitstatus_to_exitcode(status)
    if returncode != 0:
        tail = (workdir / "output.txt").read_text(errors="replace")[-3000:]
        print(f"  !! {count} symbols: exit {returncode}; output tail:\n{tail}", file=sys.stderr)
    run_s, steps = run_facts(home)
    return Sample(
        count=count,
        wall_s=wall,
        run_s=run_s,
        cpu_s=usage.ru_utime + usage.ru_stime,
        maxrss_mb=usage.ru_maxrss / 1024,
        returncode=returncode,
        requests={provider: n for provider, n in server.stats().items() if n},
        steps=steps,
    )


def fit(points: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """Least squares y = a + b x; (a, b)."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    if len(set(xs)) < 2:
        return float("nan"), float("nan")
    x_mean, y_mean = statistics.fmean(xs), statistics.fmean(ys)
    b = sum((x - x_mean) * (y - y_mean) for x, y in points) / sum((x - x_mean) ** 2 for x in xs)
    return y_mean - b * x_mean, b


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    cells = [headers, *rows]
    for row in cells:
        print("  " + "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))  # noqa: B905


def report(samples: list[Sample], counts: Sequence[int], days: int) -> None:
    medians: dict[int, dict[str, float]] = {}
    rows = []
    for count in counts:
        mine = [s for s in samples if s.count == count]
        m = {
            "wall": statistics.median(s.wall_s for s in mine),
            "run": statistics.median(s.run_s for s in mine),
            "cpu": statistics.median(s.cpu_s for s in mine),
        }
        medians[count] = m
        requests = mine[-1].requests
        rows.append(
            [
                str(count),
                f"{m['wall']:.1f}",
                f"{m['run']:.1f}",
                f"{m['cpu']:.1f}",
                f"{max(s.maxrss_mb for s in mine):.0f}",
                f"{m['wall'] / count:.1f}",
                str(sum(requests.values())),
                ", ".join(f"{p} {n}" for p, n in sorted(requests.items())),
                "ok" if all(s.returncode == 0 for s in mine) else "FAILED",
            ]
        )
    print(f"\nbootstrap of {days} UTC days by universe size (medians over {len(samples) // len(counts)} run(s)):")
    _table(["symbols", "wall s", "run s", "cpu s", "peak RSS MB", "wall s/symbol", "requests", "by provider", ""], rows)

    fixed, per_symbol = fit([(c, m["wall"]) for c, m in medians.items()])
    cpu_fixed, cpu_per_symbol = fit([(c, m["cpu"]) for c, m in medians.items()])
    print(f"\nleast squares over the counts: wall ~= {fixed:.1f} s + {per_symbol:.2f} s per symbol ({days} days)")
    print(f"                               cpu  ~= {cpu_fixed:.1f} s + {cpu_per_symbol:.2f} s per symbol")
    for count, m in medians.items():
        share = per_symbol * count / m["wall"] if m["wall"] else float("nan")
        print(f"  {count:3d} symbols: {100 * share:4.0f}% of the wall time is the per-symbol part")

    step_keys = sorted({k for s in samples for k in s.steps})
    last = {count: next(s for s in reversed(samples) if s.count == count) for count in counts}
    growth = sorted(step_keys, key=lambda k: -(last[counts[-1]].steps.get(k, 0.0) - last[counts[0]].steps.get(k, 0.0)))
    print(f"\nsteps that grow the most from {counts[0]} to {counts[-1]} symbols (s, last run of each count):")
    _table(
        ["step", *(f"n={c}" for c in counts)],
        [[key, *(f"{last[c].steps.get(key, float('nan')):.2f}" for c in counts)] for key in growth[:10]],
    )
    total = {c: sum(last[c].steps.values()) for c in counts}
    print("  all steps together:     " + "  ".join(f"n={c}: {total[c]:.1f} s" for c in counts))
    if 6 in medians and 100 in medians:
        ratio = medians[100]["wall"] / medians[6]["wall"]
        peak = max(s.maxrss_mb for s in samples if s.count == 100)
        print(
            f"\ngoals: 100 symbols = {ratio:.2f}x the 6-symbol wall time (<= {GOAL_RATIO:g}x: "
            f"{'met' if ratio <= GOAL_RATIO else 'MISSED'}); peak RSS {peak:.0f} MB (< {GOAL_PEAK_MB} MB: "
            f"{'met' if peak < GOAL_PEAK_MB else 'MISSED'})"
        )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", default="1,6,20,100", help="universe sizes (default %(default)s)")
    parser.add_argument("--start", default="2022-05-04", help="first UTC day (default %(default)s)")
    parser.add_argument("--end", default="2022-08-01", help="last UTC day, inclusive (default %(default)s)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per count (default %(default)s)")
    parser.add_argument(
        "--rate-limits",
        choices=("off", "on"),
        default="off",
        help="the providers' client-side rate limits: off as against any replay server (default), on as live",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp instances, warehouses and outputs")
    args = parser.parse_args(argv)
    try:
        args.count_list = sorted({int(c) for c in args.counts.split(",") if c})
    except ValueError:
        parser.error("--counts: comma-separated positive integers, e.g. 1,6,20")
    if not args.count_list or args.count_list[0] < 1 or args.count_list[-1] > len(BUNDLED) + 99:
        parser.error(f"--counts: between 1 and {len(BUNDLED) + 99}")
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from datetime import date

    from crypto_assets.replay.server import ReplayServer

    days = (date.fromisoformat(args.end) - date.fromisoformat(args.start)).days + 1
    root = Path(tempfile.mkdtemp(prefix="bench-scaling-"))
    samples: list[Sample] = []
    try:
        print(f"rate limits {args.rate_limits} (CRYPTO_ASSETS_RATE_LIMITS)")
        with ReplayServer(aliases=aliases_for(args.count_list[-1])) as server:
            for round_number in range(1, args.repeat + 1):
                for count in args.count_list:
                    sample = measure(count, server, args, root)
                    samples.append(sample)
                    print(
                        f"  [{round_number}/{args.repeat}] {count:3d} symbols: wall {sample.wall_s:6.1f} s  "
                        f"run {sample.run_s:6.1f} s  cpu {sample.cpu_s:6.1f} s  peak RSS {sample.maxrss_mb:4.0f} MB  "
                        f"exit {sample.returncode}",
                        flush=True,
                    )
        report(samples, args.count_list, days)
    finally:
        if args.keep:
            print(f"\nkept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return 0 if all(s.returncode == 0 for s in samples) else 1


if __name__ == "__main__":
    sys.exit(main())
