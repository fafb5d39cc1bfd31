"""Peak resident memory of one training epoch, measured in a fresh process.

Linux only: writing ``5`` to ``/proc/self/clear_refs`` resets the peak (VmHWM)
so the measurement covers training alone, not the transient copies made while
unpickling the dataset.
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def probe(config: str, rows: int | None) -> dict[str, Any]:
    import nnscratch  # noqa: F401  (imports count towards the baseline, not the data)
    from benchmarks.run import CONFIGS, load_data, nnscratch_trainer

    gc.collect()
    baseline = _status_kb("VmRSS")
    X, y, *_ = load_data(rows)
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")
    epoch, _ = nnscratch_trainer(CONFIGS[config], X, y)
    epoch()
    peak = _status_kb("VmHWM")
    dataset_mb = (X.nbytes + y.nbytes) / 2**20
    return {"config": config, "dataset_mb": dataset_mb, "training_peak_mb": (peak - baseline) / 1024}
