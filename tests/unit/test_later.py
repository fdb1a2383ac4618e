"""pinnacle.embedding.later: deferred calls from one shared thread (a drain's in-flight record)."""

from __future__ import annotations

import threading
import time

from pinnacle.embedding.later import call_later


def test_calls_come_in_deadline_order_from_one_thread():
    done, threads = [], set()
    finished = threading.Event()

    def record(name):
        done.append(name)
        threads.add(threading.current_thread().name)
        if len(done) == 3:
            finished.set()

    call_later(0.15, record, "third")
    call_later(0.05, record, "first")  # sooner than the one the thread waits for
    call_later(0.10, record, "second")
    assert finished.wait(5)
    assert done == ["first", "second", "third"]
    assert threads == {"pinnacle-later"}


def test_a_cancelled_call_is_not_made_and_a_failing_one_stops_nothing():
    made = []
    finished = threading.Event()

    def fail():
        raise RuntimeError("boom")

    call_later(0.02, made.append, "cancelled").cancel()
    call_later(0.03, fail)
    call_later(0.05, lambda: (made.append("after"), finished.set()))
    assert finished.wait(5)
    time.sleep(0.05)
    assert made == ["after"]
