"""Every plot returns a matplotlib Figure, saves a real PNG, and needs no display."""

from __future__ import annotations

import numpy as np
import pytest

import nnscratch as nn
from nnscratch import plots


@pytest.fixture(scope="module")
def trained():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 2)).astype(np.float32)
    y = (X[:, 0] * X[:, 1] > 0).astype(int)
    net = nn.Network.from_sizes([2, 16, 2], "tanh", optimizer=nn.Adam(0.05), seed=0)
    history = net.fit(X, y, epochs=30, batch_size=16, validation_split=0.2)
    return net, history, X, y


def _is_png(path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5_000


def test_history(trained, tmp_path):
    _, history, _, _ = trained
    fig = plots.plot_history(history, path=tmp_path / "h.png", title="t")
    assert len(fig.axes) == 2
    assert [line.get_label() for line in fig.axes[0].lines] == ["training loss", "validation loss"]
    assert fig.axes[0].get_xlabel() == "epoch" and fig.axes[1].get_ylabel() == "accuracy"
    assert _is_png(tmp_path / "h.png")
    alone = plots.plot_history({"loss": [3.0, 2.0], "accuracy": [0.5, 0.7]}, xlabel="iteration")
    assert alone.axes[1].get_ylabel() == "accuracy (on the training data)"  # no validation: say so
    assert [t.get_text() for t in alone.axes[1].get_legend().get_texts()] == ["training accuracy"]


def test_decision_boundaries(trained, tmp_path):
    net, _, X, y = trained
    fig = plots.plot_decision_boundary(net, X, y, path=tmp_path / "b.png", title="xor-ish")
    assert fig.axes[0].get_title() == "xor-ish" and _is_png(tmp_path / "b.png")
    legend = fig.axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == [
        "class 0",
        "class 1",
    ] and "true class" in legend.get_title().get_text()
    grid = plots.plot_decision_boundaries({"a": net, "b": net.predict_labels, "c": net}, X, y, ncols=2,
                                          path=tmp_path / "g.png")  # fmt: skip
    assert sum(ax.get_visible() for ax in grid.axes) == 3 and _is_png(tmp_path / "g.png")
    with pytest.raises(ValueError, match="2-D inputs"):
        plots.plot_decision_boundary(net, np.ones((3, 3)), [0, 1, 0])


def test_confusion_matrix(tmp_path):
    fig = plots.plot_confusion_matrix(["a", "b", "b", "c"], ["a", "b", "c", "c"], path=tmp_path / "c.png")
    image = fig.axes[0].images[0].get_array()
    np.testing.assert_array_equal(image, [[1, 0, 0], [0, 1, 1], [0, 0, 1]])
    normalized = plots.plot_confusion_matrix([0, 1, 1], [0, 1, 0], normalize=True).axes[0].images[0].get_array()
    np.testing.assert_allclose(normalized, [[1, 0], [0.5, 0.5]])
    assert _is_png(tmp_path / "c.png")


def test_first_layer_weights_and_mistakes(tmp_path):
    net = nn.Network.from_sizes([64, 10, 3], seed=0)
    fig = plots.plot_first_layer_weights(net, path=tmp_path / "w.png")
    assert sum(ax.get_visible() for ax in fig.axes) == 10 and _is_png(tmp_path / "w.png")
    assert "all 10 units" in fig._suptitle.get_text()
    wide = plots.plot_first_layer_weights(nn.Network.from_sizes([64, 100, 3], seed=0), max_units=16)
    assert "16 of 100 units" in wide._suptitle.get_text()
    with pytest.raises(ValueError, match="does not hold"):
        plots.plot_first_layer_weights(net, (7, 7))
    rng = np.random.default_rng(1)
    X = rng.random((30, 64))
    proba = rng.dirichlet(np.ones(3), size=30)
    y = rng.integers(0, 3, 30)
    fig = plots.plot_mistakes(X, y, proba, (8, 8), n=5, path=tmp_path / "m.png")
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert len(titles) == 5 and all(t.startswith("true ") for t in titles)
    confidences = [float(t.split("(")[1].rstrip("%)")) for t in titles]
    assert confidences == sorted(confidences, reverse=True)
    assert _is_png(tmp_path / "m.png")
