"""nnscratch: neural networks from scratch in NumPy.

The engine (``functional``, ``activations``, ``layers``, ``losses``,
``initializers``, ``optimizers``, ``parameters``, ``network``, ``training``,
``inference``) imports only NumPy (``io`` adds safetensors). Everything else
(datasets, plots, explain, the CLI, the scikit-learn adapter, the web-log
application) is built on it and never imported by it.

>>> import nnscratch as nn
>>> net = nn.Network.from_sizes([2, 4, 1], "tanh", "sigmoid",
...                             loss="binary_cross_entropy", seed=0)
>>> net.n_params
17
"""

from __future__ import annotations

from .activations import Activation, Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .callbacks import Callback, EarlyStopping, History, ProgressBar
from .export import export_onnx, to_sklearn
from .gradcheck import GradCheckResult, gradcheck
from .inference import NonFiniteOutputError
from .io import ModelFileError, load
from .layers import Dense, Dropout, Layer
from .losses import BinaryCrossEntropy, CrossEntropy, Loss, MeanSquaredError, Quadratic
from .network import Network
from .optimizers import SGD, AdaGrad, Adam, AdamW, Optimizer, RMSProp
from .parameters import Parameters
from .schedules import Constant, CosineDecay, ExponentialDecay, InverseScaling, Schedule, StepDecay
from .training import TrainingDivergedError

__version__ = "0.1.0"

__all__ = [
    "export_onnx",
    "to_sklearn",
    "Activation",
    "Identity",
    "LeakyReLU",
    "ReLU",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "Callback",
    "EarlyStopping",
    "History",
    "ProgressBar",
    "GradCheckResult",
    "gradcheck",
    "ModelFileError",
    "load",
    "Dense",
    "Dropout",
    "Layer",
    "BinaryCrossEntropy",
    "CrossEntropy",
    "Loss",
    "MeanSquaredError",
    "Quadratic",
    "Network",
    "Parameters",
    "SGD",
    "AdaGrad",
    "Adam",
    "AdamW",
    "Optimizer",
    "RMSProp",
    "Constant",
    "CosineDecay",
    "ExponentialDecay",
    "InverseScaling",
    "Schedule",
    "StepDecay",
    "TrainingDivergedError",
    "NonFiniteOutputError",
    "__version__",
]
