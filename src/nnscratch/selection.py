"""Train many networks in parallel and keep the best, locally or on Dask.

Networks started from different seeds, or with different sizes and learning
rates, land in different minima; the practical habit is to train several and
keep the one with the best validation score. ``select_best`` does that:

* each **candidate** is a configuration (a dict) plus a seed; ``grid``,
  ``random_search`` and ``restarts`` generate them;
* ``build(config, seed)`` returns a fresh ``Network`` (``build_from_config``
  covers the usual hyperparameters); ``fit_params(config)`` the arguments of
  ``fit`` (epochs, batch size, ...);
* candidates run through joblib: processes on this machine (large arrays are
  memory-mapped, so workers share the data rather than copy it), or a Dask
  cluster through joblib's Dask backend (``backend="dask"`` with a scheduler
  address, or ``"local"`` for a local cluster), where the data is scattered to
  the workers once;
* a candidate that fails or diverges is recorded in the table with its error;
  the search goes on. Ctrl-C stops the search and returns the best so far.

Every candidate trains from its own seed with BLAS limited to one thread, so
the table (apart from the seconds column) is the same whatever ``n_jobs`` and
backend. Ties are broken by the candidate's position in the list.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._validation import check_choice, check_positive_int
from .extras import require
from .network import Network

__all__ = [
    "Candidate", "SelectionResult", "grid", "random_search", "restarts", "build_from_config", "select_best",
    "dask_client", "dask_session",
]  # fmt: skip


@dataclass(frozen=True)
class Candidate:
    """One configuration to train, with the seed it trains from."""

    config: Mapping[str, Any]
    seed: int

    def describe(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.config.items())


def grid(space: Mapping[str, Sequence[Any]], seeds: Iterable[int] = (0,)) -> list[Candidate]:
    """Every combination of the values in ``space`` (a dict of lists), for each seed.

    >>> [c.config for c in grid({"hidden": [16, 32], "lr": [0.01]})]
    [{'hidden': 16, 'lr': 0.01}, {'hidden': 32, 'lr': 0.01}]
    """
    keys = list(space)
    for key in keys:
        if isinstance(space[key], (str, bytes)) or not isinstance(space[key], Iterable):
            raise ValueError(f"grid values must be lists. Received {key}={space[key]!r}.")
    combos = [dict(zip(keys, values, strict=True)) for values in itertools.product(*(space[k] for k in keys))]
    return [Candidate(c, int(s)) for s in seeds for c in combos]


def random_search(space: Mapping[str, Any], n: int, seed: int = 0) -> list[Candidate]:
    """``n`` configurations drawn from ``space``: a list is sampled uniformly, a
    ``(low, high)`` tuple of floats log-uniformly (learning rates, L2), a
    callable ``f(rng)`` as it likes. Candidate ``i`` trains from seed ``seed + i``."""
    n = check_positive_int("n", n)
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        config = {}
        for key, spec in space.items():
            if callable(spec):
                config[key] = spec(rng)
            elif isinstance(spec, tuple) and len(spec) == 2 and all(isinstance(v, float) and v > 0 for v in spec):
                config[key] = float(math.exp(rng.uniform(math.log(spec[0]), math.log(spec[1]))))
            else:
                values = list(spec)
                config[key] = values[int(rng.integers(len(values)))]
        out.append(Candidate(config, seed + i))
    return out


def restarts(config: Mapping[str, Any], k: int, seed: int = 0) -> list[Candidate]:
    """The same configuration ``k`` times, from seeds ``seed ... seed + k - 1``."""
    k = check_positive_int("k", k)
    return [Candidate(dict(config), seed + i) for i in range(k)]


def build_from_config(n_inputs: int, n_outputs: int, **defaults: Any) -> Callable[[Mapping[str, Any], int], Network]:
    """A ``build`` function for the usual keys: ``hidden`` (int or list),
    ``activation``, ``output_activation``, ``loss``, ``optimizer``, ``lr``,
    ``l2``, ``dropout``, ``dtype``. ``defaults`` fill keys a config omits."""
    from .optimizers import get_optimizer

    def build(config: Mapping[str, Any], seed: int) -> Network:
        c = {**defaults, **config}
        hidden = c.get("hidden", [64])
        hidden = [hidden] if isinstance(hidden, int) else list(hidden)
        optimizer = get_optimizer(c.get("optimizer", "adam"), learning_rate=float(c.get("lr", 1e-3)))
        return Network.from_sizes(
            [n_inputs, *hidden, n_outputs], c.get("activation", "relu"), c.get("output_activation", "softmax"),
            loss=c.get("loss", "cross_entropy"), optimizer=optimizer, l2=float(c.get("l2", 0.0)),
            dropout=float(c.get("dropout", 0.0)), dtype=c.get("dtype", "float32"), seed=seed,
        )  # fmt: skip

    return build


FIT_KEYS = ("epochs", "batch_size", "shuffle", "callbacks")


def _default_fit_params(config: Mapping[str, Any]) -> dict[str, Any]:
    return {k: config[k] for k in FIT_KEYS if k in config}


@dataclass
class SelectionResult:
    """The best network, its row, and the table of every candidate."""

    best: Network | None
    best_index: int | None
    table: list[dict[str, Any]]
    metric: str
    interrupted: bool = False
    skipped: list[int] = field(default_factory=list)

    def __repr__(self) -> str:
        ok = sum(r["status"] == "ok" for r in self.table)
        best = next((r[self.metric] for r in self.table if r["index"] == self.best_index), None)
        note = ", interrupted" if self.interrupted else ""
        counts = f"{ok} of {len(self.table)} ok{note}"
        return f"SelectionResult(best_index={self.best_index}, {self.metric}={best}, {counts})"

    def format_table(self) -> str:
        """The table as aligned text, best row marked with ``*``."""
        scores = ["val_loss"] + (["val_accuracy"] if any("val_accuracy" in r for r in self.table) else [])
        headers = ["", "#", "config", "seed", "status", *scores, "epochs", "seconds"]
        rows = []
        for r in self.table:
            rows.append([
                "*" if r["index"] == self.best_index else "", str(r["index"]), r["config_text"], str(r["seed"]),
                r["status"], *(_num(r.get(k)) for k in scores), str(r["epochs"]), f"{r['seconds']:.2f}",
            ])  # fmt: skip
        widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(headers)]
        lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
        lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
        failed = [r for r in self.table if r["status"] != "ok"]
        lines += [f"#{r['index']} {r['status']}: {r['error']}" for r in failed]
        if self.interrupted:
            lines.append(f"Interrupted: {len(self.skipped)} candidate(s) did not run.")
        return "\n".join(lines)


def _num(value: Any) -> str:
    return "-" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.5f}"


def _train_one(
    index: int, candidate: Candidate, build: Callable[..., Network], fit_params: Callable[..., dict[str, Any]],
    X: Any, y: Any, X_val: Any, y_val: Any,
) -> tuple[dict[str, Any], Network | None]:  # fmt: skip
    """Train and score one candidate; never raises (failures go in the row)."""
    from threadpoolctl import threadpool_limits

    from .training import TrainingDivergedError

    row: dict[str, Any] = {
        "index": index, "config": dict(candidate.config), "config_text": candidate.describe(), "seed": candidate.seed,
        "status": "ok", "val_loss": None, "epochs": 0, "error": "",
    }  # fmt: skip
    start = time.perf_counter()
    network = None
    try:
        with threadpool_limits(1):  # the same arithmetic in every worker, whatever the backend
            network = build(candidate.config, candidate.seed)
            history = network.fit(X, y, **fit_params(candidate.config))
            row["epochs"] = len(history.epoch)
            scores = network.evaluate(X_val, y_val)
        row["val_loss"] = scores["loss"]
        row.update({f"val_{k}" if k != "loss" else "val_loss": v for k, v in scores.items()})
        if not math.isfinite(row["val_loss"]):
            raise FloatingPointError(f"validation loss is {row['val_loss']}")
    except TrainingDivergedError as err:
        row.update(status="diverged", error=str(err).split(";")[0], epochs=len(err.history.epoch))
        network = None
    except Exception as err:  # noqa: BLE001 - a failed candidate must not end the search
        row.update(status="failed", error=f"{type(err).__name__}: {err}")
        network = None
    row["seconds"] = time.perf_counter() - start
    return row, network


def select_best(
    build: Callable[[Mapping[str, Any], int], Network],
    X: Any,
    y: Any,
    candidates: Sequence[Candidate],
    validation: tuple[Any, Any] | float = 0.2,
    *,
    fit_params: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None,
    metric: str = "val_loss",
    n_jobs: int = 1,
    backend: str = "loky",
    scheduler: str | None = None,
    progress: bool = False,
) -> SelectionResult:
    """Train every candidate and keep the best on validation data.

    Parameters
    ----------
    build : callable ``(config, seed) -> Network``
        A fresh network for a candidate (see ``build_from_config``).
    X, y : training data (arrays or a scipy.sparse X)
    candidates : list of Candidate
    validation : (X_val, y_val) or float, default 0.2
        Held-out data, or the fraction of (X, y) to hold out (a seeded split).
    fit_params : callable ``config -> dict``, optional
        Keyword arguments for ``fit``; by default the config's ``epochs``,
        ``batch_size``, ``shuffle`` and ``callbacks``.
    metric : str, default "val_loss"
        ``"val_loss"`` (lower is better) or ``"val_accuracy"`` (higher is better).
    n_jobs : int, default 1
        Parallel workers (-1: all cores).
    backend : {"loky", "threading", "dask"}
        ``"dask"`` runs on a Dask cluster through joblib's Dask backend.
    scheduler : str, optional
        With ``backend="dask"``: a scheduler address (``"tcp://host:8786"``) or
        ``"local"`` to start a local cluster of ``n_jobs`` workers. Without it,
        the current ``distributed.Client`` is used.
    progress : bool
        Show a progress bar of finished candidates.

    Returns
    -------
    SelectionResult
        ``best`` (the trained network), ``best_index``, ``table`` (one dict per
        candidate, in candidate order), ``format_table()``.
    """
    joblib = require("joblib", "parallel")

    if not candidates:
        raise ValueError("candidates is empty: pass at least one Candidate (see grid, random_search, restarts).")
    check_choice("metric", metric, ("val_loss", "val_accuracy"))
    check_choice("backend", backend, ("loky", "threading", "dask"))
    if isinstance(validation, float):
        from .data import train_test_split

        X, X_val, y, y_val = train_test_split(X, y, test_size=validation, seed=0)
    else:
        X_val, y_val = validation
    fit_params = fit_params or _default_fit_params
    tasks = (joblib.delayed(_train_one)(i, c, build, fit_params, X, y, X_val, y_val) for i, c in enumerate(candidates))
    rows: dict[int, dict[str, Any]] = {}
    best: tuple[Any, int, Network] | None = None
    sign = 1.0 if metric == "val_loss" else -1.0
    interrupted = False
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(candidates), unit="candidate", desc="search")
    client = cluster = None
    owned = False
    try:
        if backend == "dask":
            client, cluster, owned = dask_client(scheduler, n_jobs)
            # The arrays travel to the workers once, not once per candidate.
            config = joblib.parallel_config(backend="dask", n_jobs=n_jobs if n_jobs > 0 else -1,
                                            scatter=[X, y, X_val, y_val])  # fmt: skip
        else:
            config = joblib.parallel_config(backend=backend, n_jobs=n_jobs)
        with config:
            results = joblib.Parallel(return_as="generator_unordered")(tasks)
            try:
                for row, network in results:
                    rows[row["index"]] = row
                    if network is not None and row["status"] == "ok":
                        key = (sign * row[metric], row["index"])  # ties: the earlier candidate wins
                        if best is None or key < best[0]:
                            best = (key, row["index"], network)
                    if bar is not None:
                        bar.update(1)
            except KeyboardInterrupt:
                interrupted = True
                results.close()
    finally:
        if bar is not None:
            bar.close()
        if owned:  # we connected or started it, so we close it
            client.close()
            if cluster is not None:
                cluster.close()
    table = [rows[i] for i in sorted(rows)]
    skipped = [i for i in range(len(candidates)) if i not in rows]
    return SelectionResult(best[2] if best else None, best[1] if best else None, table, metric, interrupted, skipped)


def dask_client(scheduler: str | None, n_jobs: int) -> tuple[Any, Any, bool]:
    """A Dask client: ``(client, cluster or None, owned)``. ``scheduler`` is the address of a
    running scheduler (``"tcp://host:8786"``), ``"local"`` for a local cluster of ``n_jobs``
    single-threaded worker processes on loopback (``-1``: one per core), or None for the
    current client. An owned client (and a cluster started here) is the caller's to close."""
    try:
        require("distributed", "dask")
        from distributed import Client, LocalCluster
    except ImportError:
        raise ImportError("backend='dask' needs dask.distributed: pip install 'dask[distributed]'.") from None
    if scheduler == "local":
        workers = n_jobs if n_jobs > 0 else None
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=None)  # fmt: skip
        return Client(cluster), cluster, True
    if scheduler:
        return Client(scheduler, timeout="10s"), None, True
    return Client.current(), None, False


@contextlib.contextmanager
def dask_session(scheduler: str | None, n_jobs: int) -> Iterator[Any]:
    """``dask_client`` as a ``with`` block: the client, closed (with a cluster started here) after."""
    client, cluster, owned = dask_client(scheduler, n_jobs)
    try:
        yield client
    finally:
        if owned:
            client.close()
            if cluster is not None:
                cluster.close()
