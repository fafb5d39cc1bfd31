"""Training behaviour: XOR, overfitting, determinism, callbacks, divergence, Ctrl-C."""

from __future__ import annotations

import numpy as np
import pytest

import nnscratch as nn


def test_hand_worked_step():
    # One sigmoid neuron, x = 1, w = 0.5, b = 0.2, target y = 1, quadratic cost, lr = 1.
    #   z = 1*0.5 + 0.2 = 0.7
    #   a = sigmoid(0.7) = 0.66818777216816616
    #   dC/da = a - y = -0.33181222783183384
    #   da/dz = a (1 - a) = 0.22171287329310904
    #   dC/dz = dC/da * da/dz = -0.07356704242638361
    #   dC/dw = x * dC/dz = -0.07356704242638361;  dC/db = dC/dz
    #   w' = 0.5 + 0.07356704242638361 = 0.5735670424263836;  b' = 0.2735670424263836
    layer = nn.Dense(1, 1, "sigmoid", weights=[[0.5]], biases=[0.2])
    net = nn.Network([layer], loss=nn.Quadratic(reduction="sum"), optimizer=nn.SGD(1.0), dtype="float64")
    net.fit(np.array([[1.0]]), np.array([[1.0]]), epochs=1, batch_size=1)
    assert layer.params["W"][0, 0] == pytest.approx(0.5735670424263836, rel=1e-15)
    assert layer.params["b"][0] == pytest.approx(0.2735670424263836, rel=1e-15)


def test_learns_xor_with_2_4_1(xor):
    X, y = xor
    net = nn.Network.from_sizes(
        [2, 4, 1], "tanh", "sigmoid", loss="binary_cross_entropy", optimizer=nn.SGD(0.5), seed=0
    )
    history = net.fit(X, y, epochs=2000, batch_size=None)
    np.testing.assert_array_equal(net.predict_labels(X), y)
    assert history.history["loss"][-1] < 0.01
    assert history.history["accuracy"][-1] == 1.0


def test_overfits_32_random_samples():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(32, 10))
    y = rng.integers(0, 4, size=32)  # random labels: only memorisation can fit them
    net = nn.Network.from_sizes([10, 64, 4], "relu", optimizer=nn.Adam(0.01), seed=0)
    history = net.fit(X, y, epochs=300, batch_size=8)
    assert net.evaluate(X, y)["accuracy"] == 1.0
    assert history.history["loss"][-1] < 0.05


def test_same_seed_gives_bit_identical_weights(blobs):
    X, y = blobs
    nets = []
    for _ in range(2):
        net = nn.Network.from_sizes([4, 8, 3], "relu", seed=42, dropout=0.2)
        net.fit(X, y, epochs=3, batch_size=7)
        nets.append(net.parameters.snapshot())
    assert np.array_equal(nets[0], nets[1])
    other = nn.Network.from_sizes([4, 8, 3], "relu", seed=43, dropout=0.2)
    assert not np.array_equal(nets[0], other.parameters.snapshot())


def test_float32_by_default_and_float64_on_request(blobs):
    X, y = blobs
    for dtype in ("float32", "float64"):
        net = nn.Network.from_sizes([4, 8, 3], "sigmoid", dtype=dtype, seed=0)
        net.fit(X, y, epochs=2, batch_size=16)
        assert net.parameters.values.dtype == dtype
        assert all(p.dtype == dtype for layer in net.layers for p in layer.params.values())
        assert all(s.dtype == dtype for st in net.optimizer.state.values() for s in st.values())
        assert net.predict(X).dtype == dtype
    assert nn.Network.from_sizes([2, 2]).dtype == np.float32


def test_batch_size_none_is_full_batch_and_one_is_online(blobs):
    X, y = blobs
    for batch_size, steps in ((None, 1), (1, 60), (25, 3)):
        net = nn.Network.from_sizes([4, 3], seed=0)
        net.fit(X, y, epochs=2, batch_size=batch_size)
        assert net.optimizer.iterations == 2 * steps


