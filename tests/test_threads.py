"""The BLAS thread policy: one thread for small products, hands off when the user chose."""

from __future__ import annotations

import numpy as np
import pytest

import nnscratch as nn
from nnscratch import threads

threadpoolctl = pytest.importorskip("threadpoolctl")  # a core dependency; named here for the reader


@pytest.fixture(autouse=True)
def clean_policy(monkeypatch):
    for name in (*threads.ENV_VARS, "NNSCRATCH_BLAS_THREADS"):
        monkeypatch.delenv(name, raising=False)
    threads.set_blas_threads(None)
    yield
    threads.set_blas_threads(None)


def _blas_threads() -> int:
    """Threads of the BLAS that NumPy's products use (the one under the policy). Other
    BLAS copies can be loaded later (numba compiling a kernel loads SciPy's)."""
    blas = [info for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas"]
    numpy_own = [info for info in blas if "numpy" in info["filepath"]] or blas[:1]
    return numpy_own[0]["num_threads"]


def test_small_products_get_one_thread_and_large_ones_are_left_alone():
    assert threads.blas_threads(128 * 784 * 128) == 1
    assert threads.blas_threads(256 * 1024 * 1024) is None


def test_the_users_own_choice_wins(monkeypatch):
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    assert threads.blas_threads(10) is None  # they set the threads: hands off
    threads.set_blas_threads(3)
    assert threads.blas_threads(10) == 3  # an explicit nnscratch choice still applies
    threads.set_blas_threads("off")
    assert threads.blas_threads(10) is None
    threads.set_blas_threads(None)
    monkeypatch.delenv("OPENBLAS_NUM_THREADS")
    monkeypatch.setenv("NNSCRATCH_BLAS_THREADS", "2")
    assert threads.blas_threads(10) == 2
    with pytest.raises(ValueError, match="'auto', 'off' or a positive integer. Received 0"):
        threads.set_blas_threads(0)


def test_fit_runs_small_products_on_one_thread_and_restores_the_setting():
    before = _blas_threads()
    seen = []

    class Probe(nn.Callback):
        def on_epoch_end(self, epoch, logs):
            seen.append(_blas_threads())

    net = nn.Network.from_sizes([20, 16, 3], seed=0)
    X, y = np.random.default_rng(0).normal(size=(64, 20)), np.arange(64) % 3
    net.fit(X, y, epochs=2, batch_size=16, callbacks=[Probe()])
    assert seen == [1, 1]
    assert _blas_threads() == before
    threads.set_blas_threads("off")
    seen.clear()
    net.fit(X, y, epochs=1, batch_size=16, callbacks=[Probe()])
    assert seen == [before]


def test_large_products_are_measured_each_epoch_and_the_faster_kept(monkeypatch):
    monkeypatch.setattr(threads, "THRESHOLD", 1000)  # make a small network "large"
    net = nn.Network.from_sizes([20, 64, 3], seed=0)
    X, y = np.random.default_rng(0).normal(size=(640, 20)), np.arange(640) % 3
    tuners = []
    original = threads.Tuner

    def spy(multiply_adds):
        tuners.append(original(multiply_adds, probe=3))
        return tuners[-1]

    monkeypatch.setattr(threads, "Tuner", spy)
    before = _blas_threads()
    net.fit(X, y, epochs=3, batch_size=32)
    assert tuners[0].active and len(tuners[0].chosen) == 3 and set(tuners[0].chosen) <= {"one", "all"}
    assert _blas_threads() == before  # closed: the library is as it was
    threads.set_blas_threads("off")
    net.fit(X, y, epochs=1, batch_size=32)
    assert not tuners[-1].active and tuners[-1].chosen == []


def test_the_tuner_keeps_the_faster_setting():
    tuner = threads.Tuner(10**9, probe=3)
    if not tuner.active:
        pytest.skip("no BLAS library that threadpoolctl can limit")
    timings = {"all": 2.0, "one": 1.0}
    for i in range(12):
        tuner.before_step(i)
        phase = "all" if i < 3 else "one" if i < 6 else None
        if phase:
            tuner.after_step(i, timings[phase])
    tuner.close()
    assert tuner.chosen == ["one"]
