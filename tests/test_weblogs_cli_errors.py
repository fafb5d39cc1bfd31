"""The web-log commands at their edges: gzip on standard input, logs cut short, directories,
closed pipes, OS errors, gray labels and clients without an address. One line, never a traceback."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

import pytest

from nnscratch.cli import main
from nnscratch.weblogs.labels.data import LabelledLines
from nnscratch.weblogs.labels.rules import RuleLabeler
from nnscratch.weblogs.lines.reading import ParseStats, parse_stream, read_lines
from nnscratch.weblogs.model.weblog import TrainSettings, WebLogModel
from nnscratch.weblogs.serve.classify import classify, verdict_rows


@pytest.fixture(scope="module")
def secrepo(logs):
    return logs / "secrepo_access_2021-10-22.log"


@pytest.fixture(scope="module")
def model_file(secrepo, tmp_path_factory):
    data = LabelledLines.gather(logs=[str(secrepo)], rules=RuleLabeler(), gray_as="bad")
    model, _, _ = WebLogModel.train(data, settings=TrainSettings(restarts=1, epochs=4))
    path = tmp_path_factory.mktemp("model") / "m.safetensors"
    model.save(path)
    return path


def nnscratch(*args: str, stdin: bytes | None = None, shell: str | None = None) -> subprocess.CompletedProcess:
    if shell is not None:
        return subprocess.run(["bash", "-o", "pipefail", "-c", shell], capture_output=True, timeout=120)
    return subprocess.run([sys.executable, "-m", "nnscratch", *args], input=stdin, capture_output=True, timeout=120)


def test_gzip_on_standard_input_is_read(secrepo, model_file, tmp_path):
    packed = gzip.compress(secrepo.read_bytes())
    run = nnscratch("logs", "classify", str(model_file), "-", "-o", str(tmp_path / "out.csv"), stdin=packed)
    assert run.returncode == 0, run.stderr
    assert b"644 of 644 lines parsed" in run.stderr
    two_members = packed + packed  # concatenated gzip files are one valid stream
    stats = ParseStats()
    (tmp_path / "two.gz").write_bytes(two_members)
    assert sum(1 for _ in parse_stream([tmp_path / "two.gz"], stats)) == 1288 and not stats.unreadable


def test_a_log_cut_short_is_used_up_to_the_cut_and_reported(secrepo, model_file, tmp_path, capsys):
    cut = tmp_path / "cut.log.gz"
    cut.write_bytes(gzip.compress(secrepo.read_bytes())[:5000])
    stats = ParseStats()
    lines = list(parse_stream([cut], stats))
    assert 100 < len(lines) < 644 and len(stats.unreadable) == 1 and "cut short" in str(stats.unreadable[0])
    with pytest.raises(EOFError, match="cut short"):
        list(read_lines([cut]))
    out = tmp_path / "out.csv"
    assert main(["logs", "classify", str(model_file), str(cut), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "error: " + str(cut) in err and "the lines before it were used" in err and "Traceback" not in err
    assert len(out.read_text().splitlines()) == 1 + stats.parsed  # every readable line was written
    assert main(["logs", "label", str(cut), "-o", str(tmp_path / "l.tsv")]) == 1
    assert main(["logs", "train", str(cut), "--rules", "-o", str(tmp_path / "m.safetensors")]) == 1
    assert "cut short" in capsys.readouterr().err and not (tmp_path / "m.safetensors").exists()


def test_a_manifest_naming_a_log_cut_short_is_refused_like_the_file_itself(secrepo, logs, tmp_path, capsys):
    """``logs train --manifest`` and ``logs crossval`` refuse a truncated .gz as ``--bad FILE`` does
    (merging the sources used to drop the report that it was cut short)."""
    cut = tmp_path / "cut.log.gz"
    cut.write_bytes(gzip.compress(secrepo.read_bytes())[:5000])
    (tmp_path / "scan.log").write_bytes((logs / "scanner_w3af_2016-12-22.log").read_bytes())
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps({"gray_as": "bad", "sources": [
        {"name": "scan", "bad": ["scan.log"]}, {"name": "cut", "logs": ["cut.log.gz"], "rules": True}]}))  # fmt: skip
    model = tmp_path / "m.safetensors"
    assert main(["logs", "train", "--bad", str(cut), "-o", str(model)]) == 1
    alone = capsys.readouterr().err
    assert main(["logs", "train", "--manifest", str(manifest), "--root", str(tmp_path), "-o", str(model)]) == 1
    err = capsys.readouterr().err
    assert "cut short" in alone and "cut short" in err and str(cut) in err and not model.exists()
    assert main(["logs", "crossval", "--manifest", str(manifest), "--root", str(tmp_path), "--quiet"]) == 1
    assert "cut short" in capsys.readouterr().err


def test_os_errors_are_one_line(model_file, secrepo, tmp_path, capsys):
    assert main(["logs", "classify", str(model_file), str(tmp_path)]) == 1
    assert capsys.readouterr().err.strip() == f"error: {tmp_path}: is a directory, not a log file (give the files " \
        "inside it)"  # fmt: skip
    assert main(["logs", "classify", str(model_file), str(secrepo), "-o", str(tmp_path / "o.csv"),
                 "--ban-list", str(tmp_path)]) == 1  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"error: {tmp_path}: ") and "Traceback" not in err


def test_a_closed_pipe_ends_quietly(model_file, secrepo):
    many = " ".join([str(secrepo)] * 20)
    for command in (f"logs classify {model_file} {many}", f"logs label {many}"):
        run = nnscratch(shell=f"{sys.executable} -m nnscratch {command} | head -n 2")
        assert b"Traceback" not in run.stderr and b"BrokenPipe" not in run.stderr, run.stderr
        assert len(run.stdout.splitlines()) == 2


def test_gray_labels_on_a_model_without_gray_say_which_flag(model_file, secrepo, capsys):
    assert main(["logs", "evaluate", str(model_file), str(secrepo), "--rules"]) == 2
    assert "pass the same --gray-as here" in capsys.readouterr().err
    assert main(["logs", "evaluate", str(model_file), str(secrepo), "--rules", "--gray-as", "bad"]) == 0


def test_lines_without_an_address_are_never_banned(model_file, tmp_path):
    log = tmp_path / "anon.log"
    log.write_text("".join(f'- - [01/Jan/2020:00:00:{i:02d} +0000] "GET /wp-login.php?x=%27 HTTP/1.1" 404 1 '
                           f'"-" "sqlmap/1.0"\n' for i in range(40)))  # fmt: skip
    model = WebLogModel.load(model_file)
    verdicts = []
    classify(model, [str(log)], None, on_verdict=verdicts.append)
    assert [v.client for v in verdicts] == ["-"] and not verdict_rows(verdicts)
    assert verdicts[0].reason == "no client address"


def test_logs_train_checks_its_output_before_training(secrepo, tmp_path, capsys):
    assert main(["logs", "train", str(secrepo), "--rules", "-o", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert f"{tmp_path}: -o is a folder" in captured.err and "labels:" not in captured.out


def test_a_state_file_that_is_not_a_watchers_is_refused_and_never_modified(model_file, secrepo, tmp_path, capsys):
    """Issue 29, class 1: every file the tool opens is a boundary. Another program's SQLite
    file, a zeroed or half-written file, a model, a missing folder: one sentence, exit 2, the
    file byte for byte as it was; a state file of an older nnscratch (no id yet) is adopted."""
    import sqlite3

    from nnscratch.weblogs.watch.state import APPLICATION_ID, StateFileError, Store

    other = tmp_path / "app.sqlite"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE customers (id INTEGER, name TEXT)")
    good = tmp_path / "good.sqlite"
    Store(good).close()
    zeroed, half = tmp_path / "zeroed.sqlite", tmp_path / "half.sqlite"
    zeroed.write_bytes(bytes(4096))
    half.write_bytes(good.read_bytes()[:100])
    cases = {other: "database of another program", zeroed: "not an SQLite database",
             half: "not an SQLite database", model_file: "not an SQLite database"}  # fmt: skip
    for path, words in cases.items():
        before = path.read_bytes()
        with pytest.raises(StateFileError, match=words):
            Store(path)
        for command in (
            ["logs", "bans", "--state", str(path)],
            ["logs", "why", "1.2.3.4", "--state", str(path)],
            ["logs", "watch", str(model_file), str(secrepo), "--state", str(path), "--dry-run"],
        ):
            assert main(command) == 2, (path, command)
            err = capsys.readouterr().err
            assert words in err and "Traceback" not in err and err.count("\n") == 1
        assert path.read_bytes() == before, path  # never modified
    assert main(["logs", "watch", str(model_file), str(secrepo), "--state", str(tmp_path / "no" / "s.sqlite"),
                 "--dry-run"]) == 2  # fmt: skip
    assert "does not exist: create it (mkdir -p" in capsys.readouterr().err
    older = tmp_path / "older.sqlite"  # a state file written before the application id
    with sqlite3.connect(older) as db:
        db.execute("CREATE TABLE bans (address TEXT PRIMARY KEY, since REAL, until REAL, reason TEXT)")
        db.execute("INSERT INTO bans VALUES ('203.0.113.7', 0, 4e9, 'kept')")
    store = Store(older)
    assert [b.address for b in store.bans()] == ["203.0.113.7"]
    assert store.db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    store.close()


def test_nothing_that_is_not_ours_is_overwritten(model_file, secrepo, logs, tmp_path, capsys):
    """Issue 29, class 3: a model output that exists and is not an nnscratch model needs --force;
    an output that is one of the command's own inputs is refused, --force or not; both before
    any work, with the file as it was."""
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    assert main(["train", "digits", "--hidden", "8", "--epochs", "1", "--out", str(notes), "--quiet",
                 "--no-plots"]) == 1  # fmt: skip
    err = capsys.readouterr().err
    assert "exists and is not an nnscratch model" in err and "--force" in err and notes.read_text() == "my notes\n"
    assert main(["logs", "train", str(secrepo), "--rules", "-o", str(notes)]) == 1
    assert "not an nnscratch model" in capsys.readouterr().err and notes.read_text() == "my notes\n"
    log = tmp_path / "access.log"
    log.write_bytes(secrepo.read_bytes())
    for command in (["logs", "train", str(log), "--rules", "-o", str(log), "--force"],
                    ["logs", "classify", str(model_file), str(log), "-o", str(log)],
                    ["logs", "classify", str(model_file), str(log), "--ban-json", str(model_file)]):  # fmt: skip
        before = (log.read_bytes(), model_file.read_bytes())
        assert main(command) == 1, command
        assert "is also an input of this command" in capsys.readouterr().err
        assert (log.read_bytes(), model_file.read_bytes()) == before
    model = tmp_path / "m.safetensors"  # an earlier model is ours: replaced without --force
    assert main(["train", "digits", "--hidden", "8", "--epochs", "1", "--out", str(model), "--quiet",
                 "--no-plots"]) == 0  # fmt: skip
    assert main(["train", "digits", "--hidden", "8", "--epochs", "1", "--out", str(model), "--quiet",
                 "--no-plots"]) == 0  # fmt: skip
    assert main(["train", "digits", "--hidden", "8", "--epochs", "1", "--out", str(notes), "--quiet", "--no-plots",
                 "--force"]) == 0 and notes.read_bytes()[:8] != b"my notes"  # fmt: skip
    onnx_notes = tmp_path / "notes.onnx"  # an ONNX output is a model output too (export overwrote it, exit 0)
    onnx_notes.write_text("my notes\n")
    assert main(["export", str(model), "-o", str(onnx_notes)]) == 1
    assert "exists and is not an ONNX model nnscratch wrote" in capsys.readouterr().err
    assert onnx_notes.read_text() == "my notes\n"
    ours = tmp_path / "m.onnx"
    assert main(["export", str(model), "-o", str(ours)]) == 0 and main(["export", str(model), "-o", str(ours)]) == 0
    assert main(["export", str(model), "-o", str(onnx_notes), "--force"]) == 0
    assert onnx_notes.read_bytes()[:8] != b"my notes"


def test_bzip2_and_xz_logs_are_read_and_cut_short_ones_reported(secrepo, model_file, tmp_path, capsys):
    """bzip2 and xz are read like gzip, from files and standard input; one cut short is used up
    to the cut and reported."""
    import bz2
    import lzma

    for name, pack in (("bz2", bz2.compress), ("xz", lzma.compress)):
        packed = pack(secrepo.read_bytes())
        path = tmp_path / f"log.{name}"
        path.write_bytes(packed)
        stats = ParseStats()
        assert sum(1 for _ in parse_stream([path], stats)) == 644 and not stats.unreadable
        run = nnscratch("logs", "classify", str(model_file), "-", "-o", str(tmp_path / "out.csv"), stdin=packed)
        assert run.returncode == 0 and b"644 of 644 lines parsed" in run.stderr, run.stderr
        cut = tmp_path / f"cut.{name}"
        cut.write_bytes(packed[: len(packed) // 2])
        stats = ParseStats()
        assert sum(1 for _ in parse_stream([cut], stats)) < 644  # bzip2 gives nothing of a block cut short
        assert f"the {'bzip2' if name == 'bz2' else 'xz'} stream is cut short" in str(stats.unreadable[0])


def test_watch_from_start_on_a_compressed_log_cut_short_reports_it_and_goes_on(secrepo, model_file, tmp_path):
    """``logs watch --from-start`` on a .gz cut short: the lines before the cut are judged, the
    cut is reported in one line, no traceback (it used to end in ``EOFError``)."""
    import signal
    import sqlite3
    import time

    cut = tmp_path / "cut.log.gz"
    cut.write_bytes(gzip.compress(secrepo.read_bytes())[:5000])
    readable = sum(1 for _ in read_lines([cut], []))  # whole lines and the piece before the cut
    state = tmp_path / "s.sqlite"
    proc = subprocess.Popen([sys.executable, "-m", "nnscratch", "logs", "watch", str(model_file), str(cut), "--state",
                             str(state), "--from-start", "--dry-run", "--poll", "0.05"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    deadline, done = time.time() + 60, 0
    while time.time() < deadline and proc.poll() is None and done < readable:
        time.sleep(0.1)
        try:
            with sqlite3.connect(state) as db:
                row = db.execute("SELECT value FROM counters WHERE name = 'lines'").fetchone()
            done = row[0] if row else 0
        except sqlite3.Error:
            pass
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and done == readable, err.decode()
    assert b"cut short" in err and b"Traceback" not in err


@pytest.mark.parametrize(
    ("prepare", "hint"),
    [(lambda text: text.encode("utf-16"), "UTF-16 text"),
     (lambda text: "".join("Dec  2 10:00:00 web nginx: " + line + "\n" for line in text.splitlines()).encode(),
      "syslog lines carrying combined lines")],
)  # fmt: skip
def test_a_log_that_no_format_reads_says_what_it_looks_like(secrepo, model_file, tmp_path, capsys, prepare, hint):
    path = tmp_path / "odd.log"
    path.write_bytes(prepare(secrepo.read_text()[:5000]))
    assert main(["logs", "classify", str(model_file), str(path), "-o", str(tmp_path / "out.csv")]) != 0
    err = capsys.readouterr().err
    assert hint in err and "--format" in err and "Traceback" not in err


def test_messages_point_the_right_way(secrepo, model_file, logs, tmp_path, capsys):
    """Round two's misleading messages, each now saying what happened: an empty log with
    --rules, a label file matching no line, a manifest source naming no file, a seed out of
    range (naming the option), a web-log model given to the table commands, an nftables
    table name that would be pasted into nft's commands."""
    empty = tmp_path / "empty.log"
    empty.write_text("")
    assert main(["logs", "train", str(empty), "--rules", "-o", str(tmp_path / "m.safetensors")]) == 2
    assert "hold no line to learn from (0 of 0 lines parsed" in capsys.readouterr().err
    labels = logs / "webbot_session_labels_dev.tsv"
    assert main(["logs", "train", str(secrepo), "--labels", str(labels), "-o", str(tmp_path / "m.safetensors")]) == 2
    assert "none of the 644 lines read is labelled: the label files match none" in capsys.readouterr().err
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps({"sources": [{"name": "nothing", "rules": True}]}))
    assert main(["logs", "crossval", "--manifest", str(manifest), "--quiet"]) == 2
    assert "source 'nothing' names no log file" in capsys.readouterr().err
    crossval = ["logs", "crossval", "--manifest", str(manifest)]
    for argv in (["train", "moons", "--seed", "-1"], [*crossval, "--seeds", "-3"]):
        with pytest.raises(SystemExit):
            main(argv)
        assert "argument --seed" in capsys.readouterr().err
    table = tmp_path / "t.csv"
    table.write_text("a,b\n1,2\n")
    assert main(["evaluate", str(model_file), "moons"]) == 1
    err = capsys.readouterr().err
    assert "is a web-log model" in err and "nnscratch logs evaluate" in err
    assert main(["predict", str(model_file), str(table)]) == 1
    assert "is a web-log model" in capsys.readouterr().err
    assert main(["logs", "watch", str(model_file), str(secrepo), "--nft-table", "x; flush ruleset", "--nft-script",
                 str(tmp_path / "n.nft"), "--state", str(tmp_path / "s.sqlite")]) == 2  # fmt: skip
    assert "--nft-table must be a name of letters" in capsys.readouterr().err and not (tmp_path / "n.nft").exists()


