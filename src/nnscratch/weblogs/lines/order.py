"""Putting lines in time order: the one order every consumer of time windows reads."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

__all__ = ["SLACK", "TimeOrder", "in_time_order"]

SLACK = 300.0  # seconds of log time held back to put lines in time order (a request is logged when it ends)


class TimeOrder:
    """Puts items in time order, holding back at most ``slack`` seconds of log time.

    Access logs are only approximately in time order (a request is logged when
    it ends). Every consumer of time windows (training, ``evaluate``,
    ``classify``, the live watcher) reads lines through this one class, so they
    all see the same order and compute the same windows. ``release(items)``
    pushes them one at a time and returns what each lets go (so the result does
    not depend on how a caller cut them into calls); ``ready(end=True)`` flushes
    the rest. An item more than ``slack`` behind the newest one seen comes out
    at once (its window is then approximate, the same way for every consumer). Items
    with the same time come out in the order of ``tiebreak(item)`` (time stamps
    have whole seconds, so the order does not depend on how the file
    interleaved them), then in the order pushed.
    """

    def __init__(self, time_of: Any, slack: float = SLACK, tiebreak: Any = None) -> None:
        self.time_of, self.slack, self.tiebreak = time_of, float(slack), tiebreak
        self.heap: list[tuple[float, Any, int, Any]] = []
        self.newest = float("-inf")
        self.pushed = 0

    def __len__(self) -> int:
        return len(self.heap)

    def release(self, items: Iterable[Any]) -> list[Any]:
        """Push each item and take what it lets go, one item at a time: what comes out
        depends on the items alone, never on how a caller cut them into calls."""
        import heapq

        heap, push, pop, tiebreak, slack = self.heap, heapq.heappush, heapq.heappop, self.tiebreak, self.slack
        out = []
        for item in items:
            when = self.time_of(item)
            if when > self.newest:
                self.newest = when
            push(heap, (when, tiebreak(item) if tiebreak else 0, self.pushed, item))
            self.pushed += 1
            limit = self.newest - slack
            while heap and heap[0][0] < limit:
                out.append(pop(heap)[3])
        return out

    def ready(self, end: bool = False, most: int | None = None) -> list[Any]:
        """The items that can go now, in order: all of them with ``end`` (at most ``most``, the
        oldest first; the rest stay for the next call). Once ``end`` has emptied it, it starts afresh."""
        import heapq

        out: list[Any] = []
        room = len(self.heap) if most is None else most
        while self.heap and len(out) < room and (end or self.heap[0][0] < self.newest - self.slack):
            out.append(heapq.heappop(self.heap)[3])
        if end and not self.heap:
            self.newest = float("-inf")
        return out


def in_time_order(
    items: Iterable[Any], time_of: Any, slack: float = SLACK, tiebreak: Any = None
) -> Iterator[Any]:  # fmt: skip
    """``items`` re-ordered by ``TimeOrder`` (see there), as a generator."""
    order = TimeOrder(time_of, slack, tiebreak)
    for item in items:
        yield from order.release((item,))
    yield from order.ready(end=True)
