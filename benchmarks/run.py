"""Benchmark runner: ``python -m benchmarks`` (or ``python benchmarks/run.py``).

Configurations (MNIST-shaped data: the shared MNIST's 60,000 train+validation
images when ``NNSCRATCH_DATA`` points at it, else synthetic 60,000 x 784):

* **A** 784-128-10 ReLU, softmax cross-entropy, Adam 1e-3, batch 128.
* **B** 784-30-10 sigmoid, quadratic cost, SGD 3.0, batch 10 (Nielsen's network).
* **C** 784-1024-1024-10 ReLU, Adam 1e-3, batch 256 (matrix-product bound).
* **D** inference throughput of the A network on 60,000 samples.

Each contender trains for ``warmup + epochs`` epochs in this one process,
interleaved epoch by epoch (round 1: one epoch of each, round 2: ...), so a
slow spell of a shared machine hits every contender alike. The reported time
is the median of the timed epochs, and every ratio is computed pair by pair
from the same run. The **limit** is the epoch's matrix-product
FLOPs divided by NumPy's measured matrix-product rate for the same shapes.
Results are printed as a table and written as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import competitors

CONFIGS: dict[str, dict[str, Any]] = {
    "A": {
        "sizes": [784, 128, 10],
        "activation": "relu",
        "loss": "cross_entropy",
        "optimizer": "adam",
        "lr": 1e-3,
        "batch_size": 128,
    },
    "B": {
        "sizes": [784, 30, 10],
        "activation": "sigmoid",
        "loss": "quadratic",
        "optimizer": "sgd",
        "lr": 3.0,
        "batch_size": 10,
    },
    "C": {
        "sizes": [784, 1024, 1024, 10],
        "activation": "relu",
        "loss": "cross_entropy",
        "optimizer": "adam",
        "lr": 1e-3,
        "batch_size": 256,
    },
}
RESULTS = Path(__file__).resolve().parent / "results"


def load_data(max_rows: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None, str]:
    """60,000 training rows (MNIST train + validation, or synthetic) and MNIST test if available."""
    root = os.environ.get("NNSCRATCH_DATA")
    path = Path(root) / "mnist.pkl.gz" if root else None
    if path is not None and path.is_file():
        import gzip
        import pickle

        with gzip.open(path, "rb") as f:
            train, val, test = pickle.load(f, encoding="latin1")
        X = np.concatenate([train[0], val[0]]).astype(np.float32)
        y = np.concatenate([train[1], val[1]])
        source = f"MNIST ({path})"
        X_test, y_test = test[0].astype(np.float32), test[1]
    else:
        rng = np.random.default_rng(0)
        X = rng.random((60_000, 784), dtype=np.float32)
        y = rng.integers(0, 10, 60_000)
        X_test = y_test = None
        source = "synthetic 60,000 x 784 float32"
    if max_rows:
        X, y = X[:max_rows], y[:max_rows]
    return X, y, X_test, y_test, source


# Timed rounds per config by default: more where a round takes seconds, since
# this machine's speed wanders and every extra pair narrows the median.
TIMED_ROUNDS = {"A": 10, "B": 5, "C": 5, "D": 10}


def build_network(cfg: dict[str, Any], seed: int = 0) -> Any:
    import nnscratch as nn

    opt = nn.Adam(cfg["lr"]) if cfg["optimizer"] == "adam" else nn.SGD(cfg["lr"])
    out_act = "softmax" if cfg["loss"] == "cross_entropy" else "sigmoid"
    init = None if cfg["optimizer"] == "adam" else "normal"
    return nn.Network.from_sizes(
        cfg["sizes"], cfg["activation"], out_act, loss=cfg["loss"], optimizer=opt, initializer=init, seed=seed
    )


def nnscratch_trainer(cfg: dict[str, Any], X: np.ndarray, y: np.ndarray, blas_threads: str = "auto",
                      kernels_on: bool | None = None) -> tuple[Any, Any]:  # fmt: skip
    """One ``fit(epochs=1)`` per call, timed from the start of training to the
    end of the epoch (the input checks ``fit`` makes first are not counted).
    ``blas_threads`` is the thread policy for this contender (``nnscratch.threads``),
    ``kernels_on`` whether the fused optimizer kernels run (None: the default)."""
    import nnscratch as nn
    from nnscratch import kernels, threads

    net = build_network(cfg)
    targets = y if cfg["loss"] == "cross_entropy" else nn.functional.one_hot(y, cfg["sizes"][-1])
    stamps: list[float] = []

    class Clock(nn.Callback):
        def on_train_begin(self, info: dict[str, Any]) -> None:
            stamps.append(time.perf_counter())

        def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
            stamps.append(time.perf_counter())

    def epoch() -> float:
        stamps.clear()
        threads.set_blas_threads(blas_threads)
        kernels.use_kernels(kernels_on)
        try:
            net.fit(X, targets, epochs=1, batch_size=cfg["batch_size"], callbacks=[Clock()])
        finally:
            threads.set_blas_threads(None)
            kernels.use_kernels(None)
        return stamps[1] - stamps[0]

    return epoch, net


def matmul_limit(cfg: dict[str, Any], n: int) -> tuple[Any, dict[str, float]]:
    """An epoch of just the matrix products of a training epoch, with the same
    shapes: forward ``x @ W``, weight gradient ``x^T @ dz`` and, past the first
    layer, input gradient ``dz @ W^T``. Returns a timed-epoch callable and the
    FLOP count; the limit is FLOPs / NumPy's rate, i.e. that epoch's time."""
    b, sizes = cfg["batch_size"], cfg["sizes"]
    rng = np.random.default_rng(0)
    shapes = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        shapes.append(((b, n_in), (n_in, n_out)))
        shapes.append(((n_in, b), (b, n_out)))
        if i > 0:
            shapes.append(((b, n_out), (n_out, n_in)))
    ops = [(rng.random(a, dtype=np.float32), rng.random(c, dtype=np.float32)) for a, c in shapes]
    flops_step = sum(2 * a.shape[0] * a.shape[1] * c.shape[1] for a, c in ops)
    steps = -(-n // b)

    def epoch() -> float:
        start = time.perf_counter()
        for _ in range(steps):
            for a, c in ops:
                a @ c
        return time.perf_counter() - start

    return epoch, {"epoch_gflop": flops_step * steps / 1e9}


def memory_probe(cfg_name: str, rows: int | None) -> dict[str, float] | None:
    """Train config A for one epoch in a fresh process and read its peak RSS."""
    if not Path("/proc/self/clear_refs").exists():
        return None
    root = str(Path(__file__).resolve().parents[1])
    code = (
        f"import json,sys; sys.path.insert(0, {root!r}); from benchmarks.memory import probe; "
        f"print(json.dumps(probe({cfg_name!r}, {rows!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def machine_info(threads: int) -> dict[str, Any]:
    from threadpoolctl import threadpool_info

    cpu = "unknown"
    if Path("/proc/cpuinfo").exists():
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    blas = [
        {k: p.get(k) for k in ("internal_api", "version", "num_threads", "threading_layer", "architecture")}
        for p in threadpool_info()
        if p.get("user_api") == "blas"
    ]
    info: dict[str, Any] = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "threads": threads,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": blas,
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["torch_blas"] = torch.backends.mkldnn.is_available() and "mkldnn" or "default"
    except ImportError:
        info["torch"] = None
    import sklearn

    info["sklearn"] = sklearn.__version__
    return info


def median(values: list[float]) -> float:
    return float(np.median(values))


class Busy:
    """``count`` processes spinning on a core each while the block runs: other work
    sharing the machine, as a notebook, a build or a second training would."""

    def __init__(self, count: int) -> None:
        self.count, self.processes = count, []

    def __enter__(self) -> Busy:
        code = "while True: pass"
        self.processes = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(self.count)]
        if self.count:
            time.sleep(0.3)  # let them reach the run queue
        return self

    def __exit__(self, *exc: Any) -> None:
        for process in self.processes:
            process.kill()
            process.wait()


def run(args: argparse.Namespace) -> dict[str, Any]:
    X, y, X_test, y_test, source = load_data(args.rows)
    n = X.shape[0]
    threads = args.threads or os.cpu_count() or 1
    try:
        import torch  # noqa: F401

        has_torch = True
    except ImportError:
        has_torch = False
        print("PyTorch is not installed (pip install -e '.[bench]'): its columns are skipped.", file=sys.stderr)
    results: dict[str, Any] = {"data": source, "rows": n, "warmup": args.warmup}
    results["machine"] = machine_info(threads)
    for name in args.configs:
        if name == "D":
            continue
        cfg = CONFIGS[name]
        contenders: dict[str, tuple[Any, Any]] = {}
        epoch, net = nnscratch_trainer(cfg, X, y)
        contenders["nnscratch"] = (epoch, lambda data, net=net: net.predict(data).argmax(axis=1))
        from nnscratch import kernels

        if kernels.available():  # the accelerator's effect: the same engine on NumPy alone
            contenders["nnscratch_numpy"] = (nnscratch_trainer(cfg, X, y, kernels_on=False)[0], None)
        if args.busy:  # the thread policy's effect: the same engine with BLAS left on all threads
            contenders["nnscratch_all_threads"] = (nnscratch_trainer(cfg, X, y, blas_threads="off")[0], None)
        if has_torch:
            contenders["torch"] = competitors.torch_trainer(cfg, X, y, threads)
        if name == "A":
            contenders["sklearn"] = competitors.sklearn_trainer(cfg, X, y)
        if name == "B" and not args.skip_naive:
            contenders["naive"] = competitors.naive_trainer(X, y, np.random.default_rng(0))
        limit_epoch, limit = matmul_limit(cfg, n)
        contenders["limit"] = (limit_epoch, None)
        times: dict[str, list[float]] = {who: [] for who in contenders}
        busy: dict[str, list[float]] = {who: [] for who in contenders}
        total = args.warmup + (args.epochs or TIMED_ROUNDS[name])
        for round_ in range(total):  # interleaved: one epoch each, round after round
            print(f"[{name}] round {round_ + 1}/{total}: {', '.join(contenders)}", file=sys.stderr)
            for who, (run_epoch, _) in contenders.items():
                times[who].append(run_epoch())
            if args.busy:  # then the same round again with busy processes beside it
                with Busy(args.busy):
                    for who, (run_epoch, _) in contenders.items():
                        busy[who].append(run_epoch())
        row: dict[str, Any] = {"config": cfg, "epochs_timed": total - args.warmup, "epoch_seconds": times}
        if args.busy:
            row["busy_processes"] = args.busy
            row["busy_epoch_seconds"] = busy
            for who in contenders:
                quiet, loaded = times[who][args.warmup :], busy[who][args.warmup :]
                pairs = [b / a for a, b in zip(quiet, loaded, strict=True)]
                row[f"{who}_busy_s"] = median(loaded)
                row[f"{who}_busy_over_quiet"] = median(pairs)
                row[f"{who}_busy_over_quiet_range"] = [min(pairs), max(pairs)]
            for who in contenders:
                if who != "nnscratch":
                    pairs = [a / b for a, b in zip(busy["nnscratch"][args.warmup :], busy[who][args.warmup :],
                                                   strict=True)]  # fmt: skip
                    row[f"busy_ratio_vs_{who}"] = median(pairs)
                    row[f"busy_ratio_vs_{who}_range"] = [min(pairs), max(pairs)]
        ours = times["nnscratch"][args.warmup :]
        for who, (_, predict) in contenders.items():
            row[f"{who}_s"] = median(times[who][args.warmup :])
            if who != "nnscratch":
                # Pair by pair: each round's epochs ran within seconds of each
                # other, so their ratio is immune to the machine's slow drift.
                pairs = [a / b for a, b in zip(ours, times[who][args.warmup :], strict=True)]
                row[f"ratio_vs_{who}"] = median(pairs)
                row[f"ratio_vs_{who}_range"] = [min(pairs), max(pairs)]
            if X_test is not None and predict is not None:
                row[f"{who}_test_accuracy"] = float(np.mean(predict(X_test) == y_test))
        limit["seconds"] = row.pop("limit_s")
        limit["gflops"] = limit["epoch_gflop"] / limit["seconds"]
        row["limit"] = limit
        results[name] = row
    if "D" in args.configs:
        results["D"] = inference(X, threads, has_torch, args.epochs or TIMED_ROUNDS["D"])
    if not args.skip_memory:
        print("[memory] one epoch of A in a fresh process ...", file=sys.stderr)
        results["memory"] = memory_probe("A", args.rows)
    return results


def inference(X: np.ndarray, threads: int, has_torch: bool, repeats: int) -> dict[str, Any]:
    """Samples per second predicting all of ``X`` with the A network (class
    probabilities), nnscratch and PyTorch alternating call by call."""
    net = build_network(CONFIGS["A"])
    contenders: dict[str, Any] = {"nnscratch": lambda: net.predict(X)}
    if has_torch:
        import torch

        torch.set_num_threads(threads)
        model = torch.nn.Sequential(torch.nn.Linear(784, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
        Xt = torch.from_numpy(X)

        def torch_predict() -> None:
            with torch.no_grad():
                torch.softmax(model(Xt), dim=1)

        contenders["torch"] = torch_predict
    times: dict[str, list[float]] = {who: [] for who in contenders}
    for _ in range(repeats + 1):
        for who, predict in contenders.items():
            start = time.perf_counter()
            predict()
            times[who].append(time.perf_counter() - start)
    row: dict[str, Any] = {"nnscratch_samples_per_s": X.shape[0] / median(times["nnscratch"][1:])}
    if has_torch:
        row["torch_samples_per_s"] = X.shape[0] / median(times["torch"][1:])
        pairs = [b / a for a, b in zip(times["nnscratch"][1:], times["torch"][1:], strict=True)]
        row["throughput_vs_torch"] = median(pairs)
        row["throughput_vs_torch_range"] = [min(pairs), max(pairs)]
    return row


WHO = [
    ("nnscratch", "nnscratch_test_accuracy"),
    ("PyTorch", "torch_test_accuracy"),
    ("scikit-learn", "sklearn_test_accuracy"),
]


def table(results: dict[str, Any]) -> str:
    """The results as a Markdown table."""
    header = [
        "config", "nnscratch s/epoch", "PyTorch s/epoch", "vs PyTorch", "scikit-learn s/epoch", "vs scikit-learn",
        "naive s/epoch", "vs naive", "limit s/epoch (GFLOP/s)", "vs limit",
    ]  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]

    def fmt(value: Any, spec: str = ".3f") -> str:
        return "" if value is None else format(value, spec)

    def ratio(row: dict[str, Any], key: str, spec: str = ".2f") -> str:
        """The median pairwise ratio and, in brackets, the lowest and highest round's."""
        if key not in row:
            return ""
        low, high = row[f"{key}_range"]
        return f"{row[key]:{spec}} ({low:{spec}}-{high:{spec}})"

    for name in ("A", "B", "C"):
        if name not in results:
            continue
        r = results[name]
        limit = r["limit"]
        cells = [
            name, fmt(r["nnscratch_s"]), fmt(r.get("torch_s")), ratio(r, "ratio_vs_torch"),
            fmt(r.get("sklearn_s")), ratio(r, "ratio_vs_sklearn"), fmt(r.get("naive_s")),
            ratio(r, "ratio_vs_naive", ".3f"), f"{limit['seconds']:.3f} ({limit['gflops']:.0f})",
            ratio(r, "ratio_vs_limit"),
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    if "D" in results:
        d = results["D"]
        cells = [
            "D (inference, samples/s)", f"{d['nnscratch_samples_per_s']:,.0f}",
            fmt(d.get("torch_samples_per_s"), ",.0f"), f"{ratio(d, 'throughput_vs_torch')} x throughput",
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |" + " |" * 6)
    accuracy = [
        f"{name} after {results['warmup'] + results[name]['epochs_timed']} epochs: "
        f"nnscratch {results[name]['nnscratch_test_accuracy']:.4f}"
        + (f", PyTorch {results[name]['torch_test_accuracy']:.4f}" if "torch_test_accuracy" in results[name] else "")
        + (
            f", scikit-learn {results[name]['sklearn_test_accuracy']:.4f}"
            if "sklearn_test_accuracy" in results[name]
            else ""
        )
        for name in ("A", "B", "C")
        if name in results and "nnscratch_test_accuracy" in results[name]
    ]
    if accuracy:
        lines.append("")
        lines.append("MNIST test accuracy, " + "; ".join(accuracy))
    mem = results.get("memory")
    if mem:
        lines.append("")
        lines.append(
            f"Peak memory training A: {mem['training_peak_mb']:.0f} MB above the process before loading data; "
            f"dataset {mem['dataset_mb']:.0f} MB, budget dataset + 200 MB = {mem['dataset_mb'] + 200:.0f} MB."
        )
    return "\n".join(lines)


def _inverse(row: dict[str, Any], key: str) -> str:
    """The other contender's time over nnscratch's (how much slower it is)."""
    if key not in row:
        return ""
    low, high = row[f"{key}_range"]
    return f"{1 / row[key]:.2f} ({1 / high:.2f}-{1 / low:.2f})"


def contention_table(results: dict[str, Any]) -> str:
    """Quiet and contended ratios side by side (contention mode)."""
    header = ["config", "nnscratch quiet s", "busy s", "busy / quiet", "NumPy only: vs accelerated, quiet",
              "NumPy only: busy / quiet", "all BLAS threads: busy / quiet",
              "PyTorch busy / quiet", "vs PyTorch quiet", "vs PyTorch busy", "scikit-learn busy / quiet"]  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]

    def ratio(row: dict[str, Any], key: str) -> str:
        if key not in row:
            return ""
        low, high = row[f"{key}_range"]
        return f"{row[key]:.2f} ({low:.2f}-{high:.2f})"

    for name in ("A", "B", "C"):
        r = results.get(name)
        if not r or "busy_processes" not in r:
            continue
        cells = [
            name, f"{r['nnscratch_s']:.3f}", f"{r['nnscratch_busy_s']:.3f}", ratio(r, "nnscratch_busy_over_quiet"),
            _inverse(r, "ratio_vs_nnscratch_numpy"), ratio(r, "nnscratch_numpy_busy_over_quiet"),
            ratio(r, "nnscratch_all_threads_busy_over_quiet"), ratio(r, "torch_busy_over_quiet"),
            ratio(r, "ratio_vs_torch"), ratio(r, "busy_ratio_vs_torch"), ratio(r, "sklearn_busy_over_quiet"),
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--configs", nargs="+", default=["A", "B", "C", "D"], choices=["A", "B", "C", "D"])
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="timed rounds for every config (default: A 10, B 5, C 5, D 10; more where a round is cheap)",
    )
    parser.add_argument("--warmup", type=int, default=1, help="untimed warm-up epochs, default 1")
    parser.add_argument("--rows", type=int, default=None, help="use only the first ROWS training rows (quick runs)")
    parser.add_argument(
        "--threads", type=int, default=None, help="threads for PyTorch (default: all cores, like NumPy's BLAS)"
    )
    parser.add_argument("--skip-naive", action="store_true", help="skip the slow per-sample loop in B")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument(
        "--busy",
        type=int,
        default=0,
        help="also run every round with this many busy processes beside it (contention mode)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "latest.json")
    args = parser.parse_args(argv)
    results = run(args)
    print(table(results))
    if args.busy:
        print()
        print(contention_table(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"\nJSON written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
