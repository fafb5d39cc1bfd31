"""Saving and loading networks as safetensors files.

A model file is data, never code. It holds:

* the weights, as named tensors (``layers.0.W``, ``layers.0.b``, ...);
* optionally the optimizer state (``optimizer.W.m``, ...), so training resumes;
* JSON metadata: a format marker and version, the architecture, loss,
  optimizer and training settings (``network.get_config()``), plus any extra
  JSON the caller attaches (a vocabulary, class names), and a SHA-256 of the
  tensor data, checked at load (a flipped byte is an error, not a new weight).

Loading parses the header itself, checks every name against the registries
and every tensor's dtype and shape against the architecture, and only then
builds the network. Nothing is ever unpickled. This module reads and writes
files through a network's public state (``get_config()``, ``state_dict()``)
and never imports the network: ``load`` finds the class in ``MODELS``, where
``Network`` registers itself, and builds it from what ``read_model`` returns.
Writes go to a temporary file
in the same folder, flushed to disk and atomically renamed over the target, so
a crash mid-save leaves the old file (or none), never half of a new one.
"""

from __future__ import annotations

import glob
import json
import os
import struct
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ._registry import Registry

__all__ = [
    "save", "load", "load_bundle", "read_model", "read_metadata", "check_parameters", "write_atomically",
    "ModelFileError", "FORMAT_VERSION", "MODELS",
]  # fmt: skip

FORMAT = "nnscratch"
# 2: Adam's moments are stored as in the paper (version 1 kept them divided by
# 1 - beta; read_model converts).
FORMAT_VERSION = 2
_DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64}


MODELS = Registry("model")  # the classes a model file can describe (Network registers itself)


class ModelFileError(ValueError):
    """A model file is missing, truncated, corrupted, foreign or too new."""


def save(
    network: Any,
    path: str | os.PathLike[str],
    include_optimizer: bool = True,
    extra: dict[str, Any] | None = None,
    arrays: dict[str, np.ndarray] | None = None,
) -> Path:
    """Write ``network`` to ``path`` (conventionally ``*.safetensors``) atomically.

    Parameters
    ----------
    network : Network
        Read through ``get_config()`` and ``state_dict()`` only.
    path : path-like
    include_optimizer : bool, default True
        Also store the optimizer's state and step count, so ``fit`` can resume.
    extra : dict, optional
        JSON-serialisable data stored beside the config (read it back with
        ``read_metadata(path)["extra"]``).
    arrays : dict of str to ndarray, optional
        Further float arrays stored as tensors named ``extra.NAME`` (read them
        back with ``load_bundle(path)``): e.g. a projection applied before the network.
    """
    from safetensors.numpy import save as st_save

    state = network.state_dict(include_optimizer)
    tensors = {name: np.ascontiguousarray(value) for name, value in state["parameters"].items()}
    for name, value in (arrays or {}).items():
        tensors[f"extra.{name}"] = np.ascontiguousarray(value)
    optimizer_meta = None
    if state["optimizer"] is not None:
        for group, slots in state["optimizer"]["state"].items():
            for name, value in slots.items():
                tensors[f"optimizer.{group}.{name}"] = np.ascontiguousarray(value)
        optimizer_meta = {"iterations": state["optimizer"]["iterations"]}
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "tensor_sha256": _checksum(tensors),
        "config": json.dumps(network.get_config()),
        "optimizer_state": json.dumps(optimizer_meta),
        "extra": json.dumps(extra or {}),
    }
    metadata["metadata_sha256"] = _metadata_checksum(metadata)
    blob = st_save(tensors, metadata=metadata)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path)
    return write_atomically(path, blob)


def load(path: str | os.PathLike[str]) -> Any:
    """Rebuild a network saved by ``save``; it predicts bit-identically.

    Raises
    ------
    ModelFileError
        If the file is missing, truncated, corrupted, not an nnscratch model,
        or written by a newer format version.
    """
    return load_bundle(path)[0]