def test_a_second_watcher_on_one_state_file_is_refused_with_its_holder(model_file, secrepo, tmp_path):
    """Two watchers on one state file counted the same lines twice; the second is now refused
    and told which process holds the file (the lock goes with the first)."""
    import time

    state = tmp_path / "s.sqlite"
    command = [sys.executable, "-m", "nnscratch", "logs", "watch", str(model_file), str(secrepo), "--state",
               str(state), "--dry-run"]  # fmt: skip
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        lock = tmp_path / ".s.sqlite.lock"
        deadline = time.time() + 60
        while time.time() < deadline and not (lock.exists() and lock.read_text().strip()):
            time.sleep(0.1)
        second = nnscratch(*command[3:])
        assert second.returncode != 0 and b"in use by another watcher (pid " in second.stderr, second.stderr
        assert f"pid {first.pid}".encode() in second.stderr
    finally:
        first.terminate()
        first.communicate(timeout=60)


def test_a_folder_where_a_file_belongs_is_named_as_a_folder(model_file, secrepo, tmp_path, capsys):
    """Issue 29, class 1: a folder given as a model, a state file, a followed log or an output
    is refused in one sentence that says it is a folder and what to give instead, before any
    state file is made; before, `logs bans` said there was no such file, `logs watch` started
    and then failed, and `-o` suggested a model's name for a CSV of lines."""
    folder = tmp_path / "a-folder"
    folder.mkdir()
    state = tmp_path / "state.sqlite"
    cases = [
        (["info", str(folder)], "is a folder, not a model file"),
        (["train", str(folder), "--out", str(tmp_path / "m.safetensors")], "is a folder, not a CSV file"),
        (["logs", "train", str(secrepo), "--labels", str(folder), "-o", str(tmp_path / "m.safetensors")],
         "is a folder, not a label file"),
        (["logs", "crossval", "--manifest", str(folder)], "is a folder, not a manifest"),
        (["logs", "bans", "--state", str(folder)], "is a folder, not a watcher's state file"),
        (["logs", "why", "1.2.3.4", "--state", str(folder)], "is a folder, not a watcher's state file"),
        (["logs", "watch", str(model_file), str(folder), "--dry-run", "--state", str(state)],
         "is a directory, not a log file (give the files inside it)"),
        (["logs", "classify", str(model_file), str(secrepo), "-o", str(folder)], f"{folder / 'lines.csv'}"),
        (["logs", "classify", str(model_file), str(secrepo), "-o", str(tmp_path / "x.csv"), "--ban-json", str(folder)],
         f"{folder / 'bans.json'}"),
    ]  # fmt: skip
    for argv, said in cases:
        assert main(argv) != 0, argv
        err = capsys.readouterr().err
        assert said in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, (argv, err)
    assert not state.exists()


