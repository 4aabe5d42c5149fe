"""Waiting for a condition instead of sleeping a fixed time."""

from __future__ import annotations

import time


def wait_for(condition, timeout: float, interval: float = 0.01, what: str = "condition"):
    """Poll `condition` every `interval` seconds until it returns a true value, and return that
    value; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
    return value