def load_bundle(path: str | os.PathLike[str]) -> tuple[Any, dict[str, Any], dict[str, np.ndarray]]:
    """``(network, metadata, arrays)`` from one read of the file: the network as
    ``load`` gives it, the metadata as ``read_metadata`` does, and the arrays
    stored with ``save(..., arrays=...)``, by name."""
    meta, state, arrays = read_model(path)
    try:
        network = MODELS.get("network").from_config(meta["config"], weights_follow=True)  # the weights are set next
    except (KeyError, TypeError, ValueError) as err:
        raise ModelFileError(f"{path} describes a network this version cannot build: {err}") from None
    check_parameters(path, state["parameters"], network.parameters.state_dict())
    network.load_state_dict(state)
    if not network.parameters.all_finite():
        raise ModelFileError(f"{path} holds NaN or infinite weights.")
    return network, meta, arrays


def write_atomically(path: str | Path, data: bytes) -> Path:
    """Replace ``path`` with ``data`` so that a reader (or a crash) never sees half a file:
    a temporary file beside it, flushed to disk, then renamed over it. The one atomic
    write of the package (model files, the watcher's ban lists and includes)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes the file private (0600); give it the mode a plain open()
        # would have: the replaced file's, or the default less the umask.
        os.chmod(tmp, path.stat().st_mode & 0o7777 if path.exists() else 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _remove_stale_temporaries(path: Path) -> None:
    """Delete temporary files that earlier saves of ``path`` left behind when they were killed
    (``.NAME.PID.xxxx.tmp`` whose process no longer runs); a save in progress keeps its own."""
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        pid_text = leftover.name[len(path.name) + 2 :].split(".", 1)[0]
        if not pid_text.isdigit():
            continue
        try:
            os.kill(int(pid_text), 0)
        except ProcessLookupError:
            leftover.unlink(missing_ok=True)
        except (PermissionError, OverflowError):
            pass  # another user's process is alive (or the number is no process id): leave it


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


def _checksum(tensors: dict[str, np.ndarray]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, in name order."""
    import hashlib

    digest = hashlib.sha256()
    for name in sorted(tensors):
        value = np.ascontiguousarray(tensors[name])
        digest.update(f"{name}|{value.dtype.str}|{value.shape}|".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def _metadata_checksum(metadata: dict[str, str]) -> str:
    """SHA-256 over every metadata entry but this checksum itself: the config, the classes
    and settings in ``extra``, everything predictions depend on besides the tensors."""
    import hashlib

    digest = hashlib.sha256()
    for key in sorted(k for k in metadata if k != "metadata_sha256"):
        digest.update(f"{len(key)}|{key}|{len(metadata[key])}|{metadata[key]}|".encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def _read_header(path: Path) -> tuple[dict[str, Any], bytes]:
    if path.is_dir():
        raise ModelFileError(
            f"{path} is a folder, not a model file: give the model's file (e.g. {path / 'model.safetensors'})."
        )
    if not path.is_file():
        raise ModelFileError(f"No model file at {path}.")
    data = path.read_bytes()
    if len(data) < 8:
        raise ModelFileError(f"{path} is not a model file: it is {len(data)} bytes long (truncated or empty).")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8 or n > 100_000_000:
        raise ModelFileError(f"{path} is truncated or not a safetensors file (header claims {n} bytes).")
    try:
        header = json.loads(data[8 : 8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelFileError(f"{path} has a corrupted header: {err}.") from None
    if not isinstance(header, dict):
        raise ModelFileError(f"{path} has a corrupted header (not a JSON object).")
    meta = header.get("__metadata__") or {}
    if meta.get("format") != FORMAT:
        raise ModelFileError(f"{path} is a safetensors file but not an nnscratch model (no nnscratch metadata).")
    try:
        version = int(meta.get("format_version", ""))
    except ValueError:
        raise ModelFileError(f"{path} has an unreadable format_version {meta.get('format_version')!r}.") from None
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path} was written by a newer nnscratch (model format {version}; this version reads up to "
            f"{FORMAT_VERSION}). Upgrade nnscratch to load it."
        )
    expected_meta = meta.get("metadata_sha256")  # absent in files saved before it was kept
    if expected_meta is not None and _metadata_checksum(meta) != expected_meta:
        raise ModelFileError(
            f"{path} is corrupted: its metadata (the network's config, classes and settings) do "
            "not match the checksum saved with them (the file changed after it was written). Use a "
            "good copy or retrain."
        )
    payload = len(data) - 8 - n
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, stop = info.get("data_offsets", (0, -1))
        if info.get("dtype") not in _DTYPES or not 0 <= start <= stop <= payload:
            raise ModelFileError(f"{path} is truncated or corrupted (tensor {name!r} lies outside the file).")
        expected = int(np.prod(info.get("shape", []), dtype=np.int64)) * np.dtype(_DTYPES[info["dtype"]]).itemsize
        if stop - start != expected:
            raise ModelFileError(f"{path} is corrupted (tensor {name!r} has the wrong byte length).")
    return header, data


def _decode_metadata(header: dict[str, Any], path: Path) -> dict[str, Any]:
    meta = header["__metadata__"]
    try:
        return {
            "format_version": int(meta["format_version"]),
            "config": json.loads(meta["config"]),
            "optimizer_state": json.loads(meta.get("optimizer_state", "null")),
            "extra": json.loads(meta.get("extra", "{}")),
        }
    except (KeyError, json.JSONDecodeError) as err:
        raise ModelFileError(f"{path} has corrupted metadata: {err}.") from None


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The decoded metadata of a model file: ``config``, ``optimizer_state``, ``extra``."""
    header, _ = _read_header(Path(path))
    return _decode_metadata(header, Path(path))


def read_model(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, Any], dict[str, np.ndarray]]:
    """``(metadata, state, arrays)`` from one read of a model file: the metadata as
    ``read_metadata`` gives it, the state in the form ``Network.state_dict()``
    has (``parameters`` by name; ``optimizer`` or None), and the arrays stored
    with ``save(..., arrays=...)``. The checksum is verified; files of an older
    format version are converted.

    Raises
    ------
    ModelFileError
        If the file is missing, truncated, corrupted, not an nnscratch model,
        or written by a newer format version.
    """
    from safetensors.numpy import load as st_load

    path = Path(path)
    header, data = _read_header(path)
    meta = _decode_metadata(header, path)
    try:
        tensors = st_load(data)
    except Exception as err:  # safetensors raises its own error types
        raise ModelFileError(f"{path} could not be decoded: {err}") from None
    expected = header["__metadata__"].get("tensor_sha256")  # absent in files saved before checksums
    if expected is not None and _checksum(tensors) != expected:
        raise ModelFileError(
            f"{path} is corrupted: its tensor data do not match the checksum saved with them "
            "(the file changed after it was written). Use a good copy or retrain."
        )
    parameters = {name: value for name, value in tensors.items() if name.startswith("layers.")}
    optimizer = None
    if meta["optimizer_state"]:
        groups: dict[str, dict[str, np.ndarray]] = {}
        for name, value in tensors.items():
            if name.startswith("optimizer."):
                _, group, slot = name.split(".", 2)
                groups.setdefault(group, {})[slot] = value.copy()
        optimizer = {"iterations": int(meta["optimizer_state"]["iterations"]), "state": groups}
        if meta["format_version"] < 2:
            _upgrade_adam_moments(meta["config"].get("optimizer", {}), groups)
    arrays = {name[len("extra.") :]: value for name, value in tensors.items() if name.startswith("extra.")}
    return meta, {"parameters": parameters, "optimizer": optimizer}, arrays


def _upgrade_adam_moments(config: dict[str, Any], groups: dict[str, dict[str, np.ndarray]]) -> None:
    """Format 1 stored Adam's moments divided by ``1 - beta``; multiply them back."""
    if config.get("name") not in ("adam", "adamw"):
        return
    for slots in groups.values():
        slots["m"] = slots["m"] * (1.0 - config["beta1"])
        slots["v"] = slots["v"] * (1.0 - config["beta2"])


def check_parameters(path: Any, saved: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    """Every parameter the architecture ``expected`` (name to array) is in ``saved``
    with the same shape and dtype, else a ``ModelFileError`` naming it."""
    for name, target in expected.items():
        if name not in saved:
            raise ModelFileError(f"{path} is missing the tensor {name!r}.")
        if saved[name].shape != target.shape or saved[name].dtype != target.dtype:
            raise ModelFileError(
                f"{path}: tensor {name!r} has shape {saved[name].shape} {saved[name].dtype}, "
                f"expected {target.shape} {target.dtype}."
            )