def test_a_label_file_or_manifest_of_other_bytes_and_an_empty_log_to_evaluate(model_file, tmp_path, capsys):
    """Issue 29, classes 1 and 8: a label file or manifest that is not UTF-8 text is named with
    its line (it was a bare "'utf-8' codec can't decode byte 0x80"), and evaluating on a log
    with no lines says so (it said "X is empty: it has 0 samples")."""
    binary = tmp_path / "labels.tsv"
    binary.write_bytes(bytes(range(256)))
    empty = tmp_path / "empty.log"
    empty.write_text("")
    cases = [
        (["logs", "train", str(empty), "--labels", str(binary), "-o", str(tmp_path / "m.safetensors")],
         "labels.tsv, line 2: byte 0x80 is not UTF-8; a label file is UTF-8 text"),
        (["logs", "crossval", "--manifest", str(binary)], "byte 0x80 is not UTF-8; a manifest is UTF-8 text"),
        (["logs", "evaluate", str(model_file), str(empty), "--rules"], "the logs hold no line to evaluate on (0 of 0"),
    ]  # fmt: skip
    for argv, said in cases:
        assert main(argv) != 0, argv
        err = capsys.readouterr().err
        assert said in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, (argv, err)


def test_text_outputs_never_replace_a_file_that_is_not_their_own(model_file, secrepo, tmp_path, capsys):
    """Issue 29, class 3: `logs label LOG -o LOG` emptied the log before reading it; predict, label,
    classify and crossval replaced any existing file. Each output now replaces only a file the
    same command wrote (recognised by its header, or a ban list of addresses), else needs
    --force; all before any work."""
    log = tmp_path / "access.log"
    log.write_bytes(secrepo.read_bytes())
    assert main(["logs", "label", str(log), "-o", str(log)]) == 1
    assert "is also an input of this command" in capsys.readouterr().err and log.read_bytes() == secrepo.read_bytes()
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    table = tmp_path / "rows.csv"
    table.write_text("a,b\n1,2\n")
    digits = tmp_path / "digits.safetensors"
    assert main(["train", "digits", "--hidden", "8", "--epochs", "1", "--out", str(digits), "--quiet",
                 "--no-plots"]) == 0  # fmt: skip
    capsys.readouterr()
    manifest = tmp_path / "m.json"
    manifest.write_text('{"sources": [{"name": "s", "logs": ["x.log"], "rules": true}]}')
    refused = [
        ["logs", "label", str(log), "-o", str(notes)],
        *(["logs", "classify", str(model_file), str(log), option, str(notes)]
          for option in ("-o", "--ban-list", "--ban-json", "--ban-csv")),
        ["logs", "crossval", "--manifest", str(manifest), "--markdown", str(notes)],
        ["predict", str(digits), str(table), "-o", str(notes)],
    ]  # fmt: skip
    for argv in refused:
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert "exists and is not a file this command wrote" in err and "--force" in err, (argv, err)
        assert notes.read_text() == "my notes\n"
    outputs = [tmp_path / name for name in ("labels.tsv", "lines.csv", "bans.txt", "bans.json", "bans.csv")]
    again = [["logs", "label", str(log), "-o", str(outputs[0])],
             ["logs", "classify", str(model_file), str(log), "-o", str(outputs[1]), "--ban-list", str(outputs[2]),
              "--ban-json", str(outputs[3]), "--ban-csv", str(outputs[4])]]  # fmt: skip
    for _ in range(2):  # the second run replaces what the first wrote, without --force
        for argv in again:
            assert main(argv) == 0, argv
    assert outputs[2].read_text().strip()  # the ban list names the scanner
    assert main(["logs", "label", str(log), "-o", str(notes), "--force"]) == 0
    assert notes.read_text().startswith("file\tline\tlabel\t")


def test_a_log_where_almost_nothing_parses_is_not_a_result(model_file, secrepo, tmp_path, capsys):
    """Issue 29, class 7: 2 access-log lines among 200 others were "2 of 202 lines parsed", exit 0;
    now classify, label and train exit non-zero and say what the other lines look like."""
    log = tmp_path / "mostly.log"
    log.write_text("".join(secrepo.read_text().splitlines(keepends=True)[:2]) + "garbage line\n" * 200)
    for argv in (["logs", "classify", str(model_file), str(log), "-o", str(tmp_path / "lines.csv")],
                 ["logs", "label", str(log), "-o", str(tmp_path / "labels.tsv")],
                 ["logs", "train", str(log), "--rules", "-o", str(tmp_path / "m.safetensors")]):  # fmt: skip
        assert main(argv) != 0, argv
        err = capsys.readouterr().err
        assert "only 2 of 202 lines are access-log lines; the rest look like 'garbage line'" in err, (argv, err)
        assert "--format NAME" in err
