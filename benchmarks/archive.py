"""``logs classify`` on a local Dask cluster of 1, 2 and 4 workers: lines/s and speed-up.

``python -m benchmarks.archive MODEL [--lines 2000000] [--files 8] [--rounds 2]``
writes an archive of ``--files`` daily logs holding ``--lines`` lines in all, made
from the shared sample (``$NNSCRATCH_DATA/logs``) as a site's rotated logs look:
each file is one day, its lines in time order (the sample's lines in their order,
re-timed evenly over the day), half of the address-keyed lines moved to an address
drawn from a pool of 30,000 visitors. Then, round by round, it starts a local
cluster of each size (the order of the sizes alternates between rounds), runs the
CLI against it in a child process (``--scheduler``; start-up of the cluster
excluded, the command's own lines/s reported) and, for reference, the
single-process command (one pipeline worker beside the parser, the default).
The speed-up is the median over rounds of each size's lines/s over one worker's.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

IP = re.compile(r"^(\d+\.\d+\.\d+\.\d+) ")
STAMP = re.compile(r"\[\d{2}/\w{3}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}\]")
DAY0 = 1_700_000_000 - 1_700_000_000 % 86_400  # a midnight, UTC


def generate(folder: Path, lines: int, files: int, seed: int = 0) -> list[Path]:
    """The archive (module docstring): ``files`` daily logs, ``lines`` lines in all."""
    root = Path(os.environ.get("NNSCRATCH_DATA", "../shared/data")) / "logs"
    sample = [line for path in sorted(root.glob("*.log")) for line in path.read_text(errors="replace").splitlines()]
    sample = [line for line in sample if STAMP.search(line)]
    if not sample:
        raise SystemExit(f"no *.log files in {root}: set NNSCRATCH_DATA to the shared data folder")
    rng = random.Random(seed)
    pool = [f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}" for _ in range(30_000)]
    per_file, paths, k = lines // files, [], 0
    for day in range(files):
        path = folder / f"access-{day:02d}.log"
        with path.open("w") as out:
            for i in range(per_file):
                line = sample[k % len(sample)]
                k += 1
                if rng.random() < 0.5:
                    line = IP.sub(lambda m: rng.choice(pool) + " ", line)
                when = time.gmtime(DAY0 + day * 86_400 + i * 86_400 // per_file)
                out.write(STAMP.sub(time.strftime("[%d/%b/%Y:%H:%M:%S +0000]", when), line, count=1) + "\n")
        paths.append(path)
    return paths


def _lines_per_second(model: str, paths: list[Path], scheduler: str | None) -> float:
    """The command's own lines/s, in a child process (against ``scheduler``, or alone)."""
    command = [sys.executable, "-m", "nnscratch", "logs", "classify", model, *map(str, paths), "-o", os.devnull]
    if scheduler:
        command += ["--scheduler", scheduler]
    run = subprocess.run(command, capture_output=True, text=True, check=True)
    return float(re.search(r"\(([\d,]+) lines/s", run.stderr)[1].replace(",", ""))


def _on_cluster(model: str, paths: list[Path], workers: int) -> float:
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:  # fmt: skip
        client.wait_for_workers(workers)
        return _lines_per_second(model, paths, cluster.scheduler_address)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        paths = generate(Path(folder), args.lines, args.files)
        print(f"{args.lines:,} lines in {args.files} daily files", flush=True)
        speed: dict[str, list[float]] = {}
        for r in range(args.rounds):
            sizes = args.workers if r % 2 == 0 else args.workers[::-1]
            for n in sizes:
                speed.setdefault(f"{n} worker(s)", []).append(_on_cluster(args.model, paths, n))
                print(f"round {r + 1}: {n} worker(s) {speed[f'{n} worker(s)'][-1]:,.0f} lines/s", flush=True)
            speed.setdefault("one process (default)", []).append(_lines_per_second(args.model, paths, None))
            print(f"round {r + 1}: one process {speed['one process (default)'][-1]:,.0f} lines/s", flush=True)
    base = speed[f"{args.workers[0]} worker(s)"]
    print("| run | lines/s (median) | rounds | speed-up over 1 worker (median, range) |\n|---|---:|---|---|")
    for name, values in speed.items():
        ratios = [v / b for v, b in zip(values, base, strict=True)]
        print(f"| {name} | {statistics.median(values):,.0f} | {', '.join(f'{v:,.0f}' for v in values)} | "
              f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}) |")  # fmt: skip


if __name__ == "__main__":
    main()
