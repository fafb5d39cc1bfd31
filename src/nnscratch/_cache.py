"""What a maths object's ``forward`` keeps for its ``backward``, and when to let it go.

Layers, activations and losses cache arrays between ``forward`` and
``backward`` (the layer's input, a dropout mask, the activation's output, the
loss's probabilities). Those hold rows of the data, so a trained or shipped
object must not carry them: ``clear_cache()`` forgets them (``fit`` calls it at
the end) and pickling leaves them out. A class lists its caches in
``cache_names``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Cached"]


class Cached:
    """Mixin: ``cache_names``, ``clear_cache()`` and a ``__getstate__`` without the caches."""

    cache_names: tuple[str, ...] = ()

    def clear_cache(self) -> None:
        """Forget what the last ``forward`` kept for ``backward``."""
        for name in self.cache_names:
            if name in self.__dict__:
                setattr(self, name, None)

    def __getstate__(self) -> dict[str, Any]:
        return {k: None if k in self.cache_names else v for k, v in self.__dict__.items()}