def test_predict_api(blobs):
    X, y = blobs
    net = nn.Network.from_sizes([4, 16, 3], "relu", optimizer=nn.Adam(0.05), seed=0)
    net.fit(X, y, epochs=50, batch_size=16)
    proba = net.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(net.predict_labels(X), proba.argmax(axis=1))
    assert net.evaluate(X, y)["accuracy"] == 1.0
    assert net.predict(X, batch_size=7).shape == (60, 3)
    np.testing.assert_array_equal(net.predict(X, batch_size=7), net.predict(X))


def test_binary_single_unit_predict_proba_has_two_columns(xor):
    X, y = xor
    net = nn.Network.from_sizes([2, 3, 1], "tanh", "sigmoid", loss="binary_cross_entropy", seed=0)
    proba = net.predict_proba(X)
    assert proba.shape == (4, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_logits_output_gives_probabilities(blobs):
    X, y = blobs
    net = nn.Network.from_sizes([4, 3], output_activation="identity", seed=0)
    np.testing.assert_allclose(net.predict_proba(X).sum(axis=1), 1.0, rtol=1e-5)


def test_regression_network_has_no_probabilities(blobs):
    X, _ = blobs
    net = nn.Network.from_sizes([4, 2], output_activation="identity", loss="mse", seed=0)
    with pytest.raises(ValueError, match="predict_proba needs a classification loss"):
        net.predict_proba(X)
    history = net.fit(X, X[:, :2], epochs=2)
    assert "accuracy" not in history.history


def test_validation_data_and_split(blobs):
    X, y = blobs
    net = nn.Network.from_sizes([4, 8, 3], seed=0)
    h = net.fit(X, y, epochs=3, validation_data=(X[:10], y[:10]))
    assert set(h.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len(h.history["val_loss"]) == 3
    h2 = net.fit(X, y, epochs=2, validation_split=0.25)
    assert len(h2.history["val_accuracy"]) == 2
    assert h2.history["val_loss"][-1] == pytest.approx(net.evaluate(X[45:], y[45:])["loss"], rel=1e-5)


def test_early_stopping_restores_best_weights(blobs):
    # A network that can only fit flipped training labels by overfitting: the validation loss
    # turns up. (This test used SGD(5.0), whose loss blew up to 2.5e13 while staying finite;
    # that is now stopped as divergence, so it no longer makes a validation curve to stop on.)
    X_all, y_all = blobs
    order = np.random.default_rng(1).permutation(len(y_all))
    X, y = X_all[order[:30]], y_all[order[:30]].copy()
    y[:6] = (y[:6] + 1) % 3
    validation = (X_all[order[30:]], y_all[order[30:]])
    net = nn.Network.from_sizes([4, 32, 3], optimizer=nn.SGD(0.5), seed=0)
    stopper = nn.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)

    class Snapshot(nn.Callback):
        def __init__(self):
            self.weights = []

        def on_epoch_end(self, epoch, logs):
            self.weights.append(self.network.parameters.snapshot())

    snap = Snapshot()
    h = net.fit(X, y, epochs=200, batch_size=4, validation_data=validation, callbacks=[stopper, snap])
    assert h.stop_reason == "early_stopping"
    # best epoch, then `patience` tolerated epochs, then the one that stops: indices up to best + patience + 1
    assert len(h.epoch) == stopper.best_epoch + stopper.patience + 2
    assert np.array_equal(net.parameters.snapshot(), snap.weights[stopper.best_epoch])
    assert min(h.history["val_loss"]) == h.history["val_loss"][stopper.best_epoch]


def test_early_stopping_on_unknown_metric_fails_before_training(blobs):
    X, y = blobs
    net = nn.Network.from_sizes([4, 3], seed=0)
    before = net.parameters.snapshot()
    with pytest.raises(ValueError, match="val_loss.*Available: loss, accuracy"):
        net.fit(X, y, epochs=2, callbacks=[nn.EarlyStopping()])
    assert np.array_equal(before, net.parameters.snapshot())


def test_divergence_stops_restores_and_explains():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 3)) * 1e3
    y = X @ np.array([[1.0], [2.0], [3.0]])
    net = nn.Network.from_sizes([3, 16, 1], "relu", "identity", loss="mse", optimizer=nn.SGD(1.0), seed=0)
    snapshots = []

    class Keep(nn.Callback):
        def on_batch_end(self, step, logs):
            snapshots.append(self.network.parameters.snapshot())

    with pytest.raises(nn.TrainingDivergedError, match="lower learning rate.*scal") as info:
        net.fit(X, y, epochs=50, batch_size=8, callbacks=[Keep()])
    assert info.value.history.stop_reason == "diverged"
    assert np.isfinite(net.parameters.snapshot()).all()
    assert np.array_equal(net.parameters.snapshot(), snapshots[-1])


