"""The one way tests wait for something: poll a condition until a deadline, never sleep a fixed time.

A fixed sleep is either too short on a busy 2-core CI machine (a flaky failure) or too long everywhere
else; a loop without a deadline hangs the suite instead of failing with what it waited for.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

#: an upper bound on any wait, so a broken run fails with a message instead of hanging; not a speed
#: expectation (a busy 2-core machine can take minutes to render what a wait is for)
DEFAULT_TIMEOUT_S = 300.0


def wait_until(condition: Callable[[], T], what: str, *, timeout: float = DEFAULT_TIMEOUT_S,
               interval: float = 0.2, process: subprocess.Popen | None = None) -> T:
    """Call ``condition`` until it returns something truthy, and return that.

    Fails (AssertionError) naming ``what`` once ``timeout`` seconds pass, or at once, with its output,
    when ``process`` (the driver being watched) exits meanwhile: what it waited for will not come.
    """
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if process is not None and process.poll() is not None:
            out, err = process.communicate()
            raise AssertionError(f"exited with code {process.returncode} while waiting for {what}:\n{out}\n{err}")
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
    return value


def take_all(feeder, timeout: float = 5.0) -> list:
    """Every chunk a ShardFeeder hands out, in the order it hands them, until it is exhausted (each take
    waits at most ``timeout`` seconds, so a stuck feeder fails on its own deadline, not the suite's)."""
    taken = []
    while not feeder.exhausted:
        if (chunk := feeder.take(timeout=timeout)) is not None:
            taken.append(chunk)
    return taken
