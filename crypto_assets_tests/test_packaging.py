"""The project as users get it: `dg check defs` / `dagster definitions validate`, and `pip install .` (a real wheel
installed into a fresh virtual environment) with its bundled data, notebook and console script."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from crypto_assets.config import REPO_ROOT

BIN = Path(sys.executable).parent


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_dg_check_defs_and_definitions_validate(tmp_path):
    env = {**os.environ, "DAGSTER_HOME": str(REPO_ROOT)}
    done = run([str(BIN / "dg"), "check", "defs"], REPO_ROOT, env)
    assert done.returncode == 0, done.stdout + done.stderr
    done = run([str(BIN / "dagster"), "definitions", "validate", "-w", "workspace.yaml"], REPO_ROOT, env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "passed validation" in done.stdout + done.stderr


@pytest.mark.slow
def test_pip_install_ships_data_notebook_and_commands(tmp_path):
    """Dependencies come from the project's venv through a .pth path (no network, no re-download); the
    project itself is installed from a freshly built wheel, so nothing of the checkout is used."""
    wheel_dir = tmp_path / "wheel"
    done = run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheel_dir), str(REPO_ROOT)], tmp_path
    )
    assert done.returncode == 0, done.stderr
    wheel = next(wheel_dir.glob("crypto_assets-*.whl"))

    venv = tmp_path / "venv"
    assert run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path).returncode == 0
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "project_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    done = run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "--no-deps",
            "-q",
            str(wheel),
        ],
        tmp_path,
    )
    assert done.returncode == 0, done.stderr

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRYPTO_ASSETS_", "DAGSTER_"))}
    done = run([str(venv / "bin" / "crypto-assets"), "--help"], elsewhere, env)
    assert done.returncode == 0 and "bootstrap" in done.stdout and "replay-server" in done.stdout
    probe = (
        "import crypto_assets.config as c, crypto_assets.replay.data as d; "
        "assert not c.IS_CHECKOUT, c.REPO_ROOT; "
        "print(len(d.load_bundled_prices()), len(d.load_bundled_news()), "
        "(c.SHARE_DIR / 'notebooks' / 'training_data.ipynb').is_file(), c.default_duckdb_path())"
    )
    done = run([str(venv / "bin" / "python"), "-c", probe], elsewhere, env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["12960", "3907", "True", str(elsewhere / "data" / "crypto.duckdb")]
    done = run([str(venv / "bin" / "python"), "-m", "crypto_assets", "bootstrap", "--days", "1"], elsewhere, env)
    assert done.returncode == 2 and "DAGSTER_HOME" in done.stderr
