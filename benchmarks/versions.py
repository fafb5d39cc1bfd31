"""Compare two source trees of nnscratch epoch by epoch, interleaved.

    python -m benchmarks.versions --before /path/to/old/src --configs A B C D A64 P --rounds 6

Each tree runs in its own worker process (its ``src`` first on ``sys.path``),
which loads the data once and then, on request, trains one epoch of a config
(``fit(epochs=1)``, timed from the start of training as in ``benchmarks.run``)
or predicts 60,000 rows (D); ``A64`` times one whole ``fit(epochs=1)`` call of
the A network on float64 MNIST (the input checks and conversion included) and
``P`` 50 ``partial_fit`` calls of one 128-row batch each through the
scikit-learn adapter: the per-call overhead. The rounds alternate the two workers, and starting
first alternates too, so a slow spell of a shared machine hits both alike.
Each ratio is this tree's time over the other's from the same round; the
report gives the median and the range. A refactor that keeps speed gives
ratios around 1.0.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from statistics import median

REPO = Path(__file__).resolve().parents[1]

WORKER = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1]); sys.path.insert(1, sys.argv[2])
import numpy as np
from benchmarks.run import CONFIGS, load_data, nnscratch_trainer, build_network
X, y, _, _, _ = load_data(None)
trainers = {}
for line in sys.stdin:
    name = line.strip()
    if name == "D":
        if "D" not in trainers:
            net = build_network(CONFIGS["A"]); net.predict(X[:1000]); trainers["D"] = net
        start = time.perf_counter(); trainers["D"].predict(X); seconds = time.perf_counter() - start
    elif name == "A64":  # one whole fit(epochs=1) call, input checks included, on float64 X
        if "A64" not in trainers:
            trainers["A64"] = (build_network(CONFIGS["A"]), X.astype(np.float64))
            trainers["A64"][0].fit(trainers["A64"][1], y, epochs=1, batch_size=128)
        net, X64 = trainers["A64"]
        start = time.perf_counter(); net.fit(X64, y, epochs=1, batch_size=128); seconds = time.perf_counter() - start
    elif name == "P":  # 50 partial_fit calls of one 128-row batch each (scikit-learn adapter)
        from nnscratch.sklearn import NeuralNetClassifier
        if "P" not in trainers:
            trainers["P"] = NeuralNetClassifier(hidden_layer_sizes=(128,), batch_size=128)
            trainers["P"].partial_fit(X[:128], y[:128], classes=np.arange(10))
        start = time.perf_counter()
        for i in range(50):
            trainers["P"].partial_fit(X[128 * i : 128 * (i + 1)], y[128 * i : 128 * (i + 1)])
        seconds = time.perf_counter() - start
    else:
        if name not in trainers:
            trainers[name] = nnscratch_trainer(CONFIGS[name], X, y)[0]
            trainers[name]()  # warm-up epoch
        seconds = trainers[name]()
    print(json.dumps({"config": name, "seconds": seconds, "module": __import__("nnscratch").__file__}), flush=True)
"""


def _worker(src: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WORKER, str(src), str(REPO)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)  # fmt: skip


def _ask(worker: subprocess.Popen, config: str, src: Path) -> float:
    worker.stdin.write(config + "\n")
    worker.stdin.flush()
    answer = json.loads(worker.stdout.readline())
    if not Path(answer["module"]).resolve().is_relative_to(src.resolve()):  # the tree asked for, not another
        raise SystemExit(f"the worker for {src} imported nnscratch from {answer['module']}")
    return answer["seconds"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True, type=Path, help="the other tree's src folder")
    parser.add_argument("--after", type=Path, default=REPO / "src", help="this tree's src folder")
    parser.add_argument("--configs", nargs="+", default=["A", "B", "C", "D"])
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args(argv)
    for name in ("before", "after"):
        if not (getattr(args, name) / "nnscratch" / "__init__.py").is_file():
            parser.error(f"--{name} {getattr(args, name)} holds no nnscratch package (give a tree's src folder)")
    before, after = _worker(args.before), _worker(args.after)
    results = {}
    try:
        for config in args.configs:
            ratios, times = [], {"before": [], "after": []}
            for r in range(args.rounds):
                order = [("before", before), ("after", after)][:: 1 if r % 2 == 0 else -1]
                got = {label: _ask(worker, config, getattr(args, label)) for label, worker in order}
                times["before"].append(got["before"])
                times["after"].append(got["after"])
                ratios.append(got["after"] / got["before"])
            results[config] = {"after_over_before": median(ratios), "low": min(ratios), "high": max(ratios),
                               "before_s": median(times["before"]), "after_s": median(times["after"])}  # fmt: skip
            row = results[config]
            print(f"{config}: after/before {row['after_over_before']:.3f} ({row['low']:.3f}-{row['high']:.3f}), "
                  f"median {row['before_s']:.3f} s -> {row['after_s']:.3f} s", flush=True)  # fmt: skip
    finally:
        for worker in (before, after):
            worker.stdin.close()
            worker.wait()
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
