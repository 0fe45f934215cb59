"""farm/pipeline.py: stages overlapped in threads keep order, bound memory and stop cleanly on errors."""

from __future__ import annotations

import threading
import time

import pytest

from farm.pipeline import Timer, ahead, behind


class Boom(RuntimeError):
    pass


def numbers(n: int, fail_at: int | None = None, log: list | None = None):
    for i in range(n):
        if i == fail_at:
            raise Boom(f"at {i}")
        if log is not None:
            log.append(i)
        yield i


@pytest.mark.parametrize("depth", [0, 1, 4])
def test_ahead_yields_every_item_in_order(depth):
    assert list(ahead(numbers(50), depth)) == list(range(50))


@pytest.mark.parametrize("depth", [0, 2])
def test_ahead_raises_the_producers_error_after_the_items_before_it(depth):
    seen = []
    with pytest.raises(Boom, match="at 7"):
        for item in ahead(numbers(20, fail_at=7), depth):
            seen.append(item)
    assert seen == list(range(7))


def test_ahead_runs_at_most_depth_items_ahead_and_stops_when_the_consumer_does():
    produced: list[int] = []
    gen = ahead(numbers(1000, log=produced), depth=3)
    assert next(gen) == 0
    gen.close()  # the consumer stops early: the producer thread ends and the source is closed
    assert len(produced) <= 1 + 3 + 1  # the one taken, the queue, the one blocked on put
    assert not [t for t in threading.enumerate() if t.name == "farm-ahead"]


@pytest.mark.parametrize("depth", [0, 1, 3])
def test_behind_consumes_every_item_in_order(depth):
    out = []
    with behind(out.append, depth) as sink:
        for i in range(100):
            sink.put(i)
    assert out == list(range(100))


@pytest.mark.parametrize("depth", [0, 2])
def test_behind_raises_the_consumers_error_and_stops_the_producer(depth):
    def consume(i):
        if i == 5:
            raise Boom("encode failed")

    put = 0
    with pytest.raises(Boom, match="encode failed"):
        with behind(consume, depth) as sink:
            for i in range(1000):
                sink.put(i)
                put += 1
    assert put < 1000  # put raised the consumer's error well before the end
    assert not [t for t in threading.enumerate() if t.name == "farm-behind"]


def test_behind_stops_without_finishing_when_the_producer_fails():
    out = []
    gate = threading.Event()

    def consume(i):
        gate.wait(10)  # the consumer is busy with item 0 until the producer has failed
        out.append(i)

    def open_gate_once_stopped(sink):
        sink._stop.wait(10)
        gate.set()

    with pytest.raises(Boom):
        with behind(consume, depth=8) as sink:
            threading.Thread(target=open_gate_once_stopped, args=(sink,), daemon=True).start()
            for i in range(8):
                sink.put(i)
            raise Boom("network failed")
    assert len(out) <= 1  # at most the item in hand is finished; the queued ones are dropped
    assert not [t for t in threading.enumerate() if t.name == "farm-behind"]


def test_timer_records_cpu_seconds_of_the_stage_thread_beside_wall():
    timer = Timer()
    with timer.stage("sleep"):
        time.sleep(0.05)
    with timer.stage("spin"):
        end = time.thread_time() + 0.05
        while time.thread_time() < end:
            pass
    assert timer.seconds["sleep"] >= 0.05 and timer.cpu["sleep"] < 0.02  # waiting costs wall, not CPU
    # two clocks: the thread's CPU clock may read a few microseconds past the wall clock over the same span
    assert timer.cpu["spin"] >= 0.05 and timer.seconds["spin"] >= timer.cpu["spin"] - 1e-3
    assert timer.receipt_seconds() == {"sleep": timer.seconds["sleep"], "spin": timer.seconds["spin"],
                                       "sleep_cpu": timer.cpu["sleep"], "spin_cpu": timer.cpu["spin"]}
