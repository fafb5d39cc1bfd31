"""The live watcher: ``follow`` (tail -F), ``state`` (the SQLite state), ``policy`` (what a ruling does),
``actions`` (firewalls and servers), ``watcher`` (the loop).
"""
