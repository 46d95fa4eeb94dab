"""Bad input at the command line ends in a one-line error and exit code 2, before anything runs."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, date, datetime

import pytest

from crypto_assets.cli import main, resolve_range
from crypto_assets.errors import ConfigError

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)


def test_default_range_is_the_last_90_complete_days():
    r = resolve_range(None, None, None, now=NOW)
    assert (r.start, r.end, r.days) == (date(2026, 8, 24), date(2026, 11, 21), 90)


def test_explicit_range_is_inclusive():
    r = resolve_range(None, "2022-05-04", "2022-08-01", now=NOW)
    assert r.days == 90


@pytest.mark.parametrize(
    ("days", "start", "end", "message"),
    [
        (None, "2022-5-4", "2022-08-01", "not a date"),
        (None, "2022-02-30", "2022-08-01", "not a date"),
        (None, "2022-08-01", "2022-05-04", "before --start"),
        (None, "2021-12-31", "2022-01-05", "before the first partition"),
        (None, "2026-11-20", "2026-11-22", "not a complete UTC day"),
        (None, "2022-05-04", None, "go together"),
        (0, None, None, "positive"),
        (5, "2022-05-04", "2022-05-05", "either --days"),
        (5000, None, None, "before the first partition"),
    ],
)
def test_bad_ranges(days, start, end, message):
    with pytest.raises(ConfigError, match=message):
        resolve_range(days, start, end, now=NOW)


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--symbols", "b@d"], {}, "malformed symbol"),
        (["--symbols", "btc"], {}, "upper case"),
        (["--symbols", " BTC"], {}, "spaces"),
        (["--symbols", "BTC,,ETH"], {}, "malformed symbol"),
        (["--start", "yesterday", "--end", "2022-05-05"], {}, "not a date"),
        ([], {"CRYPTO_ASSETS_PRICE_PROVIDERS": "binance,nosuch"}, "unknown provider"),
        ([], {"CRYPTO_ASSETS_BINANCE_URL": "ftp://x"}, "http"),
        ([], {"CRYPTO_ASSETS_SYMBOLS": "BTC;ETH"}, "malformed symbol"),
        ([], {"CRYPTO_ASSETS_RATE_LIMITS": "no"}, "expected on or off"),
        ([], {"CRYPTO_ASSETS_RUN_RETENTION_DAYS": "a month"}, "CRYPTO_ASSETS_RUN_RETENTION_DAYS='a month'"),
    ],
)
def test_cli_refuses_bad_input_with_exit_code_2(args, env, message, tmp_path, capsys, monkeypatch):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("CRYPTO_ASSETS_DUCKDB", str(tmp_path / "w.duckdb"))
    days = [] if "--start" in args else ["--days", "2"]
    code = main(["bootstrap", *days, *args])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "w.duckdb").exists()


def test_warehouse_path_problems_exit_2_without_writing(tmp_path):
    """Runs the real console entry point in a subprocess, so nothing of the test process leaks in."""
    corrupt = tmp_path / "corrupt.duckdb"
    corrupt.write_bytes(b"garbage" * 1000)
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "CRYPTO_ASSETS_DUCKDB": str(corrupt)}
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    for path in (corrupt, tmp_path / "no" / "such" / "dir" / "w.duckdb"):
        env["CRYPTO_ASSETS_DUCKDB"] = str(path)
        done = subprocess.run(
            [sys.executable, "-m", "crypto_assets", "bootstrap", "--start", "2022-05-04", "--end", "2022-05-04"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 2, done.stderr
        assert "warehouse" in done.stderr
    assert corrupt.read_bytes() == b"garbage" * 1000
    assert not (tmp_path / "storage").exists() or not any((tmp_path / "storage").iterdir())


def test_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("bootstrap", "demo", "replay-server"):
        assert command in out


def test_replay_server_command_serves_the_bundled_data(tmp_path):
    """`crypto-assets replay-server` as a user starts it: a real process on a free port, queried over HTTP."""
    import socket
    import time

    import requests

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "crypto_assets", "replay-server", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                body = requests.get(
                    f"http://127.0.0.1:{port}/binance/api/v3/klines",
                    params={"symbol": "BTCUSDT", "interval": "1h", "startTime": 1651622400000, "limit": 1},
                    timeout=2,
                ).json()
                break
            except requests.ConnectionError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
                time.sleep(0.2)
        assert body[0][:5] == [1651622400000, "37728.95000000", "37943.66000000", "37670.00000000", "37902.06000000"]
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    assert f"export CRYPTO_ASSETS_BINANCE_URL=http://127.0.0.1:{port}/binance" in out
