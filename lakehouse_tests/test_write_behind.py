"""WriteBehind: the loops over months write month M on a background thread while they compute month M+1.

Plain threads and events, no timing: each property is proved by what would deadlock, fail or be missing otherwise.
"""

import threading
from datetime import date

import polars as pl
import pytest

from lakehouse import storage

WAIT_S = 10.0  # failure bound of the events below, not an expected duration


def test_the_caller_goes_on_while_the_write_runs():
    computed = threading.Event()
    done = []

    def write(month):
        # waits for the caller to compute the next month: this only happens if submit() returned at once
        assert computed.wait(WAIT_S), "submit() blocked until the write finished"
        done.append(month)

    with storage.WriteBehind() as writer:
        writer.submit(write, 1)
        computed.set()  # the caller's next month
    assert done == [1]


def test_writes_run_one_at_a_time_in_submission_order():
    running, log = threading.Lock(), []

    def write(month):
        assert running.acquire(blocking=False), "two writes ran at once"
        try:
            log.append(month)
        finally:
            running.release()

    with storage.WriteBehind() as writer:
        for month in range(1, 13):
            writer.submit(write, month)
    assert log == list(range(1, 13))


def test_a_failed_write_stops_the_loop_at_the_next_submit():
    started = []

    def write(month):
        started.append(month)
        if month == 2:
            raise OSError("disk full")

    def loop():
        with storage.WriteBehind() as writer:
            for month in (1, 2, 3, 4):
                writer.submit(write, month)

    with pytest.raises(OSError, match="disk full"):
        loop()
    assert started == [1, 2]  # month 3 was never started: its submit re-raised month 2's error


def test_the_last_write_is_waited_for_and_its_error_raised_on_leaving():
    with pytest.raises(OSError, match="last"), storage.WriteBehind() as writer:
        writer.submit(lambda: (_ for _ in ()).throw(OSError("last")))


def test_an_error_of_the_loop_lets_the_pending_delta_write_finish(tmp_path):
    """The pending write is one atomic Delta commit: it completes (or leaves nothing), and the loop's error is the
    one raised."""
    path = str(tmp_path / "t")
    frame = pl.DataFrame({"flight_month": [date(2013, 1, 1)] * 3, "x": [1, 2, 3]})

    def loop():
        with storage.WriteBehind() as writer:
            writer.submit(
                storage.replace_partition,
                path,
                frame,
                column="flight_month",
                value=date(2013, 1, 1),
                partition_by=["flight_month"],
            )
            raise RuntimeError("month 2 failed")

    with pytest.raises(RuntimeError, match="month 2 failed"):
        loop()
    assert storage.read(path).sort("x").equals(frame)
