"""Moons: a tanh hidden layer and a softmax output, against a linear baseline.

``make_moons(200, noise=0.20)`` after ``np.random.seed(0)``; 2 -> H -> 2 with tanh
then softmax, cross-entropy summed over the samples, L2 with lambda 0.01 on the
weights (``lambda/2 ||W||^2``), plain gradient descent with learning rate 0.01
for 20,000 full-batch passes. Weights ``randn(2, H)/sqrt(2)`` and
``randn(H, 2)/sqrt(H)`` after ``np.random.seed(0)``, zero biases. Every 1,000
passes it prints the loss (data loss plus the L2 term, divided by the number of
samples) after that pass's update, as the original did. It also fits
scikit-learn's ``LogisticRegressionCV`` as the linear baseline and saves
decision-boundary plots: the baseline, H = 3, and one panel per H.

Run: ``python examples/moons.py [--out-dir plots] [--hidden 1 2 3 4 5 20 50]``
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np

import nnscratch as nn
from nnscratch.plots import plot_decision_boundaries, plot_decision_boundary

PASSES = 20_000


def moons_data() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_moons

    np.random.seed(0)  # the original's global generator, which make_moons uses by default
    return make_moons(200, noise=0.20)


def build(hidden: int) -> nn.Network:
    np.random.seed(0)
    W1 = np.random.randn(2, hidden) / np.sqrt(2)
    W2 = np.random.randn(hidden, 2) / np.sqrt(hidden)
    return nn.Network(
        [nn.Dense(2, hidden, "tanh", weights=W1, l2=0.01), nn.Dense(hidden, 2, "softmax", weights=W2, l2=0.01)],
        loss=nn.CrossEntropy(reduction="sum"),
        optimizer=nn.SGD(0.01),
        dtype="float64",
    )


def train(hidden: int, X: np.ndarray, y: np.ndarray, passes: int = PASSES, print_loss: bool = False) -> tuple:
    net = build(hidden)
    losses = []
    done = 0
    for i in range(0, passes, 1000):
        steps = i + 1 - done  # up to and including pass i
        net.fit(X, y, epochs=steps, batch_size=None, shuffle=False)
        done += steps
        loss = net.evaluate(X, y)["loss"] / len(X)
        losses.append(loss)
        if print_loss:
            print(f"Loss after iteration {i}: {loss:f}")
    if passes > done:
        net.fit(X, y, epochs=passes - done, batch_size=None, shuffle=False)
    return net, losses


def main(out_dir: str = "plots", hidden_sizes: tuple[int, ...] = (1, 2, 3, 4, 5, 20, 50), passes: int = PASSES) -> dict:
    from sklearn.linear_model import LogisticRegressionCV

    X, y = moons_data()
    out = Path(out_dir)
    with warnings.catch_warnings():  # scikit-learn announces future default changes here; the defaults suit us
        warnings.simplefilter("ignore", FutureWarning)
        baseline = LogisticRegressionCV().fit(X, y)
    results = {"logistic regression": float(baseline.score(X, y))}
    print(f"Training accuracy, logistic regression: {results['logistic regression']:.3f}")
    plot_decision_boundary(baseline, X, y, path=out / "moons_logistic_regression.png", title="Logistic regression")

    net3, losses = train(3, X, y, passes, print_loss=True)
    results["losses_h3"] = losses
    results[3] = float(np.mean(net3.predict_labels(X) == y))
    print(f"Training accuracy, hidden layer of 3: {results[3]:.3f}")
    plot_decision_boundary(net3, X, y, path=out / "moons_hidden_3.png", title="Hidden layer size 3")

    panels = {}
    for h in hidden_sizes:
        net = net3 if h == 3 else train(h, X, y, passes)[0]
        results[h] = float(np.mean(net.predict_labels(X) == y))
        if h != 3:
            print(f"Training accuracy, hidden layer of {h}: {results[h]:.3f}")
        panels[f"Hidden layer size {h}"] = net
    plot_decision_boundaries(panels, X, y, path=out / "moons_hidden_sizes.png", ncols=4)
    print(f"Plots saved in {out}/")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", default="plots")
    parser.add_argument("--hidden", type=int, nargs="+", default=[1, 2, 3, 4, 5, 20, 50])
    args = parser.parse_args()
    main(args.out_dir, tuple(args.hidden))
