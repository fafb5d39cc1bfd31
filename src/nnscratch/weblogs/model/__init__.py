"""The models: ``clients`` (the client model, its rulings and verdicts), ``weblog`` (the line model and the
client model together: training, scoring, metrics, the model file), ``crossval`` (the honest figures).
"""

# What the module of this name offered before the layout, for imports that name it.
from .metrics import Judgement, Report, evaluate
from .weblog import FEATURE_VERSION, Prepared, TrainSettings, WebLogModel, prepare

__all__ = ["FEATURE_VERSION", "Prepared", "TrainSettings", "WebLogModel", "prepare", "Judgement", "Report", "evaluate"]
