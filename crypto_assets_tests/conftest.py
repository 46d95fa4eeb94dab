"""Shared fixtures: the replay server (real HTTP, bundled real data) and isolated pipeline environments.

Every end-to-end test gets its own DAGSTER_HOME (a copy of the repo's dagster.yaml, SQLite storage) and its
own DuckDB file, and talks to the providers only through a local replay server.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from crypto_assets.config import REPO_ROOT
from crypto_assets.http import reset_http_state
from crypto_assets.replay.server import ReplayServer
from crypto_assets_tests.fakes import FakeTime

DEMO_START = "2022-05-04"
DEMO_END = "2022-08-01"


@dataclass
class PipelineEnv:
    """An isolated instance + warehouse wired to a replay server; ``run`` invokes the real CLI in a subprocess."""

    root: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def duckdb_path(self) -> Path:
        return Path(self.env["CRYPTO_ASSETS_DUCKDB"])

    @property
    def dagster_home(self) -> Path:
        return Path(self.env["DAGSTER_HOME"])

    def run(self, *args: str, timeout: float = 600, **extra_env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "crypto_assets", *args],
            env={**self.env, **extra_env},
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=REPO_ROOT,
        )


def make_pipeline_env(root: Path, server: ReplayServer) -> PipelineEnv:
    home = root / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRYPTO_ASSETS_", "DAGSTER_"))}
    env.update(server.env())
    env.update(
        {
            "DAGSTER_HOME": str(home),
            "CRYPTO_ASSETS_DUCKDB": str(root / "crypto.duckdb"),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return PipelineEnv(root=root, env=env)


@pytest.fixture(autouse=True)
def _fresh_http_state() -> Iterator[None]:
    """Circuit breakers and rate limiters are per process; tests must not inherit each other's."""
    reset_http_state()
    yield
    reset_http_state()


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


@pytest.fixture(scope="session")
def replay_server() -> Iterator[ReplayServer]:
    with ReplayServer() as server:
        yield server


@pytest.fixture
def pipeline_env(tmp_path: Path) -> Iterator[PipelineEnv]:
    """A fresh instance and warehouse with their own replay server (faults can be set per test)."""
    with ReplayServer() as server:
        env = make_pipeline_env(tmp_path, server)
        env.server = server  # type: ignore[attr-defined]
        yield env


@pytest.fixture(scope="session")
def demo_pipeline(tmp_path_factory: pytest.TempPathFactory, replay_server: ReplayServer) -> PipelineEnv:
    """The full offline demo bootstrap (90 days x 6 symbols), run ONCE per test session through the real CLI."""
    env = make_pipeline_env(tmp_path_factory.mktemp("demo"), replay_server)
    done = env.run("bootstrap", "--start", DEMO_START, "--end", DEMO_END, timeout=900)
    if done.returncode != 0:
        pytest.fail(f"demo bootstrap failed ({done.returncode}):\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    env.output = done.stdout  # type: ignore[attr-defined]
    return env
