"""Reading the test fixtures: one folder per provider (``fixtures/providers/<name>/``, each with a README citing
every file's source) and the shared bar and news slices (``fixtures/slices/``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures"
PROVIDER_FIXTURES = FIXTURES / "providers"
SLICES = FIXTURES / "slices"


def provider_fixture(name: str, file: str, *, raw: bool = False) -> Any:
    """A provider's fixture file: parsed JSON for ``.json`` files, text for the others (or with ``raw=True``)."""
    text = (PROVIDER_FIXTURES / name / file).read_text(encoding="utf-8")
    return json.loads(text) if file.endswith(".json") and not raw else text
