"""The live watcher: ``follow`` (tail -F), ``state`` (the SQLite state), ``policy`` (what a ruling does),
``actions`` (firewalls and servers), ``watcher`` (the loop).
"""

# What the module of this name offered before the layout, for imports that name it.
from .policy import Allowlist, BanPolicy
from .watcher import Watcher, WatchSettings

__all__ = ["Allowlist", "BanPolicy", "WatchSettings", "Watcher"]
