"""How a one-shot command process (``crypto-assets bootstrap``/``demo``) is set up and left.

Stdlib only, so the benchmark's Dagster floor can be run exactly like the CLI without importing pandas.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
from typing import NoReturn

# Full (oldest-generation) garbage collections: after this many young collections instead of Python's 10.
# A full collection walks every object the process holds, and after Dagster, pandas and pandera are
# imported that is over a million: a 90-day bootstrap spent ~0.4 s of its ~4.5 s in them (benchmarks/README.md).
# Peak memory is unchanged (measured): the run's garbage is freed by reference counting, not by these passes.
FULL_COLLECTION_EVERY = 1000


def configure_batch_process() -> None:
    """Garbage-collection settings for a process that runs one batch of work and exits."""
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_COLLECTION_EVERY)


def exit_fast(code: int) -> NoReturn:
    """Leave the process with ``code`` once its work is written, skipping the interpreter's teardown.

    By now every warehouse connection and the Dagster instance are closed and the worker threads joined
    (the warehouse database kept open for the next connection is closed here);
    what remains is freeing the millions of objects pandas, pandera and Dagster created, one by one, which
    takes ~0.7 s after a bootstrap and changes nothing on disk. Log handlers and the standard streams are
    flushed first. Only the console entry points use it: ``cli.main()`` itself returns normally (tests).
    """
    warehouse = sys.modules.get("crypto_assets.warehouse")  # not imported by commands that never open it
    if warehouse is not None:
        warehouse.release_all()  # the open warehouse database is closed (checkpointed), not dropped
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
