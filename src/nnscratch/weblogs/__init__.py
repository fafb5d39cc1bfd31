"""Bot detection on web-server access logs (``nnscratch logs``); see docs/weblogs.md.

The folders, in the order a line travels (each imports only those above it):

- ``lines``: from a log file to records in time order (formats, reading, order)
- ``evidence``: what a request says, in words that carry to other sites
- ``features``: a line as columns, a client as counts
- ``labels``: rules, label files, labelled lines
- ``model``: the line model, the client model, training, metrics, crossval
- ``serve``: the one decision procedure, and classify
- ``watch``: the live watcher, its state, policy and actions
- ``cli``: the ``nnscratch logs`` commands
"""

from .features.featurizer import Featurizer
from .labels.data import LabelledLines
from .labels.rules import RuleLabeler
from .lines.formats import FORMATS, detect
from .lines.formats.combined import parse_line
from .lines.reading import LogPath, ParseStats, parse_stream, read_lines
from .lines.record import LogRecord, client_of
from .model.clients import ClientModel, Verdict
from .model.weblog import TrainSettings, WebLogModel
from .serve.classify import ClassifySettings, classify
from .serve.decision import Decider
from .watch.policy import Allowlist, BanPolicy
from .watch.watcher import Watcher, WatchSettings

__all__ = [
    "LogRecord", "client_of", "parse_line", "parse_stream", "read_lines", "ParseStats", "LogPath", "FORMATS", "detect",
    "Featurizer", "LabelledLines", "RuleLabeler", "ClientModel", "Verdict", "TrainSettings", "WebLogModel",
    "ClassifySettings", "classify", "Decider", "Allowlist", "BanPolicy", "Watcher", "WatchSettings",
]  # fmt: skip
