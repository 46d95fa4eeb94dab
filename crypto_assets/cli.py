"""The ``crypto-assets`` command: bootstrap backfills, the offline demo and the replay server.

Exit codes: 0 success, 1 a run or a blocking check failed, 2 bad input (nothing was run or written).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import NoReturn

from crypto_assets.config import IS_CHECKOUT, REPO_ROOT, SHARE_DIR, load_settings
from crypto_assets.errors import ConfigError
from crypto_assets.replay.server import add_arguments as add_replay_arguments
from crypto_assets.symbols import parse_symbols

PARTITIONS_START = date(2022, 1, 1)
DEMO_START = date(2022, 5, 4)
DEMO_END = date(2022, 8, 1)


@dataclass(frozen=True)
class DayRange:
    start: date
    end: date  # inclusive

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


def last_complete_day(now: datetime | None = None) -> date:
    return (now or datetime.now(UTC)).date() - timedelta(days=1)


def _parse_day(flag: str, text: str) -> date:
    try:
        return date.fromisoformat(text) if len(text) == 10 else _bad_day(flag, text)
    except ValueError:
        return _bad_day(flag, text)


def _bad_day(flag: str, text: str) -> date:
    raise ConfigError(f"{flag} {text!r} is not a date: use YYYY-MM-DD, e.g. 2022-05-04")


def resolve_range(days: int | None, start: str | None, end: str | None, *, now: datetime | None = None) -> DayRange:
    """Validate the requested UTC days against what the partitions cover (2022-01-01 .. last complete day)."""
    last = last_complete_day(now)
    if days is not None and (start or end):
        raise ConfigError("use either --days N or --start/--end, not both")
    if (start is None) != (end is None):
        raise ConfigError("--start and --end go together: give both, e.g. --start 2022-05-04 --end 2022-08-01")
    if start is not None and end is not None:
        first, final = _parse_day("--start", start), _parse_day("--end", end)
        if final < first:
            raise ConfigError(f"--end {final} is before --start {first}")
    else:
        count = 90 if days is None else days
        if count < 1:
            raise ConfigError(f"--days {count}: give a positive number of days")
        first, final = last - timedelta(days=count - 1), last
    if first < PARTITIONS_START:
        raise ConfigError(f"{first} is before the first partition {PARTITIONS_START}: start on or after it")
    if final > last:
        raise ConfigError(f"{final} is not a complete UTC day yet: the last complete day is {last}")
    return DayRange(first, final)


def _dagster_home() -> Path:
    home = os.environ.get("DAGSTER_HOME")
    if home:
        path = Path(home)
        if not (path / "dagster.yaml").is_file():
            raise ConfigError(f"DAGSTER_HOME={home} has no dagster.yaml: point it at the repo root or deploy/postgres")
        return path
    if IS_CHECKOUT:
        os.environ["DAGSTER_HOME"] = str(REPO_ROOT)
        return REPO_ROOT
    raise ConfigError(
        f"DAGSTER_HOME is not set: set it to a folder holding a dagster.yaml (a template is {SHARE_DIR}/dagster.yaml)"
    )


def _print(message: str) -> None:
    print(message, flush=True)


def cmd_bootstrap(args: argparse.Namespace) -> int:
    day_range = resolve_range(args.days, args.start, args.end)
    settings = load_settings()
    symbols = parse_symbols(args.symbols) if args.symbols is not None else settings.symbols
    from crypto_assets.alerts import webhook_url

    webhook_url()  # a malformed CRYPTO_ASSETS_ALERT_WEBHOOK is bad input too: refused before anything runs
    home = _dagster_home()
    from crypto_assets import bootstrap  # heavy imports (Dagster) only once the input is valid
    from crypto_assets.preflight import bootstrap_preflight

    bootstrap.check_warehouse_openable(settings.duckdb_path, _print)
    if not bootstrap_preflight(settings, _print):
        return 1

    return bootstrap.run_bootstrap(day_range.start, day_range.end, symbols, settings, home, echo=_print)


def cmd_demo(args: argparse.Namespace) -> int:
    """Start the replay server on a free port and bootstrap the bundled window through it."""
    from crypto_assets.replay.server import ReplayServer

    with ReplayServer(port=args.port) as server:
        os.environ.update(server.env())
        _print(f"replay server: {server.url} (bundled real data, {DEMO_START} .. {DEMO_END})")
        ns = argparse.Namespace(days=None, start=str(DEMO_START), end=str(DEMO_END), symbols=args.symbols)
        return cmd_bootstrap(ns)


def cmd_providers(args: argparse.Namespace) -> int:
    """Probe every configured provider; 0 while one price and one news provider answer, else 1."""
    from crypto_assets import preflight

    results = preflight.probe_all(load_settings())
    print(preflight.as_json(results) if args.json else preflight.table(results), flush=True)
    return 0 if preflight.healthy(results) else 1


def cmd_replay_server(args: argparse.Namespace) -> int:
    from crypto_assets.replay.server import run

    return run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crypto-assets",
        description="Crypto market data and news -> ML-ready training tables (Dagster + DuckDB).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    boot = commands.add_parser(
        "bootstrap",
        help="backfill every asset over UTC days (default: the last 90 complete days), then the training set",
        description="Backfill every asset over UTC days in one Dagster run recorded under DAGSTER_HOME.",
    )
    boot.add_argument("--days", type=int, help="the last N complete UTC days (default 90)")
    boot.add_argument("--start", help="first UTC day, YYYY-MM-DD")
    boot.add_argument("--end", help="last UTC day (inclusive), YYYY-MM-DD")
    boot.add_argument("--symbols", help="comma-separated universe symbols (default: CRYPTO_ASSETS_SYMBOLS)")
    boot.set_defaults(func=cmd_bootstrap)

    demo = commands.add_parser(
        "demo",
        help=f"offline demo: replay server + bootstrap of the bundled real window {DEMO_START} .. {DEMO_END}",
    )
    demo.add_argument("--port", type=int, default=0, help="replay server port (default: a free one)")
    demo.add_argument("--symbols", help="comma-separated symbols (default: the six bundled ones)")
    demo.set_defaults(func=cmd_demo)

    providers = commands.add_parser(
        "providers",
        help="ask every configured provider one small question and print who answers (exit 1 when a kind has none)",
        description=(
            "One small request per configured provider (CRYPTO_ASSETS_PRICE_PROVIDERS, CRYPTO_ASSETS_NEWS_PROVIDERS): "
            "status (ok, needs key, geo-blocked, unauthorized, rate-limited, unreachable, bad answer), latency and "
            "what to do. Exit 0 while at least one price and one news provider answer."
        ),
    )
    providers.add_argument("--json", action="store_true", help="print a JSON list of objects instead of a table")
    providers.set_defaults(func=cmd_providers)

    replay = commands.add_parser(
        "replay-server",
        help="serve the bundled real data over HTTP in each provider's API format (offline use and tests)",
        description="Serve the bundled real data over HTTP in each provider's API format, with optional faults.",
    )
    add_replay_arguments(replay)
    replay.set_defaults(func=cmd_replay_server)
    return parser


def run() -> NoReturn:
    """The ``crypto-assets`` console script and ``python -m crypto_assets``."""
    sys.exit(main())


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    started = time.monotonic()
    try:
        code = args.func(args)
    except ConfigError as exc:
        print(f"crypto-assets: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("crypto-assets: interrupted", file=sys.stderr)
        return 130
    if args.command in ("bootstrap", "demo"):
        _print(f"done in {time.monotonic() - started:.1f} s")
    return code
