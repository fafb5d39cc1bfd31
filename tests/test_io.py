"""Model files: exact round trip, resumable training, atomic writes, and a
clear error for every kind of bad file. Loading never unpickles."""

from __future__ import annotations

import json
import os
import struct

import numpy as np
import pytest

import nnscratch as nn
from nnscratch.io import read_metadata, save


@pytest.fixture
def trained(blobs):
    X, y = blobs
    layers = [nn.Dense(4, 8, "leaky_relu"), nn.Dropout(0.1), nn.Dense(8, 3, "softmax", l2=0.01)]
    net = nn.Network(layers, optimizer=nn.AdamW(nn.CosineDecay(0.01, 100)), seed=3)
    net.fit(X, y, epochs=3, batch_size=16)
    return net


def test_round_trip_predicts_bit_identically(trained, blobs, tmp_path):
    X, _ = blobs
    path = tmp_path / "model.safetensors"
    trained.save(path)
    loaded = nn.load(path)
    assert np.array_equal(loaded.predict(X), trained.predict(X))
    assert repr(loaded) == repr(trained)
    assert loaded.summary() == trained.summary()


def test_optimizer_state_resumes_training_exactly(trained, blobs, tmp_path):
    X, y = blobs
    trained.save(tmp_path / "m.safetensors")
    loaded = nn.load(tmp_path / "m.safetensors")
    assert loaded.optimizer.iterations == trained.optimizer.iterations
    # Same state and a forced identical shuffling stream: training goes on identically.
    loaded.rng = np.random.default_rng(1)
    trained.rng = np.random.default_rng(1)
    for net in (trained, loaded):
        net.layers[1].rng = np.random.default_rng(2)
        net.fit(X, y, epochs=2, batch_size=16)
    assert np.array_equal(loaded.parameters.snapshot(), trained.parameters.snapshot())


def test_without_optimizer_state(trained, tmp_path):
    trained.save(tmp_path / "m.safetensors", include_optimizer=False)
    loaded = nn.load(tmp_path / "m.safetensors")
    assert loaded.optimizer.iterations == 0 and loaded.optimizer.state == {}


def test_float64_network_round_trip(blobs, tmp_path):
    net = nn.Network.from_sizes([4, 5, 3], "tanh", dtype="float64", seed=0)
    net.save(tmp_path / "m.safetensors")
    loaded = nn.load(tmp_path / "m.safetensors")
    assert loaded.dtype == np.float64
    assert np.array_equal(loaded.predict(blobs[0]), net.predict(blobs[0]))


def test_metadata_is_plain_json(trained, tmp_path):
    save(trained, tmp_path / "m.safetensors", extra={"classes": ["a", "b", "c"]})
    meta = read_metadata(tmp_path / "m.safetensors")
    assert meta["extra"] == {"classes": ["a", "b", "c"]}
    assert meta["config"]["layers"][0]["activation"] == {"name": "leaky_relu", "alpha": 0.01}
    assert meta["config"]["optimizer"]["learning_rate"]["name"] == "cosine"
    raw = (tmp_path / "m.safetensors").read_bytes()
    assert b"pickle" not in raw and b"__reduce__" not in raw


def test_missing_file(tmp_path):
    with pytest.raises(nn.ModelFileError, match="No model file"):
        nn.load(tmp_path / "nope.safetensors")


def test_truncated_file(trained, tmp_path):
    path = tmp_path / "m.safetensors"
    trained.save(path)
    data = path.read_bytes()
    for cut in (4, 100, len(data) - 10):
        path.write_bytes(data[:cut])
        with pytest.raises(nn.ModelFileError, match="truncated|corrupted"):
            nn.load(path)


def test_corrupted_header(trained, tmp_path):
    path = tmp_path / "m.safetensors"
    trained.save(path)
    data = bytearray(path.read_bytes())
    data[10:20] = b"\xff" * 10
    path.write_bytes(bytes(data))
    with pytest.raises(nn.ModelFileError, match="corrupted"):
        nn.load(path)


