"""Throughput and memory of ``nnscratch logs classify`` on a large generated log.

``python -m benchmarks.weblogs_throughput MODEL [--lines 1000000]`` writes a
log of that many lines by repeating the shared sample (``$NNSCRATCH_DATA/logs``)
with perturbations (client addresses re-drawn, times shifted by whole days,
query values varied, so both repeats and new lines occur), then classifies it
in a child process and reports lines per second and the resident memory
sampled every 0.2 s (it should stay flat as the file streams through).

``--against REV`` compares this checkout with an earlier commit instead: both
versions classify the same file with the same model, alternating round by
round (which one goes first alternates too, so a noisy minute hurts both), and
the median of the per-round ratios of their lines per second is reported. The
two versions are the same package, so each runs in a child process of its own;
lines per second are the ones ``classify`` reports (start-up excluded). When the
model file format changed between them, ``--against-model`` names a model that
REV trained on the same data with the same settings.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

IP = re.compile(r"^(\d+)\.(\d+)\.(\d+)\.(\d+) ")
DAY = re.compile(r"\[(\d{2})/")
QUERY_VALUE = re.compile(r"=(\d+)")


def generate(target: Path, lines: int, seed: int = 0) -> None:
    root = Path(os.environ.get("NNSCRATCH_DATA", "../shared/data")) / "logs"
    sample = [line for path in sorted(root.glob("*.log")) for line in path.read_text(errors="replace").splitlines()]
    if not sample:
        raise SystemExit(f"no *.log files in {root}: set NNSCRATCH_DATA to the shared data folder")
    rng = random.Random(seed)
    with target.open("w") as out:
        written = 0
        while written < lines:
            for line in sample:
                if written >= lines:
                    break
                if rng.random() < 0.5:
                    line = IP.sub(lambda m: f"{m[1]}.{m[2]}.{rng.randrange(256)}.{rng.randrange(256)} ", line)
                if rng.random() < 0.2:
                    line = QUERY_VALUE.sub(lambda m: f"={rng.randrange(1000)}", line)
                shift = written // len(sample)  # each pass through the sample lands on a later day
                line = DAY.sub(lambda m, shift=shift: f"[{(int(m[1]) + shift) % 28 + 1:02d}/", line)
                out.write(line + "\n")
                written += 1


def _lines_per_second(model: str, path: Path, source: Path | None) -> float:
    """``classify``'s own lines/s for one run, from this checkout or from ``source`` (a src folder)."""
    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = str(source) + os.pathsep + env.get("PYTHONPATH", "")
    command = [sys.executable, "-m", "nnscratch", "logs", "classify", model, str(path), "-o", os.devnull]
    run = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    return float(re.search(r"\(([\d,]+) lines/s", run.stderr)[1].replace(",", ""))


def compare(model: str, path: Path, revision: str, rounds: int, their_model: str | None = None) -> None:
    """Interleaved rounds of this checkout against ``revision`` (see the module docstring);
    ``their_model``: the model ``revision`` classifies with, when its model files differ."""
    import statistics
    import tempfile

    with tempfile.TemporaryDirectory() as tree:
        subprocess.run(["git", "worktree", "add", "--detach", tree, revision], check=True, capture_output=True)
        try:
            ratios, now, then = [], [], []
            for i in range(rounds):
                order = [None, Path(tree) / "src"] if i % 2 == 0 else [Path(tree) / "src", None]
                speed = {str(src): _lines_per_second(model if src is None else their_model or model, path, src)
                         for src in order}  # fmt: skip
                now.append(speed["None"])
                then.append(speed[str(Path(tree) / "src")])
                ratios.append(now[-1] / then[-1])
                print(f"round {i + 1}: this checkout {now[-1]:,.0f} lines/s, {revision} {then[-1]:,.0f} lines/s, "
                      f"ratio {ratios[-1]:.3f}", flush=True)  # fmt: skip
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", tree], check=True, capture_output=True)
    print(f"median ratio (this checkout / {revision}) over {rounds} rounds: {statistics.median(ratios):.3f} "
          f"[{min(ratios):.3f}, {max(ratios):.3f}]; medians {statistics.median(now):,.0f} and "
          f"{statistics.median(then):,.0f} lines/s")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--file", default="/tmp/nnscratch-1M.log")
    parser.add_argument("--against", metavar="REV", help="compare with this git revision, interleaved")
    parser.add_argument("--rounds", type=int, default=6, help="rounds of the comparison")
    parser.add_argument(
        "--against-model",
        metavar="MODEL",
        help="the model REV classifies with (a model trained by REV, when its model files differ)",
    )
    args = parser.parse_args()
    path = Path(args.file)
    if not path.is_file() or sum(1 for _ in path.open("rb")) != args.lines:
        start = time.perf_counter()
        generate(path, args.lines)
        size = path.stat().st_size / 2**20
        print(f"generated {args.lines:,} lines ({size:.0f} MB) in {time.perf_counter() - start:.0f} s")
    if args.against:
        compare(args.model, path, args.against, args.rounds, args.against_model)
        return
    command = [sys.executable, "-m", "nnscratch", "logs", "classify", args.model, str(path), "-o", os.devnull,
               "--ban-list", os.devnull]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    samples: list[int] = []

    def rss_mb(pid: int) -> int:
        """Resident memory of a process and its children (the classify worker)."""
        total = 0
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            total += int(next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1])
            for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
                total += rss_mb(int(child)) * 1024
        except (OSError, StopIteration, ValueError):
            pass
        return total // 1024

    def watch() -> None:
        while proc.poll() is None:
            samples.append(rss_mb(proc.pid))
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    _, err = proc.communicate()
    seconds = time.perf_counter() - start
    watcher.join()
    print(err.strip())
    print(f"wall {seconds:.1f} s including start-up: {args.lines / seconds:,.0f} lines/s")
    if samples:
        quarter = max(1, len(samples) // 4)
        print("resident memory of the command and its worker (MB), peak by quarter of the run: "
              + ", ".join(str(max(samples[i : i + quarter])) for i in range(0, len(samples), quarter)))  # fmt: skip


if __name__ == "__main__":
    main()
