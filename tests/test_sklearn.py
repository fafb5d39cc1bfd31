"""The scikit-learn estimators keep scikit-learn's contract, and sparse inputs
are used without densifying."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import load_digits, make_classification, make_multilabel_classification, make_regression
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import nnscratch as nn
from nnscratch.sklearn import NeuralNetClassifier, NeuralNetRegressor


def expected_failures(estimator):
    return {
        # Stochastic mini-batch training: a sample of weight 2 is one row of one
        # batch, while a repeated sample is two rows, usually in different
        # batches, so the trajectories differ (scikit-learn's own MLPClassifier
        # and MLPRegressor are marked as failing these two checks for the same reason).
        "check_sample_weight_equivalence_on_dense_data": "mini-batch SGD is not weight/repeat equivalent",
        "check_sample_weight_equivalence_on_sparse_data": "mini-batch SGD is not weight/repeat equivalent",
    }


# Checks that report "skipped" here, and why that is right:
# - check_array_api_input: nnscratch computes with NumPy only and does not claim
#   Array API support, so there is nothing to check (scikit-learn skips it unless
#   SCIPY_ARRAY_API is set and the estimator is tagged as supporting it).
# - check_classifiers_multilabel_output_format_decision_function: like
#   MLPClassifier, the classifier has no decision_function.
@parametrize_with_checks([NeuralNetClassifier(max_iter=50), NeuralNetRegressor(max_iter=50)],
                         expected_failed_checks=expected_failures)  # fmt: skip
def test_scikit_learn_common_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


@pytest.fixture
def blobs():
    X, y = make_classification(300, 6, n_informative=4, n_classes=3, random_state=0)
    return X, y


def test_arbitrary_labels_and_probabilities(blobs):
    X, y = blobs
    names = np.array(["cat", "dog", "emu"])[y]
    clf = NeuralNetClassifier((32,), max_iter=300, learning_rate_init=0.01, random_state=0).fit(X, names)
    assert clf.classes_.tolist() == ["cat", "dog", "emu"]
    assert set(clf.predict(X)) <= {"cat", "dog", "emu"} and clf.score(X, names) > 0.9
    np.testing.assert_allclose(clf.predict_proba(X).sum(axis=1), 1.0, rtol=1e-6)
    odd = np.array([3, 10, 42])[y]
    clf2 = NeuralNetClassifier((32,), max_iter=300, learning_rate_init=0.01, random_state=0).fit(X, odd)
    assert clf2.classes_.tolist() == [3, 10, 42] and set(clf2.predict(X)) <= {3, 10, 42}


def test_binary_uses_one_sigmoid_unit(blobs):
    X, y = blobs
    clf = NeuralNetClassifier((16,), max_iter=100, random_state=0).fit(X, y == 1)
    assert clf.network_.n_outputs == 1 and clf.predict_proba(X).shape == (300, 2)
    assert clf.predict(X).dtype == bool


def test_multilabel():
    X, Y = make_multilabel_classification(200, 10, n_classes=4, random_state=0)
    clf = NeuralNetClassifier((64,), max_iter=300, learning_rate_init=0.01, random_state=0).fit(X, Y)
    assert clf.predict(X).shape == (200, 4) and set(np.unique(clf.predict(X))) <= {0, 1}
    assert clf.score(X, Y) > 0.6  # subset accuracy
    assert clf.predict_proba(X).shape == (200, 4)


def test_single_and_multi_output_regression():
    X, y = make_regression(300, 5, n_targets=1, noise=1.0, random_state=0)
    reg = NeuralNetRegressor((64,), max_iter=400, learning_rate_init=0.01, random_state=0)
    reg.fit(X, y / 100)
    assert reg.predict(X).shape == (300,) and reg.score(X, y / 100) > 0.95
    X2, Y2 = make_regression(300, 5, n_targets=3, noise=1.0, random_state=1)
    reg2 = NeuralNetRegressor((64,), max_iter=400, learning_rate_init=0.01, random_state=0).fit(X2, Y2 / 100)
    assert reg2.predict(X2).shape == (300, 3) and reg2.score(X2, Y2 / 100) > 0.95


def test_sample_and_class_weights_shift_predictions():
    X, y = make_classification(400, 4, n_informative=2, weights=[0.9, 0.1], random_state=0)
    plain = NeuralNetClassifier((16,), max_iter=200, random_state=0).fit(X, y)
    balanced = NeuralNetClassifier((16,), max_iter=200, random_state=0, class_weight="balanced").fit(X, y)
    assert (balanced.predict(X) == 1).sum() > (plain.predict(X) == 1).sum()
    weights = np.where(y == 1, 9.0, 1.0)
    weighted = NeuralNetClassifier((16,), max_iter=200, random_state=0).fit(X, y, sample_weight=weights)
    assert (weighted.predict(X) == 1).sum() > (plain.predict(X) == 1).sum()
    with pytest.raises(ValueError, match="class_weight names classes not in y"):
        NeuralNetClassifier(class_weight={7: 2.0}).fit(X, y)


def test_partial_fit_warm_start_and_curves(blobs):
    X, y = blobs
    clf = NeuralNetClassifier((16,), random_state=0)
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        clf.partial_fit(X, y)
    clf.partial_fit(X[:100], y[:100], classes=[0, 1, 2])
    clf.partial_fit(X[100:], y[100:])
    assert clf.n_iter_ == 2 and len(clf.loss_curve_) == 2 and clf.t_ == 300
    warm = NeuralNetClassifier((16,), max_iter=5, warm_start=True, random_state=0)
    with pytest.warns(ConvergenceWarning, match="max_iter=5 reached.*Increase max_iter"):
        warm.fit(X, y)
    first = warm.coefs_[0].copy()
    with pytest.warns(ConvergenceWarning):
        warm.fit(X, y)
    assert warm.n_iter_ == 10 and not np.array_equal(first, warm.coefs_[0])
    early = NeuralNetClassifier((16,), early_stopping=True, max_iter=500, random_state=0).fit(X, y)
    assert len(early.validation_scores_) == early.n_iter_ < 500
    assert early.best_validation_score_ == max(early.validation_scores_)


def test_not_fitted_and_bad_parameters(blobs):
    X, y = blobs
    with pytest.raises(NotFittedError):
        NeuralNetClassifier().predict(X)
    for params, match in [
        ({"hidden_layer_sizes": (0,)}, "hidden_layer_sizes"),
        ({"max_iter": 0}, "max_iter"),
        ({"batch_size": 0}, "batch_size"),
        ({"learning_rate_init": -1.0}, "learning_rate_init"),
        ({"activation": "nope"}, "Unknown activation"),
        ({"optimizer": "nope"}, "Unknown optimizer"),
    ]:
        with pytest.raises(ValueError, match=match):
            NeuralNetClassifier(**params).fit(X, y)


def test_pipeline_grid_search_cross_validation_and_pickle(blobs):
    X, y = blobs
    pipe = make_pipeline(StandardScaler(), NeuralNetClassifier((16,), max_iter=100, random_state=0))
    from sklearn.neural_network import MLPClassifier

    reference = make_pipeline(StandardScaler(), MLPClassifier((16,), max_iter=100, random_state=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        scores = cross_val_score(pipe, X, y, cv=3)
        theirs = cross_val_score(reference, X, y, cv=3)
        assert scores.mean() > theirs.mean() - 0.05, (scores, theirs)  # same settings, similar accuracy
        grid = GridSearchCV(pipe, {"neuralnetclassifier__hidden_layer_sizes": [(8,), (32,)]}, cv=2, n_jobs=2)
        grid.fit(X, y)
    assert grid.best_params_["neuralnetclassifier__hidden_layer_sizes"] in [(8,), (32,)]
    clone = pickle.loads(pickle.dumps(grid.best_estimator_))
    np.testing.assert_array_equal(clone.predict_proba(X), grid.best_estimator_.predict_proba(X))
    clone[-1].set_params(warm_start=True, max_iter=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clone.fit(X, y)  # training continues after unpickling


def test_sparse_equals_dense_on_a_small_matrix():
    rng = np.random.default_rng(0)
    dense = (rng.random((120, 40)) < 0.1) * rng.random((120, 40))
    y = rng.integers(0, 3, 120)
    results = []
    for X in (dense, sp.csr_matrix(dense), sp.csc_matrix(dense)):
        clf = NeuralNetClassifier((8,), max_iter=20, dtype="float64", random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(X, y)
        results.append(clf.predict_proba(X))
    np.testing.assert_allclose(results[1], results[0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(results[2], results[0], rtol=1e-10, atol=1e-12)


def test_sparse_engine_never_densifies_and_skips_the_input_gradient(monkeypatch):
    X = sp.random(50, 30, density=0.1, format="csr", random_state=0, dtype=np.float32)
    net = nn.Network.from_sizes([30, 4, 2], seed=0)
    for name in ("toarray", "todense"):
        monkeypatch.setattr(type(X), name, lambda *a, **k: pytest.fail("densified the input"))
    net.fit(X, np.arange(50) % 2, epochs=2, batch_size=16)
    assert net.predict(X).shape == (50, 2)
    calls = []
    original = nn.Dense.backward_linear

    def spy(self, grad_z, need_input_grad=True):
        calls.append(need_input_grad)
        return original(self, grad_z, need_input_grad)

    monkeypatch.setattr(nn.Dense, "backward_linear", spy)
    net.fit(X, np.arange(50) % 2, epochs=1, batch_size=50)
    assert calls == [True, False]  # the first layer never computes dC/dX


def test_sparse_million_features_trains_in_bounded_memory():
    """100,000 x 1,000,000 with 20 non-zeros per row (dense: 373 GB), one epoch,
    in a fresh process whose peak resident memory is read from /proc."""
    code = textwrap.dedent("""
        import numpy as np, scipy.sparse as sp
        from pathlib import Path
        from nnscratch.sklearn import NeuralNetClassifier
        rng = np.random.default_rng(0)
        n, d, k = 100_000, 1_000_000, 20
        cols = rng.integers(0, d, n * k).astype(np.int32)
        X = sp.csr_matrix((np.ones(n * k, np.float32), cols, np.arange(0, n * k + 1, k)), shape=(n, d))
        y = cols[::k] % 2  # the label is readable from the first feature of each row
        clf = NeuralNetClassifier((8,), batch_size=1000, max_iter=1, optimizer="sgd", learning_rate_init=0.5,
                                  random_state=0)
        clf.fit(X, y)
        peak = [l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmHWM")][0]
        print(int(peak.split()[1]) // 1024, len(clf.loss_curve_))
    """)
    if not sys.platform.startswith("linux"):
        pytest.skip("reads /proc")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    peak_mb, epochs = map(int, out.stdout.split())
    assert epochs == 1
    assert peak_mb < 1024, f"peak {peak_mb} MB; the dense matrix alone would be 381,470 MB"


def test_digits_accuracy_close_to_mlpclassifier():
    from sklearn.neural_network import MLPClassifier

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    ours, theirs = [], []
    for seed in range(3):
        Xa, Xb, ya, yb = train_test_split(X, y, test_size=0.25, random_state=seed, stratify=y)
        settings = {"hidden_layer_sizes": (64,), "max_iter": 60, "random_state": seed}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            ours.append(NeuralNetClassifier(**settings).fit(Xa, ya).score(Xb, yb))
            theirs.append(MLPClassifier(**settings).fit(Xa, ya).score(Xb, yb))
    # Measured means differ by a few tenths of a point; one point allows for seed noise on 450 test images.
    assert abs(np.mean(ours) - np.mean(theirs)) <= 0.01, (ours, theirs)


def test_classifier_loss_is_checked_not_ignored():
    X = np.random.default_rng(0).normal(size=(30, 3))
    y = (X[:, 0] > 0).astype(int)
    with pytest.raises(ValueError, match=r"takes its loss from the targets \(binary_cross_entropy here\).*'mse'"):
        NeuralNetClassifier((4,), max_iter=2, loss="mse").fit(X, y)
    NeuralNetClassifier((4,), max_iter=2, loss="binary_cross_entropy").fit(X, y)  # the one it would choose anyway


def test_a_continuous_target_is_refused_with_its_kind_and_the_fix():
    X, y = np.random.default_rng(0).normal(size=(20, 3)), np.linspace(0, 1, 20)
    with pytest.raises(ValueError, match="Unknown label type: 'continuous'.*NeuralNetRegressor"):
        NeuralNetClassifier(max_iter=1).fit(X, y)
    with pytest.raises(ValueError, match="Unknown label type: 'continuous'"):
        NeuralNetClassifier().partial_fit(X, y, classes=[0, 1])
