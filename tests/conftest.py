"""Shared fixtures: small datasets and the location of the shared MNIST."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture
def xor() -> tuple[np.ndarray, np.ndarray]:
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
    return X, np.array([0, 1, 1, 0])


@pytest.fixture
def blobs() -> tuple[np.ndarray, np.ndarray]:
    """Three well separated Gaussian blobs in 4-D, 60 samples."""
    rng = np.random.default_rng(7)
    centers = rng.normal(0, 4, size=(3, 4))
    y = np.repeat(np.arange(3), 20)
    X = centers[y] + rng.normal(0, 0.5, size=(60, 4))
    return X, y


def shared_data() -> Path | None:
    """The shared data folder, named by NNSCRATCH_DATA (.ci/run points it at ../shared/data).

    Never a path relative to the checkout: a clone elsewhere must say where the data is.
    """
    root = os.environ.get("NNSCRATCH_DATA")
    return Path(root) if root and Path(root).is_dir() else None


def missing_shared(what: str) -> None:
    """Skip a test whose shared data is missing, except in CI, where that is a failure."""
    message = f"{what} not found: set NNSCRATCH_DATA to the shared data folder (../shared/data)"
    if os.environ.get("CI"):
        pytest.fail(message + "; CI must run every test")
    pytest.skip(message)


def mnist_path() -> Path | None:
    """The shared MNIST file, via NNSCRATCH_DATA, if present."""
    folder = shared_data()
    return folder / "mnist.pkl.gz" if folder is not None and (folder / "mnist.pkl.gz").is_file() else None


@pytest.fixture(scope="session")
def logs() -> Path:
    """The shared sample access logs ($NNSCRATCH_DATA/logs)."""
    folder = shared_data()
    if folder is None or not (folder / "logs").is_dir():
        missing_shared("the shared logs")
    return folder / "logs"


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Tests never download: any attempt to open a URL fails loudly."""
    import urllib.request

    def refuse(*args, **kwargs):
        raise AssertionError(f"a test tried to use the network: {args[:1]}")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


@pytest.fixture
def mnist(monkeypatch) -> tuple:
    """(train, validation, test) pairs from the shared MNIST; NNSCRATCH_DATA points at it."""

    path = mnist_path()
    if path is None:
        missing_shared("the shared MNIST")
    monkeypatch.setenv("NNSCRATCH_DATA", str(path.parent))
    return _load_once(str(path))


_CACHE: dict[str, tuple] = {}


def _load_once(path: str) -> tuple:
    from nnscratch.datasets import load_mnist

    if path not in _CACHE:
        _CACHE[path] = load_mnist(path)
    return _CACHE[path]


@pytest.fixture(scope="session")
def watch_model(logs, tmp_path_factory):
    from nnscratch.weblogs.labels.data import LabelledLines
    from nnscratch.weblogs.labels.rules import RuleLabeler
    from nnscratch.weblogs.model.weblog import TrainSettings, WebLogModel

    data = LabelledLines.gather(bad=[str(logs / "scanner_w3af_2016-12-22.log")], unknown_agent="Firefox/",
                                logs=[str(logs / "secrepo_access_2021-10-22.log"),
                                      str(logs / "elastic_apache_2015-05-17_18.log")],
                                rules=RuleLabeler(), gray_as="bad")  # fmt: skip
    model, _, _ = WebLogModel.train(data, settings=TrainSettings(restarts=1, epochs=4))
    path = tmp_path_factory.mktemp("watch") / "model.safetensors"
    model.save(path)
    return path


def _postgres_binaries() -> Path | None:
    """The folder of Debian's PostgreSQL server binaries (initdb, pg_ctl), if installed."""
    import glob
    import shutil

    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(versions[-1]).parent if versions else None


class _Postgres:
    """A PostgreSQL server of the test session: its ``url``, and ``stop``/``start`` for outages."""

    def __init__(self, pg_ctl: list[str], data: Path, options: str, log: Path, url: str) -> None:
        self.pg_ctl, self.data, self.options, self.log, self.url = pg_ctl, data, options, log, url

    def start(self) -> None:
        import subprocess

        subprocess.run([*self.pg_ctl, "-D", str(self.data), "-o", self.options, "-l", str(self.log), "-w", "-t", "60",
                        "start"], check=True, capture_output=True, timeout=120)  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        import subprocess

        subprocess.run([*self.pg_ctl, "-D", str(self.data), "-m", mode, "stop"], capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def postgres(tmp_path_factory):
    """A real PostgreSQL server for the session: ``initdb`` and ``pg_ctl`` in a temporary folder,
    run as an unprivileged user (``postgres`` when the tests run as root), listening on a free
    loopback port with its socket in that folder. Stops at the end."""
    import shutil
    import socket
    import subprocess

    binaries = _postgres_binaries()
    if binaries is None:
        message = "PostgreSQL is not installed (Debian's postgresql package: initdb, pg_ctl)"
        if os.environ.get("CI"):
            pytest.fail(message + "; .ci/run installs it")
        pytest.skip(message)
    folder = tmp_path_factory.mktemp("postgres")
    run_as: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root: run it as its own user
        import pwd

        user = "postgres" if "postgres" in {p.pw_name for p in pwd.getpwall()} else "nobody"
        for path in [folder, *folder.parents]:
            if str(path) in ("/", "/tmp"):
                break
            os.chmod(path, os.stat(path).st_mode | 0o711)  # let the server's user reach its folder
        shutil.chown(folder, user)
        run_as = ["runuser", "-u", user, "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = folder / "data"
    subprocess.run([*run_as, str(binaries / "initdb"), "-D", str(data), "-A", "trust", "-U", "nnscratch", "-E", "UTF8",
                    "--no-sync"], check=True, capture_output=True, timeout=120)  # fmt: skip
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50"
    server = _Postgres([*run_as, str(binaries / "pg_ctl")], data, options, folder / "log",
                       f"postgresql://nnscratch@127.0.0.1:{port}/postgres")  # fmt: skip
    server.start()
    try:
        yield server
    finally:
        server.stop("immediate")


@pytest.fixture(scope="session")
def postgres_url(postgres):
    return postgres.url
