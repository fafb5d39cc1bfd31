"""Serving: ``decision`` (the one decision procedure every command runs) and ``classify`` (it, over files)."""
