"""The one place the Dagster definitions are assembled: every module of ``crypto_assets.defs``."""

from pathlib import Path

import dagster as dg

import crypto_assets.defs
from crypto_assets.event_storage import batch_dagster_events

batch_dagster_events()
defs: dg.Definitions = dg.load_defs(defs_root=crypto_assets.defs, project_root=Path(__file__).resolve().parent.parent)
