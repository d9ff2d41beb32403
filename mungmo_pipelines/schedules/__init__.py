"""Schedules: the neighbourhood verification expiry every minute (``verification_expiry.py``), and the
consistency checks nightly and hourly (``consistency.py``)."""

from mungmo_pipelines.schedules.verification_expiry import (
    EXPIRY_CRON,
    EXPIRY_SCHEDULE,
    EXPIRY_TIMEZONE,
    verification_expiry_schedule,
)

__all__ = ["EXPIRY_CRON", "EXPIRY_SCHEDULE", "EXPIRY_TIMEZONE", "verification_expiry_schedule"]