def test_foreign_safetensors_file(tmp_path):
    from safetensors.numpy import save_file

    save_file({"weight": np.ones((2, 2), dtype=np.float32)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(nn.ModelFileError, match="not an nnscratch model"):
        nn.load(tmp_path / "other.safetensors")


def test_random_bytes(tmp_path):
    path = tmp_path / "junk.safetensors"
    path.write_bytes(os.urandom(2000))
    with pytest.raises(nn.ModelFileError):
        nn.load(path)


def _rewrite_metadata(path, checksum=True, **changes):
    """Change metadata entries (None: remove) as a forger would: with the metadata checksum
    recomputed (``checksum``), or as a flipped bit would, without."""
    from nnscratch.io import _metadata_checksum

    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    header["__metadata__"].update(changes)
    header["__metadata__"] = {k: v for k, v in header["__metadata__"].items() if v is not None}  # None: remove
    if checksum and "metadata_sha256" in header["__metadata__"]:
        header["__metadata__"]["metadata_sha256"] = _metadata_checksum(header["__metadata__"])
    new = json.dumps(header).encode()
    new += b" " * ((8 - len(new) % 8) % 8)
    path.write_bytes(struct.pack("<Q", len(new)) + new + data[8 + n :])


def test_newer_format_version(trained, tmp_path):
    path = tmp_path / "m.safetensors"
    trained.save(path)
    _rewrite_metadata(path, format_version="99")
    with pytest.raises(nn.ModelFileError, match="newer nnscratch.*format 99.*Upgrade"):
        nn.load(path)


def test_unknown_layer_name_in_config_is_refused(trained, tmp_path):
    path = tmp_path / "m.safetensors"
    trained.save(path)
    config = read_metadata(path)["config"]
    config["layers"][0]["name"] = "os.system"
    _rewrite_metadata(path, config=json.dumps(config))
    with pytest.raises(nn.ModelFileError, match="Unknown layer 'os.system'"):
        nn.load(path)


def test_atomic_write_keeps_old_file_on_crash(trained, tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"
    trained.save(path)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated"):
        trained.save(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]


def test_saved_files_get_ordinary_permissions(trained, tmp_path):
    path = tmp_path / "m.safetensors"
    old = os.umask(0o022)
    try:
        trained.save(path)
        assert path.stat().st_mode & 0o777 == 0o644
        path.chmod(0o640)
        trained.save(path)  # overwriting keeps the file's mode
        assert path.stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(old)


def test_a_flipped_byte_in_the_tensor_data_is_refused(trained, blobs, tmp_path):
    path = tmp_path / "m.safetensors"
    trained.save(path)
    data = bytearray(path.read_bytes())
    (n,) = struct.unpack("<Q", data[:8])
    data[8 + n + 5] ^= 0x40  # one bit of one weight
    path.write_bytes(bytes(data))
    with pytest.raises(nn.ModelFileError, match="corrupted: its tensor data do not match the checksum"):
        nn.load(path)


def test_a_changed_byte_in_the_metadata_is_refused(trained, tmp_path):
    """The classes, the config and every setting predictions depend on are covered by a
    checksum of their own: a model whose metadata changed after it was written is refused."""
    path = tmp_path / "m.safetensors"
    trained.save(path, extra={"classes": ["good", "bad"]})
    _rewrite_metadata(path, checksum=False, extra=json.dumps({"classes": ["bad", "good"]}))
    with pytest.raises(nn.ModelFileError, match="corrupted: its metadata .* do not match the checksum"):
        nn.load(path)
    with pytest.raises(nn.ModelFileError, match="corrupted: its metadata"):
        read_metadata(path)


def test_files_saved_before_checksums_still_load(trained, blobs, tmp_path):
    path = tmp_path / "m.safetensors"
    trained.save(path)
    _rewrite_metadata(path, tensor_sha256=None, metadata_sha256=None)
    X, _ = blobs
    assert np.array_equal(nn.load(path).predict(X), trained.predict(X))


def test_temporaries_of_killed_saves_are_cleaned_on_the_next_save(trained, tmp_path):
    import subprocess
    import sys

    path = tmp_path / "m.safetensors"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    leftover = tmp_path / f".m.safetensors.{int(dead.stdout)}.abc123.tmp"  # a save killed mid-write
    leftover.write_bytes(b"x" * 1000)
    alive = tmp_path / f".m.safetensors.{os.getpid()}.def456.tmp"  # a save of this process, in progress
    alive.write_bytes(b"y")
    other = tmp_path / ".other.safetensors.1.ghi789.tmp"
    other.write_bytes(b"z")
    trained.save(path)
    assert not leftover.exists() and alive.exists() and other.exists() and path.is_file()
