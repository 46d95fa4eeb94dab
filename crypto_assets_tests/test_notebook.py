"""notebooks/training_data.ipynb, executed for real (nbclient, ipykernel) against the demo warehouse.

Nothing is mocked: the session fixture ``demo_pipeline`` runs the full offline bootstrap through the CLI,
and the kernel (this venv's python3) finds that warehouse through ``CRYPTO_ASSETS_DUCKDB`` alone.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat
import pyarrow.parquet as pq
import pytest
from nbclient import NotebookClient

from crypto_assets.config import REPO_ROOT
from crypto_assets.warehouse import exports_dir

NOTEBOOK = REPO_ROOT / "notebooks" / "training_data.ipynb"
SPLITS = ("train", "valid", "test")
_STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d"


def _tagged_text(nb: nbformat.NotebookNode, tag: str) -> str:
    """The text/plain of the result of the one code cell tagged ``tag``."""
    cells = [c for c in nb.cells if tag in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"expected one cell tagged {tag!r}, found {len(cells)}"
    results = [o for o in cells[0].outputs if o.output_type == "execute_result"]
    assert results, f"cell {tag!r} displayed no result"
    return results[-1].data["text/plain"]


def _split_rows(text: str, pattern: str) -> dict[str, re.Match[str]]:
    found = {}
    for line in text.splitlines():
        match = re.match(rf"^(?P<split>{'|'.join(SPLITS)})\s+{pattern}\s*$", line)
        if match:
            found[match["split"]] = match
    return found


def test_committed_notebook_has_no_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code
    assert all(not c.outputs and c.execution_count is None for c in code), "clear the outputs before committing"
    assert nb.metadata.kernelspec.name == "python3"


@pytest.mark.slow
def test_notebook_runs_against_the_demo_warehouse(demo_pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in demo_pipeline.env.items():
        if key.startswith("CRYPTO_ASSETS_"):
            monkeypatch.setenv(key, value)  # the kernel inherits os.environ; monkeypatch restores it afterwards
    nb = nbformat.read(NOTEBOOK, as_version=4)
    # Probe appended to this in-memory copy only: which interpreter did "python3" resolve to?
    nb.cells.append(nbformat.v4.new_code_cell("import sys; print('KERNEL', sys.executable)"))
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=300,
        startup_timeout=120,
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    client.execute()  # raises CellExecutionError on the first failing cell

    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    probe = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    kernel_python = Path(probe.split("KERNEL", 1)[1].strip())
    assert kernel_python.resolve() == Path(sys.executable).resolve(), "kernel python3 is not this venv's python"
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 3, "heatmap, price/indicator and label-balance figures should all render"

    # Expected values straight from the Parquet export, independently of crypto_assets.loading.
    export = exports_dir(demo_pipeline.duckdb_path) / "ml.training_set.parquet"
    table = pq.read_table(export).to_pandas()
    assert set(table["split"]) == set(SPLITS)

    sizes = _split_rows(
        _tagged_text(nb, "split-sizes"),
        rf"(?P<rows>\d+)\s+(?P<symbols>\d+)\s+(?P<first>{_STAMP})\s+(?P<last>{_STAMP})\s+(?P<share>[\d.]+)",
    )
    assert set(sizes) == set(SPLITS), _tagged_text(nb, "split-sizes")
    for name in SPLITS:
        part = table[table["split"] == name]
        got = sizes[name]
        assert int(got["rows"]) == len(part)
        assert int(got["symbols"]) == part["symbol"].nunique() == 6
        assert got["first"] == part["ts"].min().tz_convert("UTC").strftime("%Y-%m-%d %H:%M")
        assert got["last"] == part["ts"].max().tz_convert("UTC").strftime("%Y-%m-%d %H:%M")
    assert sum(int(m["rows"]) for m in sizes.values()) == len(table)

    balance = _split_rows(_tagged_text(nb, "label-balance"), r"(?P<rows>\d+)\s+(?P<up>\d+)\s+(?P<share>[\d.]+)")
    assert set(balance) == set(SPLITS)
    for name in SPLITS:
        up = table.loc[table["split"] == name, "target_up_1h"]
        assert int(balance[name]["rows"]) == len(up)
        assert int(balance[name]["up"]) == int(up.sum())
        assert float(balance[name]["share"]) == pytest.approx(up.mean(), abs=5e-4)