def test_callbacks_run_under_the_callers_error_state(blobs):
    # Steps raise on overflow (that is how divergence is caught); a callback's
    # own arithmetic must not: it sees whatever error state the caller set.
    X, y = blobs
    net = nn.Network.from_sizes([4, 8, 3], seed=0)
    seen = []

    class Overflow(nn.Callback):
        def on_batch_end(self, step, logs):
            seen.append(np.geterr())
            np.float32(3e38) * np.float32(10.0)  # would raise under the training loop's error state

    with np.errstate(over="ignore", invalid="ignore"):
        caller = np.geterr()
        net.fit(X, y, epochs=2, batch_size=6, callbacks=[Overflow()])
    assert len(seen) == 20 and all(s == caller for s in seen)


def test_ctrl_c_keeps_model_and_completed_epochs(blobs):
    X, y = blobs
    net = nn.Network.from_sizes([4, 8, 3], seed=0)

    class Interrupt(nn.Callback):
        def on_batch_end(self, step, logs):
            if step == 25:  # in the third epoch (10 steps per epoch)
                raise KeyboardInterrupt

    h = net.fit(X, y, epochs=10, batch_size=6, callbacks=[Interrupt()])
    assert h.stop_reason == "interrupted"
    assert len(h.history["loss"]) == 2
    assert np.isfinite(net.parameters.snapshot()).all()
    assert net.predict(X).shape == (60, 3)


def test_ctrl_c_between_steps_keeps_the_last_step(blobs):
    # The interrupt lands after step 25 finished: its update stands, so the
    # weights match the optimizer's state (25 Adam steps) and training resumes cleanly.
    X, y = blobs
    net = nn.Network.from_sizes([4, 8, 3], seed=0)
    after = {}

    class Interrupt(nn.Callback):
        def on_batch_end(self, step, logs):
            if step == 25:
                after["weights"] = self.network.parameters.snapshot()
                raise KeyboardInterrupt

    net.fit(X, y, epochs=10, batch_size=6, callbacks=[Interrupt()])
    assert net.optimizer.iterations == 25
    assert np.array_equal(net.parameters.snapshot(), after["weights"])


def test_ctrl_c_inside_the_update_restores_the_weights(blobs):
    # An interrupt half-way through an update (here: after the weights were
    # changed, before the step returned) must not leave a half-updated network.
    X, y = blobs
    net = nn.Network.from_sizes([4, 8, 3], optimizer=nn.SGD(0.1), seed=0)
    step = net.optimizer.step
    calls = {"n": 0, "before": None}

    def interrupted_step(params, grads, decay=None):
        calls["n"] += 1
        if calls["n"] == 7:
            calls["before"] = net.parameters.snapshot()
            step(params, grads, decay)
            assert not np.array_equal(net.parameters.snapshot(), calls["before"])
            raise KeyboardInterrupt
        step(params, grads, decay)

    net.optimizer.step = interrupted_step
    h = net.fit(X, y, epochs=3, batch_size=6)
    assert h.stop_reason == "interrupted"
    assert np.array_equal(net.parameters.snapshot(), calls["before"])


def test_summary_and_repr():
    net = nn.Network.from_sizes([784, 30, 10], "sigmoid", seed=0)
    text = net.summary()
    assert "Dense(784 -> 30, sigmoid)" in text
    assert "23,550" in text and "310" in text and "Total params: 23,860" in text
    assert repr(nn.Dense(3, 1, "sigmoid", bias=False)) == "Dense(3 -> 1, sigmoid, no bias)"
    assert repr(nn.Dropout(0.5)) == "Dropout(0.5)"


def test_explicit_weights_are_used_exactly():
    W = [[0.1, -0.2], [0.3, 0.4], [-0.5, 0.6]]
    layer = nn.Dense(3, 2, weights=W, biases=[1.0, -1.0])
    nn.Network([layer], loss="mse", dtype="float64")
    np.testing.assert_array_equal(layer.params["W"], W)
    np.testing.assert_array_equal(layer.params["b"], [1.0, -1.0])


