"""Dataset loading: every layout, the search order, corrupt files, no silent downloads."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import pickle
import struct
import threading
import urllib.request

import numpy as np
import pytest

from nnscratch.datasets import (
    CSVError,
    DataFileError,
    DataNotFoundError,
    classic_table,
    load,
    load_csv,
    load_digits,
    load_mnist,
    load_moons,
)
from nnscratch.datasets import mnist as mnist_module


def fake_mnist(n_train: int = 50_010, n_test: int = 20, seed: int = 0):
    rng = np.random.default_rng(seed)
    return (
        rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, n_train).astype(np.uint8),
        rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, n_test).astype(np.uint8),
    )


def idx_bytes(a: np.ndarray) -> bytes:
    return struct.pack(">HBB", 0, 8, a.ndim) + struct.pack(">" + "I" * a.ndim, *a.shape) + a.tobytes()


def write_idx(folder, arrays, gz=True):
    folder.mkdir(parents=True, exist_ok=True)
    for stem, a in zip(mnist_module.IDX_FILES.values(), arrays, strict=True):
        data = idx_bytes(a)
        (folder / (stem + (".gz" if gz else ""))).write_bytes(gzip.compress(data) if gz else data)


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No NNSCRATCH_DATA and an empty cache."""
    monkeypatch.delenv("NNSCRATCH_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path


@pytest.mark.parametrize("gz", [True, False])
def test_idx_files(isolated, gz):
    arrays = fake_mnist()
    write_idx(isolated / "idx", arrays, gz=gz)
    data = load_mnist(isolated / "idx")
    (X, y), (Xv, yv), (Xt, yt) = data
    assert X.shape == (50_000, 784) and Xv.shape == (10, 784) and Xt.shape == (20, 784)
    assert X.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_array_equal(X[3], arrays[0][3].ravel() / 256.0)
    np.testing.assert_array_equal(yv, arrays[1][50_000:])
    assert X.max() < 1.0


def test_npz_layout(isolated):
    a = fake_mnist()
    np.savez(isolated / "mnist.npz", x_train=a[0], y_train=a[1], x_test=a[2], y_test=a[3])
    data = load_mnist(isolated / "mnist.npz")
    np.testing.assert_array_equal(data.test[1], a[3])


def test_pickle_layout_and_shared_file(mnist):
    (X, y), (Xv, yv), (Xt, yt) = mnist
    assert (len(X), len(Xv), len(Xt)) == (50_000, 10_000, 10_000)
    assert X.dtype == np.float32 and X.max() == pytest.approx(255 / 256)


def test_search_order_env_then_cache(isolated, monkeypatch):
    write_idx(isolated / "cache" / "nnscratch" / "mnist", fake_mnist(seed=1))
    from_cache = load_mnist(download=False)
    write_idx(isolated / "env", fake_mnist(seed=2))
    monkeypatch.setenv("NNSCRATCH_DATA", str(isolated / "env"))
    from_env = load_mnist(download=False)
    assert not np.array_equal(from_cache.train[0][:5], from_env.train[0][:5])
    np.testing.assert_array_equal(from_env.test[1], fake_mnist(seed=2)[3])


def test_not_found_says_where_it_looked(isolated):
    with pytest.raises(DataNotFoundError) as info:
        load_mnist(download=False)
    message = str(info.value)
    assert "$NNSCRATCH_DATA (not set)" in message and "cache" in message and "NNSCRATCH_DATA to a folder" in message


def test_truncated_and_wrong_files_are_reported(isolated):
    arrays = fake_mnist()
    write_idx(isolated / "bad", arrays, gz=False)
    path = isolated / "bad" / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataFileError, match="truncated"):
        load_mnist(isolated / "bad")
    (isolated / "junk.pkl.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataFileError, match="not a readable mnist.pkl.gz"):
        load_mnist(isolated / "junk.pkl.gz")
    wrong = (np.zeros((5, 3), np.float32), np.zeros(5, np.int64))
    with gzip.open(isolated / "wrong.pkl.gz", "wb") as f:
        pickle.dump((wrong, wrong, wrong), f)
    with pytest.raises(DataFileError, match=r"shape \(5, 3\), expected \(n, 784\)"):
        load_mnist(isolated / "wrong.pkl.gz")


def test_pickle_cannot_run_code(isolated):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with gzip.open(isolated / "evil.pkl.gz", "wb") as f:
        pickle.dump(Evil(), f)
    with pytest.raises(DataFileError, match="refusing to unpickle builtins.print"):
        load_mnist(isolated / "evil.pkl.gz")


def test_download_verifies_and_caches(isolated, monkeypatch):
    """Against a server on localhost: the real download code, checksums included."""
    arrays = fake_mnist(n_train=50_005, n_test=7)
    served = {
        stem + ".gz": gzip.compress(idx_bytes(a))
        for stem, a in zip(mnist_module.IDX_FILES.values(), arrays, strict=True)
    }
    hashes = {
        stem: hashlib.sha256(idx_bytes(a)).hexdigest()
        for stem, a in zip(mnist_module.IDX_FILES.values(), arrays, strict=True)
    }
    hashes["t10k-labels-idx1-ubyte"] = "0" * 64  # one file fails verification on the first mirror

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = served.get(self.path.rsplit("/", 1)[-1])
            self.send_response(200 if body else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.undo()  # lift the no-network guard: this server is on localhost
    monkeypatch.delenv("NNSCRATCH_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(isolated / "cache"))
    real_urlopen = urllib.request.urlopen

    def local_only(url, *args, **kwargs):
        assert url.startswith("http://127.0.0.1:"), url
        return real_urlopen(url, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", local_only)
    monkeypatch.setattr(mnist_module, "MIRRORS", [f"http://127.0.0.1:{server.server_port}/a/"])
    monkeypatch.setattr(mnist_module, "SHA256", hashes)
    try:
        with pytest.raises(DataNotFoundError, match="checksum mismatch"):
            load_mnist(progress=False)
        assert not (isolated / "cache" / "nnscratch" / "mnist" / "t10k-labels-idx1-ubyte.gz").exists()
        hashes["t10k-labels-idx1-ubyte"] = hashlib.sha256(idx_bytes(arrays[3])).hexdigest()
        data = load_mnist(progress=False)
        np.testing.assert_array_equal(data.test[1], arrays[3])
        server.shutdown()
        again = load_mnist(download=False)  # now from the cache
        np.testing.assert_array_equal(again.train[0], data.train[0])
    finally:
        server.server_close()


def test_bundled_datasets():
    X, y = classic_table("first")
    assert X.shape == (4, 3) and y.ravel().tolist() == [0, 0, 1, 1]
    assert classic_table("xor")[1].ravel().tolist() == [0, 1, 1, 0]
    X, y = load_digits()
    assert X.shape == (1797, 64) and X.max() == 1.0 and X.dtype == np.float32
    X, y = load_moons(100)
    assert X.shape == (100, 2) and set(y) == {0, 1}
    assert load("circles")[0].shape == (200, 2)
    with pytest.raises(ValueError, match="Unknown dataset 'mnits'. Valid names: digits, mnist"):
        load("mnits")


def test_csv(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,b,target\n1,2,0\n3,4.5,1\n5,6,1\n")
    X, y, names = load_csv(path, label="target")
    assert X.tolist() == [[1, 2], [3, 4.5], [5, 6]] and y.tolist() == [0, 1, 1] and names == ["a", "b"]
    X, y, _ = load_csv(path, label=0)
    assert y.tolist() == [1, 3, 5] and X.shape == (3, 2)
    assert load_csv(path, label=None)[1] is None
    path.write_text("1;2;0.5\n3;4;1.5\n")
    X, y, names = load_csv(path)
    assert y.dtype == np.float32 and names == ["x0", "x1"]


@pytest.mark.parametrize(
    "text,kwargs,match",
    [
        # a name in a feature column is an error (in the label column it is a class name: see below)
        ("a,b\nx,1\n", {}, r"line 2, column 'a': 'x' is not a number"),
        ("a,b\n1,\n", {}, r"line 2, column 'b': missing value"),
        ("a,b\n1,NA\n", {}, "missing value"),
        ("a,b\n1,2\n3\n", {}, "line 3: 1 values, expected 2"),
        ("", {}, "is empty"),
        ("a,b\n", {}, "no data rows"),
        ("a,b\n1,2\n", {"label": "c"}, "no column 'c'. Columns: a, b"),
        ("1,2\n", {"label": 5}, "out of range"),
    ],
)
def test_csv_errors(tmp_path, text, kwargs, match):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(CSVError, match=match):
        load_csv(path, **kwargs)


def test_class_names_in_the_label_column(tmp_path):
    path = tmp_path / "wine.csv"
    path.write_text("alcohol,kind\n13.2,barolo\n12.1,grignolino\n")
    X, y, names = load_csv(path, label="kind")
    assert y.tolist() == ["barolo", "grignolino"] and names == ["alcohol"] and X.shape == (2, 1)


def test_a_csv_file_is_a_boundary_whatever_its_bytes(tmp_path):
    """Issue 29, class 1: a folder, a binary file, bytes that are not UTF-8 and a cut-short
    archive are each one sentence; gzip, bzip2 and xz CSVs are read like plain ones."""
    import bz2
    import gzip
    import lzma

    table = b"a,b,kind\n1,2,barolo\n3,4,grignolino\n"
    for name, pack in (("t.csv.gz", gzip.compress), ("t.csv.bz2", bz2.compress), ("t.csv.xz", lzma.compress)):
        (tmp_path / name).write_bytes(pack(table))
        X, y, names = load_csv(tmp_path / name, label="kind")
        assert X.tolist() == [[1, 2], [3, 4]] and y.tolist() == ["barolo", "grignolino"] and names == ["a", "b"]
        whole = pack(table * 200)
        (tmp_path / name).write_bytes(whole[: len(whole) // 2])
        with pytest.raises(CSVError, match=r"is cut short or damaged \((gzip|bzip2|xz): "):
            load_csv(tmp_path / name, label="kind")
    (tmp_path / "folder").mkdir()
    with pytest.raises(CSVError, match="is a folder, not a CSV file"):
        load_csv(tmp_path / "folder")
    (tmp_path / "image.csv").write_bytes(bytes(range(256)) * 4)
    with pytest.raises(CSVError, match=r"is not a text file \(it holds NUL bytes\)"):
        load_csv(tmp_path / "image.csv")
    (tmp_path / "latin1.csv").write_bytes("alcohol,kind\n13.2,caf\xe9\n".encode("latin-1"))
    with pytest.raises(CSVError, match=r"latin1.csv, line 2: byte 0xe9 is not UTF-8\. Save the file as UTF-8"):
        load_csv(tmp_path / "latin1.csv", label="kind")  # never a class named 'caf\ufffd'
