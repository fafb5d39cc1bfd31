"""The core alone: a fresh virtual environment with only ``pip install nnscratch`` (NumPy,
safetensors, tqdm, threadpoolctl) loads, predicts and trains; features of missing extras say
which to install, before they read or write anything. Each claim of docs/deploy.md about the
core install is checked here."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = r"""
import importlib.util, subprocess, sys
import numpy as np
import nnscratch as nn
for heavy in ("sklearn", "scipy", "matplotlib", "joblib", "onnx", "numba"):
    assert importlib.util.find_spec(heavy) is None, heavy + " was installed with the core"
from nnscratch import kernels
assert not kernels.available() and kernels.fused() is None  # the NumPy reference path, the accelerator absent
try:
    kernels.use_kernels(True)
except ModuleNotFoundError as err:
    assert 'pip install "nnscratch[fast]"' in str(err), err
else:
    raise AssertionError("use_kernels(True) worked without numba")
rng = np.random.default_rng(0)
Xr, yr = rng.normal(size=(200, 5)), rng.integers(0, 3, 200)
relu_net = nn.Network.from_sizes([5, 16, 3], "relu", optimizer=nn.Adam(0.01), seed=0)
assert relu_net.fit(Xr, yr, epochs=20, batch_size=32).history["accuracy"][-1] > 0.5
X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
y = np.array([0, 1, 1, 0])
net = nn.Network([nn.Dense(2, 4, "tanh"), nn.Dense(4, 1, "sigmoid")], loss="binary_cross_entropy",
                 optimizer=nn.SGD(0.5), seed=0)
net.fit(X, y, epochs=2000, batch_size=None)
net.save("xor.safetensors")
same = nn.load("xor.safetensors")
assert same.predict_labels(X).ravel().tolist() == [0, 1, 1, 0]
assert np.array_equal(same.predict(X), net.predict(X))
from nnscratch.extras import MissingExtraError
try:
    from nnscratch.datasets import load_digits
    load_digits()
except MissingExtraError as err:
    assert 'pip install "nnscratch[datasets]"' in str(err), err
else:
    raise AssertionError("load_digits worked without scikit-learn")
run = subprocess.run([sys.executable, "-m", "nnscratch", "train", "digits", "--quiet"], capture_output=True, text=True)
assert run.returncode == 1 and run.stderr.count("\n") == 1 and "nnscratch[datasets]" in run.stderr, run.stderr
import importlib.metadata as metadata
installed = {d.metadata["Name"].lower() for d in metadata.distributions()} - {"pip", "setuptools", "wheel"}
assert installed == {"nnscratch", "numpy", "safetensors", "tqdm", "threadpoolctl"}, installed


def cli(*args):
    return subprocess.run([sys.executable, "-m", "nnscratch", *args], capture_output=True, text=True)


rng = np.random.default_rng(1)
Xc = rng.normal(size=(120, 3))
rows = "".join(f"{a:.4f},{b:.4f},{c:.4f},{int(a > 0)}\n" for a, b, c in Xc)
open("t.csv", "w").write("a,b,c,label\n" + rows)
run = cli("train", "t.csv", "--out", "t.safetensors", "--epochs", "3", "--quiet")  # no matplotlib: no plots
assert run.returncode == 0 and "note: no plots" in run.stderr and "nnscratch[plots]" in run.stderr, run.stderr
assert nn.load("t.safetensors").predict(Xc).shape == (120, 2)
log = "203.0.113.9 - - [22/Dec/2016:22:32:31 +0300] \"GET / HTTP/1.1\" 200 3279 \"-\" \"curl/8\"\n"
open("access.log", "w").write(log)
for argv, extra in [(["export", "t.safetensors", "-o", "t.onnx"], "onnx"),
                    (["playground", "--no-browser"], "playground"),
                    (["train", "t.csv", "--out", "u.safetensors", "--restarts", "2", "--jobs", "2"], "parallel"),
                    (["logs", "classify", "t.safetensors", "access.log", "-o", "lines.csv"], "weblogs")]:
    run = cli(*argv)
    assert run.returncode == 1 and run.stderr.count("\n") == 1, (argv, run.stderr)
    assert f'pip install "nnscratch[{extra}]"' in run.stderr and "Training" not in run.stdout, (argv, run.stderr)
import os
assert not any(os.path.exists(f) for f in ("t.onnx", "u.safetensors", "lines.csv"))  # nothing half-written
print("core ok")
"""


@pytest.mark.slow
def test_the_core_installs_and_works_alone(tmp_path):
    env = tmp_path / "venv"
    venv.create(env, with_pip=True)
    python = env / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "--quiet", str(ROOT)], capture_output=True,
                             text=True, timeout=600)  # fmt: skip
    assert install.returncode == 0, install.stderr[-3000:]
    run = subprocess.run([str(python), "-c", SCRIPT], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0 and "core ok" in run.stdout, run.stdout + run.stderr
    assert sys.executable != str(python)
