"""What keeping the clients' evidence across restarts costs the watcher.

``python -m benchmarks.watch_memory MODEL LOG [--rounds 6] [--batch 2000]`` runs the watcher
in this process (a dry run, in steps of ``--batch`` lines, on a new state file each time) over
LOG twice per round: once as it is, committing the clients' evidence with every step
(``memory.StreamMemory``), and once with that part of the commit left out (what a step cost
before). The two alternate round by round, and the ratio is taken within each round; the
median and the range are printed.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from nnscratch.weblogs.watch.actions import Actions
from nnscratch.weblogs.watch.policy import BanPolicy
from nnscratch.weblogs.watch.state import Remembered, Store
from nnscratch.weblogs.watch.watcher import Watcher, WatchSettings


def watch_once(model: str, log: str, batch: int, remember: bool) -> float:
    """Seconds for a dry-run watcher to work through ``log`` from its start."""
    with tempfile.TemporaryDirectory() as folder:
        store = Store(Path(folder) / "state.sqlite")
        watcher = Watcher(model, [log], store, Actions([], report=lambda m: None), policy=BanPolicy(),
                          settings=WatchSettings(from_start=True, dry_run=True, batch=batch),
                          report=lambda m: None)  # fmt: skip
        if not remember:
            watcher.memory.changes = lambda decided: Remembered([], [])  # type: ignore[method-assign]
        watcher.restore()
        start = time.perf_counter()
        while watcher.step() == batch:
            pass
        elapsed = time.perf_counter() - start
        store.close()
        return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("log")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--batch", type=int, default=2000)
    args = parser.parse_args()
    lines = sum(1 for _ in open(args.log, "rb"))
    watch_once(args.model, args.log, args.batch, True)  # warm-up: caches, the page cache
    ratios, kept, left = [], [], []
    for _ in range(args.rounds):
        with_memory = watch_once(args.model, args.log, args.batch, True)
        without = watch_once(args.model, args.log, args.batch, False)
        kept.append(with_memory)
        left.append(without)
        ratios.append(with_memory / without)
    print(f"{lines:,} lines, steps of {args.batch:,}, {args.rounds} rounds")
    print(f"with the evidence kept: {lines / statistics.median(kept):,.0f} lines/s; "
          f"without: {lines / statistics.median(left):,.0f} lines/s")  # fmt: skip
    print(f"time with / without: {statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})")


if __name__ == "__main__":
    main()
