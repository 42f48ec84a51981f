"""SQLite's write queue (`crowd.service.WriteGate`): submissions go first, everyone else in arrival order."""

from __future__ import annotations

import threading
import time

from synsetforge.crowd.service import WriteGate


def _queue_behind_holder(gate: WriteGate, arrivals: list[tuple[str, bool]]) -> list[str]:
    """Hold the gate, let `arrivals` queue one by one (name, urgent), release; the order they got in."""
    order: list[str] = []
    entered, queued = threading.Event(), threading.Event()

    def holder() -> None:
        with gate.hold():
            entered.set()
            queued.wait(10)

    def waiter(name: str, urgent: bool) -> None:
        with gate.hold(urgent):
            order.append(name)

    first = threading.Thread(target=holder)
    first.start()
    entered.wait(5)
    threads = []
    for name, urgent in arrivals:
        t = threading.Thread(target=waiter, args=(name, urgent))
        t.start()
        threads.append(t)
        time.sleep(0.05)  # arrival order
    time.sleep(0.2)  # the last one reaches its wait
    queued.set()
    first.join(10)
    for t in threads:
        t.join(10)
    return order


def test_submissions_go_first_and_the_rest_in_arrival_order() -> None:
    arrivals = [("next1", False), ("next2", False), ("submit1", True), ("next3", False), ("submit2", True)]
    assert _queue_behind_holder(WriteGate(), arrivals) == ["submit1", "submit2", "next1", "next2", "next3"]


def _most_holders(gate: WriteGate) -> tuple[int, int]:
    """12 threads entering 50 times each (a third urgent): the most holders at once, and those left in."""
    inside = 0
    most = 0
    guard = threading.Lock()

    def work(urgent: bool) -> None:
        nonlocal inside, most
        for _ in range(50):
            with gate.hold(urgent):
                with guard:
                    inside += 1
                    most = max(most, inside)
                time.sleep(0.0005)
                with guard:
                    inside -= 1

    threads = [threading.Thread(target=work, args=(i % 3 == 0,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return most, inside


def test_one_holder_at_a_time_under_contention() -> None:
    assert _most_holders(WriteGate()) == (1, 0)


def test_a_wider_gate_admits_up_to_its_capacity() -> None:
    # PostgreSQL's per-process gate may be wider than SQLite's one writer: never more than its capacity
    assert _most_holders(WriteGate(capacity=3)) == (3, 0)
