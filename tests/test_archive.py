"""Archives on a real Dask cluster: ``logs classify --scheduler`` gives the single-process result.

A real ``dask scheduler`` and two ``dask worker`` processes are started on loopback;
the shared logs are classified through the CLI with and without the cluster and the
outputs compared.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from nnscratch.cli import main
from nnscratch.weblogs.lines.reading import read_range
from nnscratch.weblogs.model.weblog import WebLogModel
from nnscratch.weblogs.serve.archive import pieces
from nnscratch.weblogs.serve.classify import ClassifySettings, classify

SHARED = ["webbot_humans_2019-10-27.log", "webbot_moderate_bots_2019-10-30_part1.log", "scanner_w3af_2016-12-22.log",
          "elastic_apache_2015-05-17_18.log", "secrepo_access_2021-10-22.log"]  # fmt: skip


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    """The address of a real Dask scheduler with two single-threaded workers, all on loopback."""
    folder = tmp_path_factory.mktemp("dask")
    file = folder / "scheduler.json"
    dask = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    quiet = {"cwd": folder, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    procs = [subprocess.Popen([*dask, "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file",
                               str(file)], **quiet)]  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        for _ in range(2):
            procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads",
                                           "1", "--host", "127.0.0.1", "--no-dashboard", "--local-directory",
                                           str(folder)], **quiet))  # fmt: skip
        from distributed import Client

        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_a_file_cut_at_any_offsets_gives_every_line_once_in_order(tmp_path):
    log = tmp_path / "a.log"
    lines = [b"first\n", b"\n", b"a longer third line\n", b"x\n", b"no newline at the end"]
    log.write_bytes(b"".join(lines))
    size = log.stat().st_size
    for cut in range(1, size + 1):
        for cut2 in range(cut, size + 1):
            got = [*read_range(log, 0, cut), *read_range(log, cut, cut2), *read_range(log, cut2, size)]
            assert got == lines, (cut, cut2)


def _classify_cli(model, logs, folder: Path, *extra: str) -> dict[str, str]:
    folder.mkdir()
    out = {name: folder / name for name in ("lines.csv", "bans.json", "bans.txt")}
    args = ["logs", "classify", str(model), *map(str, logs), "-o", str(out["lines.csv"]), "--ban-json",
            str(out["bans.json"]), "--ban-list", str(out["bans.txt"]), *extra]  # fmt: skip
    assert main(args) == 0
    return {name: path.read_text() for name, path in out.items()}


def _same_bans(one: str, other: str) -> None:
    """The same clients banned at the same requests and times; P(bad) to float32's last bits
    (BLAS sums a matrix's rows in an order that depends on how many rows it has)."""
    a, b = json.loads(one), json.loads(other)
    assert [(r["client"], r["ban_request"], r["ban_time"], r["requests"]) for r in a] == [
        (r["client"], r["ban_request"], r["ban_time"], r["requests"]) for r in b
    ]
    assert np.allclose([r["probability"] for r in a], [r["probability"] for r in b], rtol=0, atol=1e-6)


def test_classify_on_a_dask_cluster_gives_the_single_process_result(scheduler, watch_model, logs, tmp_path):
    files = [logs / name for name in SHARED]
    alone = _classify_cli(watch_model, files, tmp_path / "alone")
    cluster = _classify_cli(watch_model, files, tmp_path / "cluster", "--scheduler", scheduler)
    assert cluster["lines.csv"] == alone["lines.csv"]  # every line, label and probability, in the same order
    assert cluster["bans.txt"] == alone["bans.txt"] and alone["bans.txt"].count("\n") >= 3
    _same_bans(cluster["bans.json"], alone["bans.json"])


def test_pieces_of_a_file_and_late_lines_change_nothing(scheduler, watch_model, logs, tmp_path):
    # One file cut in 100 kB pieces; another with a line 20 minutes late (more than the time
    # order holds back), so that it must be judged whole, in one task.
    late = tmp_path / "late.log"
    text = (logs / "secrepo_access_2021-10-22.log").read_text().splitlines(keepends=True)
    late.write_text("".join(text[:300] + text[:1] + text[300:]))  # a copy of the first line, hours late
    files = [str(logs / "scanner_w3af_2016-12-22.log"), str(late)]
    assert len(pieces(files, 100_000)) >= 7
    model = WebLogModel.load(watch_model)

    def run(settings):
        out, verdicts = io.StringIO(), []
        n, counts = classify(model, files, out, on_verdict=verdicts.append, settings=settings)
        ruled = sorted((v.client, v.first_seen, v.requests, v.bad_lines, v.ban, v.ban_request) for v in verdicts)
        return n, counts, out.getvalue(), ruled

    alone = run(ClassifySettings(output_format="jsonl", workers=0))
    cluster = run(ClassifySettings(output_format="jsonl", scheduler=scheduler, piece_bytes=100_000))
    assert cluster == alone and alone[0] == 3996 + len(text) + 1
    # Six clients in turn, with room for two: the procedure forgets the longest known at each
    # line, so every request is a visit of its own. No bucket holds more than two of them, but
    # together they do, so the cluster judges that file again, whole.
    turns = tmp_path / "turns.log"
    agent = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"
    turns.write_text("".join(
        f'10.0.0.{i % 6 + 1} - - [{time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(1.6e9 + 5 * i))}] '
        f'"GET /page{i % 7}.html HTTP/1.1" 200 1234 "-" "{agent}"\n' for i in range(600)))  # fmt: skip
    files = [str(turns)]
    alone = run(ClassifySettings(workers=0, max_clients=2))
    assert len(alone[3]) == 600 and len(run(ClassifySettings(workers=0))[3]) == 6
    assert run(ClassifySettings(scheduler=scheduler, max_clients=2)) == alone


def test_the_cluster_refuses_standard_input_and_the_count_rule(watch_model, logs, capsys):
    log = str(logs / "secrepo_access_2021-10-22.log")
    assert main(["logs", "classify", str(watch_model), "-", "--jobs", "2"]) == 2
    assert main(["logs", "classify", str(watch_model), log, "--jobs", "2", "--ban-rule", "count"]) == 2
    err = capsys.readouterr().err
    assert err.count("needs log files (not -) and the client model (not --ban-rule count)") == 2
    assert main(["logs", "classify", str(watch_model), log, "--scheduler", "tcp://127.0.0.1:9"]) != 0
    assert "127.0.0.1:9" in capsys.readouterr().err


def test_crossval_on_a_dask_cluster_gives_the_one_process_figures(scheduler, logs, tmp_path):
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"gray_as": "bad", "sources": [
        {"name": "w3af", "bad": ["scanner_w3af_2016-12-22.log"], "unknown_agent": "Firefox/"},
        {"name": "secrepo", "logs": ["secrepo_access_2021-10-22.log"], "rules": True},
        {"name": "elastic", "logs": ["elastic_apache_2015-05-17_18.log"], "rules": True}]}))  # fmt: skip
    figures = {}
    for name, extra in (("alone", []), ("cluster", ["--scheduler", scheduler])):
        out = tmp_path / f"{name}.json"
        assert main(["logs", "crossval", "--manifest", str(manifest), "--root", str(logs), "--seeds", "0", "--epochs",
                     "2", "--quiet", "--json", str(out), *extra]) == 0  # fmt: skip
        figures[name] = [{k: v for k, v in result.items() if k != "seconds"} for result in json.loads(out.read_text())]
    assert figures["cluster"] == figures["alone"]
    runs = figures["alone"][0]["runs"]
    assert [(r["source"], r["renamed"], "error" in r) for r in runs] == [
        (source, renamed, False) for source in ("w3af", "secrepo", "elastic") for renamed in (False, True)
    ]
    assert runs[0]["ban_recall"] == 1.0


def test_train_on_a_dask_cluster_gives_the_one_process_model(scheduler, logs, tmp_path):
    files = ["--bad", str(logs / "scanner_w3af_2016-12-22.log"), "--unknown-agent", "Firefox/",
             str(logs / "secrepo_access_2021-10-22.log"), "--rules", "--gray-as", "bad"]  # fmt: skip
    models = {}
    for name, extra in (("alone", []), ("cluster", ["--scheduler", scheduler])):
        models[name] = tmp_path / f"{name}.safetensors"
        assert main(["logs", "train", *files, "--restarts", "2", "--epochs", "2", "--quiet", "-o",
                     str(models[name]), *extra]) == 0  # fmt: skip
    alone, cluster = (WebLogModel.load(models[name]) for name in ("alone", "cluster"))
    for one, other in zip(alone.network.parameters.snapshot(), cluster.network.parameters.snapshot(), strict=True):
        np.testing.assert_array_equal(one, other)
    lines = logs / "secrepo_access_2021-10-22.log"
    assert _classify_cli(models["cluster"], [lines], tmp_path / "c") == _classify_cli(models["alone"], [lines],
                                                                                       tmp_path / "a")  # fmt: skip
