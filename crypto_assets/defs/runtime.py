"""How runs execute and talk: in one process, with a compact console log.

Every job (the bootstrap, the refresh and runs launched from the UI) runs its steps in one process: the
steps are sequential anyway (one DuckDB writer), and a process per step spends seconds importing before
each one. The console logger prints one short line per step, check and progress message instead of
Dagster's verbose default; everything still lands in the instance's event log and the UI."""

import logging
import sys
import time

import dagster as dg

_SHOWN_EVENTS = {"STEP_SUCCESS", "STEP_FAILURE", "ASSET_CHECK_EVALUATION", "RUN_FAILURE"}


class CompactFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        meta = getattr(record, "dagster_meta", None) or {}
        step = (meta.get("step_key") or "run").replace("__", "/")
        event = meta.get("dagster_event")
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        if event is None:
            return f"{stamp}   {step:<44} {meta.get('orig_message', record.getMessage())}"
        kind = event.event_type_value
        if kind == "STEP_SUCCESS":
            return f"{stamp} ok {step} ({event.event_specific_data.duration_ms / 1000:.1f} s)"
        if kind == "ASSET_CHECK_EVALUATION":
            evaluation = event.event_specific_data
            verdict = "passed" if evaluation.passed else f"FAILED ({evaluation.severity.value})"
            return f"{stamp}   check {evaluation.asset_key.to_user_string()} {evaluation.check_name}: {verdict}"
        return f"{stamp} !! {step}: {meta.get('orig_message', record.getMessage())}"


class _ShownEvents(logging.Filter):
    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        event = (getattr(record, "dagster_meta", None) or {}).get("dagster_event")
        if event is None:
            return record.levelno >= self.level
        return event.event_type_value in _SHOWN_EVENTS


@dg.logger(
    {"log_level": dg.Field(str, is_required=False, default_value="INFO")},
    description="Compact console output: steps, checks and the assets' own progress lines.",
)
def compact_console_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    logger = logging.getLogger("crypto_assets.run")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logger.handlers.clear()
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(CompactFormatter())
    handler.addFilter(_ShownEvents(logging.getLevelName(init_context.logger_config["log_level"].upper())))
    logger.addHandler(handler)
    return logger


def runtime_definitions() -> dg.Definitions:
    return dg.Definitions(executor=dg.in_process_executor, loggers={"console": compact_console_logger})