def test_dropout_is_off_at_inference_and_scales_in_training():
    drop = nn.Dropout(0.5)
    drop.build(np.random.default_rng(0), np.float64)
    x = np.ones((1000, 50))
    assert drop.forward(x) is x
    out = drop.forward(x, training=True)
    assert set(np.unique(out)) == {0.0, 2.0}
    assert abs(out.mean() - 1.0) < 0.02


def test_l2_term_follows_the_documented_convention():
    W = np.array([[1.0, -2.0], [3.0, 0.5]])
    layer = nn.Dense(2, 2, weights=W, l2=0.1, l1=0.01)
    nn.Network([layer], loss="mse", dtype="float64")
    # l2/2 * ||W||^2 + l1 * |W|_1 = 0.05 * 14.25 + 0.01 * 6.5
    assert layer.penalty() == pytest.approx(0.05 * 14.25 + 0.065)


def test_copy_is_independent_and_can_change_dtype(blobs):
    X, y = blobs
    net = nn.Network.from_sizes([4, 8, 3], seed=0)
    clone = net.copy()
    clone.fit(X, y, epochs=1)
    assert not np.array_equal(net.parameters.snapshot(), clone.parameters.snapshot())
    wide = net.copy(dtype="float64")
    assert wide.dtype == np.float64
    np.testing.assert_allclose(wide.predict(X), net.predict(X), rtol=1e-5)


def test_a_float32_run_holds_no_float64_anywhere(blobs):
    """Every array the engine keeps (parameters, gradients, caches, optimizer
    state, loss buffers) stays float32 when the network is float32, even with
    float64 inputs and sample weights."""
    X, y = blobs  # float64 data
    layers = [nn.Dense(4, 8, "relu"), nn.Dropout(0.2), nn.Dense(8, 8, "tanh", l2=0.01), nn.Dense(8, 3, "softmax")]
    net = nn.Network(layers, optimizer=nn.Adam(nn.CosineDecay(0.01, 50)), seed=0)
    net.fit(X, y, epochs=2, batch_size=16, sample_weight=np.linspace(0.5, 2, 60), validation_split=0.2)

    def arrays(obj, seen=None):
        seen = seen if seen is not None else set()
        if id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, np.ndarray):
            yield obj
        elif isinstance(obj, dict):
            for value in obj.values():
                yield from arrays(value, seen)
        elif isinstance(obj, (list, tuple)):
            for value in obj:
                yield from arrays(value, seen)
        elif hasattr(obj, "__dict__") and not isinstance(obj, (np.random.Generator, type)):
            yield from arrays(vars(obj), seen)

    floats = [a for a in arrays(net) if a.dtype.kind == "f"]
    assert floats and {a.dtype for a in floats} == {np.dtype(np.float32)}


def test_training_rows_are_neither_kept_after_fit_nor_pickled(blobs):
    import pickle

    X, y = blobs
    net = nn.Network([nn.Dense(4, 16, "relu"), nn.Dropout(0.2), nn.Dense(16, 3, "softmax")], seed=0)
    net.fit(X, y, epochs=2, batch_size=8)
    assert net.layers[0].x is None and net.layers[0].activation.a is None and net.layers[1].mask is None
    assert net.layers[0].fused_a is None  # nor the output of the accelerator's fused pass
    assert net.loss.__dict__.get("probs") is None
    net.predict(X)  # inference caches its batch in the live object ...
    blob = pickle.dumps(net)
    assert X[:3].astype(np.float32).tobytes() not in blob  # ... but a pickle never carries it
    again = pickle.loads(blob)
    np.testing.assert_array_equal(again.predict(X), net.predict(X))
    again.fit(X, y, epochs=1)  # and the unpickled network trains on
    from nnscratch.sklearn import NeuralNetClassifier

    clf = NeuralNetClassifier((64,), max_iter=5, random_state=0).fit(X, y)
    assert len(pickle.dumps(clf)) < 40_000  # weights (4x64 + 64x3 + biases) and settings, no data rows


