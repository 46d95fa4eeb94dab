"""The UTC hour and day grid shared by the price clients, the transforms and the assets (no dependencies)."""

HOUR_NS = 3_600_000_000_000
