"""``nnscratch logs``: the offline commands (label, train, classify, evaluate, crossval) and the live
ones (watch, bans, why), in ``commands``."""

from .commands import add_logs_parser

__all__ = ["add_logs_parser"]