def test_a_custom_initializer_is_never_rebuilt_as_zeros(tmp_path):
    def small(rng, shape, dtype):
        return rng.uniform(-0.1, 0.1, size=shape).astype(dtype)

    net = nn.Network([nn.Dense(3, 4, "tanh", initializer=small), nn.Dense(4, 2, "softmax")], seed=0)
    with pytest.raises(ValueError, match=r"layer 0 \('dense'\): it was built with a custom initializer"):
        nn.Network.from_config(net.get_config())
    with pytest.raises(ValueError, match="custom initializer, which a config cannot record"):
        nn.Dense.from_config(net.layers[0].get_config())  # the layer refuses on its own too
    rebuilt = nn.Dense.from_config(net.layers[0].get_config(), weights_follow=True)
    assert rebuilt.get_config() == net.layers[0].get_config()
    net.save(tmp_path / "m.safetensors")  # a saved network carries its weights: loading is fine
    again = nn.load(tmp_path / "m.safetensors")
    assert np.array_equal(again.layers[0].params["W"], net.layers[0].params["W"])
    assert np.abs(again.layers[0].params["W"]).max() > 0


def test_x_in_another_dtype_or_layout_is_converted_batch_by_batch_never_copied_whole():
    # A float64 or Fortran-ordered X trains and predicts exactly as its float32
    # C-ordered copy does, and fit/predict never hold a converted copy of all of X.
    import tracemalloc

    rng = np.random.default_rng(0)
    X64 = rng.normal(size=(4000, 200))
    y = rng.integers(0, 3, 4000)
    nets = {}
    for name, X in {"f32": np.ascontiguousarray(X64, dtype=np.float32), "f64": X64,
                    "fortran": np.asfortranarray(X64)}.items():  # fmt: skip
        net = nn.Network.from_sizes([200, 16, 3], seed=0, dtype="float32")
        nn.Network.from_sizes([200, 16, 3], dtype="float32").fit(X[:64], y[:64])  # compiles any kernels first
        tracemalloc.start()
        net.fit(X, y, epochs=2, batch_size=64, validation_data=(X[:500], y[:500]))
        predicted = net.predict(X, batch_size=500)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < X.shape[0] * X.shape[1] * 4 / 2, f"{name}: a copy of X was made ({peak} bytes at peak)"
        nets[name] = (net.parameters.values.copy(), predicted)
    for name in ("f64", "fortran"):
        np.testing.assert_array_equal(nets[name][0], nets["f32"][0])
        np.testing.assert_array_equal(nets[name][1], nets["f32"][1])


def test_a_loop_of_short_fits_survives_an_ordinary_adam_bump():
    """The playground's spiral (x1, x2, sin x1, sin x2; 8-8 tanh; Adam 0.03; seed 1) runs one
    ``fit(epochs=1)`` per update. At epoch 242 the loss is 1.1e-4 at a call's first step and
    an ordinary Adam bump lifts the epoch to 0.58: not a blow-up (the reference is at least
    the loss of an all-zero output, log 2 here), so training goes on."""
    from nnscratch.playground.session import Session

    layers = [{"units": 8, "activation": "tanh"}] * 2
    session = Session({"dataset": "spiral", "features": ["x1", "x2", "sin(x1)", "sin(x2)"], "optimizer": "adam",
                       "learning_rate": 0.03, "seed": 1, "layers": layers})  # fmt: skip
    for _ in range(300):
        session.train_epoch()
    assert session.epoch == 300 and max(train for train, _ in session.curve[230:260]) > 0.3  # the bump happened


def test_a_finite_blow_up_of_a_short_fit_still_stops():
    """The same reference still catches a real blow-up that stays finite: a loop of one-epoch
    calls with SGD at 1e9 stops at its first call, the weights from before it restored."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 2))
    y = (X[:, 0] > 0).astype(int)
    net = nn.Network.from_sizes([2, 8, 2], "tanh", "softmax", optimizer=nn.SGD(1e9), seed=0)
    before, calls = net.parameters.snapshot(), 0
    with pytest.raises(nn.TrainingDivergedError, match="all-zero output"):
        for calls in range(1, 6):  # noqa: B007 (read after the loop)
            net.fit(X, y, epochs=1, batch_size=8)
    assert calls == 1 and np.array_equal(before, net.parameters.snapshot())  # the epoch undone
