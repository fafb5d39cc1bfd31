"""``summarize(net)``: a network as a table of layers, output shapes and parameter
counts (``Network.summary()`` hands over to it), as Keras prints one."""

from __future__ import annotations

from typing import Any

__all__ = ["summarize"]


def summarize(net: Any) -> str:
    """A table of layers, output shapes and parameter counts, then the totals,
    the loss and the optimizer."""
    rows = [("#", "layer", "output shape", "params")]
    for i, layer in enumerate(net.layers):
        n = sum(p.size for p in layer.params.values())
        rows.append((str(i), repr(layer), f"(None, {layer.n_out})", f"{n:,}"))
    widths = [max(len(r[c]) for r in rows) for c in range(4)]
    line = "-" * (sum(widths) + 6)

    def fmt(row: tuple[str, ...]) -> str:
        cells = [c.ljust(w) if j < 3 else c.rjust(w) for j, (c, w) in enumerate(zip(row, widths, strict=True))]
        return "  ".join(cells)

    body = [fmt(rows[0]), line, *(fmt(r) for r in rows[1:]), line]
    body.append(f"Total params: {net.n_params:,} ({net.dtype.name})")
    body.append(f"Loss: {net.loss!r}   Optimizer: {net.optimizer!r}")
    return "\n".join(body)
