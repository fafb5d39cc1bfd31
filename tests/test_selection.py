"""Parallel model selection: identical results on any backend, failures recorded."""

from __future__ import annotations

import numpy as np
import pytest

import nnscratch as nn
from nnscratch.cli import main
from nnscratch.data import train_test_split
from nnscratch.datasets import load_digits
from nnscratch.selection import Candidate, build_from_config, grid, random_search, restarts, select_best


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits()
    return train_test_split(X, y, test_size=0.25, seed=0, stratify=y)


def _comparable(result):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in result.table]


CANDIDATES = grid({"hidden": [16, 64], "lr": [1e-3, 1e-2], "epochs": [8]}, seeds=[0, 1])


def test_same_table_with_one_job_two_jobs_and_a_dask_cluster(digits):
    distributed = pytest.importorskip("distributed")
    X_train, X_val, y_train, y_val = digits
    build = build_from_config(64, 10)
    assert len(CANDIDATES) == 8
    one = select_best(build, X_train, y_train, CANDIDATES, (X_val, y_val), n_jobs=1)
    two = select_best(build, X_train, y_train, CANDIDATES, (X_val, y_val), n_jobs=2)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        dask = select_best(build, X_train, y_train, CANDIDATES, (X_val, y_val), n_jobs=2, backend="dask",
                           scheduler=cluster.scheduler_address)  # fmt: skip
    assert _comparable(one) == _comparable(two) == _comparable(dask)
    assert one.best_index == two.best_index == dask.best_index
    best_loss = min(r["val_loss"] for r in one.table)
    assert one.table[one.best_index]["val_loss"] == best_loss
    np.testing.assert_array_equal(one.best.parameters.snapshot(), dask.best.parameters.snapshot())
    assert one.best.evaluate(X_val, y_val)["loss"] == pytest.approx(best_loss)


def test_a_diverging_candidate_is_reported_and_the_rest_finish(digits):
    X_train, X_val, y_train, y_val = digits
    good = build_from_config(64, 10)

    def build(config, seed):
        if config.get("explode"):
            net = nn.Network.from_sizes([64, 32, 10], optimizer=nn.SGD(1e30), seed=seed)
            net.layers[0].params["W"][...] *= 1e20
            return net
        return good(config, seed)

    candidates = [Candidate({"epochs": 3}, 0), Candidate({"epochs": 3, "explode": True}, 1),
                  Candidate({"epochs": 3, "hidden": 0}, 2), Candidate({"epochs": 3}, 3)]  # fmt: skip
    result = select_best(build, X_train, y_train, candidates, (X_val, y_val), n_jobs=2)
    statuses = [r["status"] for r in result.table]
    assert statuses == ["ok", "diverged", "failed", "ok"]
    assert "Training diverged" in result.table[1]["error"]
    assert "sizes" in result.table[2]["error"]
    assert result.best_index in (0, 3)
    text = result.format_table()
    assert "#1 diverged" in text and "#2 failed" in text


def test_ties_go_to_the_earlier_candidate(digits):
    X_train, X_val, y_train, y_val = digits
    same = [Candidate({"epochs": 2}, 5)] * 3  # identical candidates: identical scores
    result = select_best(build_from_config(64, 10), X_train, y_train, same, (X_val, y_val), n_jobs=2)
    assert result.best_index == 0


def test_ctrl_c_returns_the_best_so_far(digits):
    X_train, X_val, y_train, y_val = digits
    good = build_from_config(64, 10)

    def build(config, seed):
        if seed == 2:
            raise KeyboardInterrupt
        return good(config, seed)

    result = select_best(build, X_train, y_train, restarts({"epochs": 2}, 4), (X_val, y_val), n_jobs=1)
    assert result.interrupted and result.best_index in (0, 1)
    assert [r["index"] for r in result.table] == [0, 1] and result.skipped == [2, 3]
    assert "Interrupted: 2 candidate(s) did not run." in result.format_table()


def test_candidate_generators():
    assert [c.seed for c in restarts({"lr": 0.1}, 3, seed=10)] == [10, 11, 12]
    g = grid({"a": [1, 2], "b": ["x"]}, seeds=[0, 1])
    assert [(c.config, c.seed) for c in g] == [({"a": 1, "b": "x"}, 0), ({"a": 2, "b": "x"}, 0),
                                               ({"a": 1, "b": "x"}, 1), ({"a": 2, "b": "x"}, 1)]  # fmt: skip
    r1 = random_search({"lr": (1e-4, 1e-1), "hidden": [16, 32, 64]}, n=20, seed=3)
    r2 = random_search({"lr": (1e-4, 1e-1), "hidden": [16, 32, 64]}, n=20, seed=3)
    assert r1 == r2 and all(1e-4 <= c.config["lr"] <= 1e-1 for c in r1)
    assert {c.config["hidden"] for c in r1} == {16, 32, 64}
    with pytest.raises(ValueError, match="grid values must be lists"):
        grid({"a": 3})
    with pytest.raises(ValueError, match="candidates is empty"):
        select_best(build_from_config(2, 2), np.zeros((4, 2)), np.array([0, 1, 0, 1]), [])


def test_cli_search_and_restarts(tmp_path, capsys):
    model = tmp_path / "s.safetensors"
    argv = ["search", "digits", "--grid", "hidden=16,32x16", "lr=0.01", "--epochs", "5", "--jobs", "2", "--quiet",
            "--out", str(model), "--no-plots"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "hidden=[32, 16], lr=0.01" in out and "Best: #" in out and "Test accuracy" in out
    assert nn.load(model).n_inputs == 64
    assert main(["train", "digits", "--restarts", "3", "--epochs", "3", "--quiet", "--out", str(model),
                 "--no-plots"]) == 0  # fmt: skip
    assert capsys.readouterr().out.count(" ok ") == 3
    assert main(["search", "digits", "--grid", "depth=3", "--quiet"]) == 1
    assert "--grid takes KEY=V1,V2" in capsys.readouterr().err
