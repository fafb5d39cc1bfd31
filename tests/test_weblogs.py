"""Web-log features, labels, training, classification and the command line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from nnscratch.cli import main
from nnscratch.weblogs.classify import ClientTally, classify
from nnscratch.weblogs.data import LabelledLines, split_by_client
from nnscratch.weblogs.features import Behaviour, Featurizer, request_tokens
from nnscratch.weblogs.labels import RuleLabeler, normalise_label, read_label_file
from nnscratch.weblogs.model import WebLogModel
from nnscratch.weblogs.parse import LogRecord, parse_line, parse_stream

LOGS = Path(__file__).resolve().parents[2] / "shared" / "data" / "logs"
needs_logs = pytest.mark.skipif(not LOGS.is_dir(), reason="shared logs not found")
FIREFOX = "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:50.0) Gecko/20100101 Firefox/50.0"


CHROME = "Mozilla/5.0 (X11; Linux x86_64) Chrome/77.0.1"


def record(target="/index.php?id=1&q=x", status=200, agent=CHROME, host="1.2.3.4", t=0, referrer="-",
           method="GET") -> LogRecord:  # fmt: skip
    line = f'{host} - - [01/Jan/2020:00:{t // 60:02d}:{t % 60:02d} +0000] "{method} {target} HTTP/1.1" {status} 10 "{referrer}" "{agent}"'  # noqa: E501
    r = parse_line(line)
    assert isinstance(r, LogRecord), line
    return r


def test_request_tokens():
    tokens = set(request_tokens(record("/a/b/c.php?id=1&Name=2", referrer="https://example.com/x?y")))
    assert {"m:GET", "v:HTTP/1.1", "p:/a/b/c.php", "pp:/a", "pp:/a/b", "ext:php", "q:id", "q:name", "s:200",
            "sc:2xx", "ref:scheme:https", "ref:host:example.com", "ref:path:/x", "uap:Mozilla", "uav:Chrome/77",
            "uao:X11", "uao:Linux x86_64"} <= tokens  # fmt: skip
    attack = set(request_tokens(record("/x.php?id=1%27%20union%20select%20..%2F..%2Fetc%2Fpasswd")))
    assert {"has:quote", "has:dotdot", "has:space"} <= attack
    assert "ua:empty" in request_tokens(record(agent="-")) and "ref:none" in request_tokens(record())
    assert not [t for t in request_tokens(record(), user_agent=False) if t.startswith("ua")]
    assert "uaw:w3af.org" in request_tokens(record(agent="w3af.org"))


def test_vocabulary_hashing_and_cache():
    lines = [record(f"/p{i % 3}") for i in range(30)] + [record("/rare")]
    f = Featurizer(min_count=2)
    tokens = [f.tokens(r) for r in lines]
    f.fit(tokens)
    assert "p:/rare" not in f.vocabulary and "p:/p1" in f.vocabulary
    X = f.transform(tokens)
    assert X.shape == (31, f.n_features) and set(np.unique(X.data)) == {1.0}
    assert f.cache_hit_rate == pytest.approx(27 / 31)
    assert np.array_equal(f.matrix([f.columns(r) for r in lines]).toarray(), X.toarray())
    capped = Featurizer(min_count=1, max_features=5).fit(tokens)
    assert capped.n_features == 5
    h1, h2 = Featurizer(hashing=64), Featurizer(hashing=64)
    assert np.array_equal(h1.transform([h1.tokens(lines[0])]).toarray(), h2.transform([h2.tokens(lines[0])]).toarray())
    again = Featurizer.from_config(f.get_config())
    assert again.vocabulary == f.vocabulary


def test_behaviour_window():
    b = Behaviour(window=60)
    tokens = [b.tokens(record(f"/{i}", status=404, t=i)) for i in range(30)]
    assert {"b:rate:<60", "b:4xx:>=0.9", "b:paths:<100", "b:gap:<2", "b:static:<0.01"} == set(tokens[-1])
    assert "b:rate:<5" in tokens[2]  # 3 requests so far
    later = b.tokens(record("/x", t=30 * 60 + 59))  # the others have left the window
    assert "b:rate:<2" in later and "b:4xx:<0.01" in later
    session = parse_line('- - [01/Jan/2020:00:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" abc "x"')
    assert Behaviour.client_of(session) == "abc" and Behaviour.client_of(record()) == "1.2.3.4"


def test_labels_and_label_files(tmp_path):
    assert [normalise_label(x) for x in ("human", "moderate_bot", "advanced_bot", "gray", "?")] == [
        "good",
        "bad",
        "bad",
        "gray",
        None,
    ]  # noqa: E501
    rules = RuleLabeler()
    assert rules.line_rule(record("/wp-login.php"))[1] == "R1a"
    assert rules.line_rule(record("/a?x=%3Cscript%3E"))[1] == "R1a"
    assert rules.line_rule(record(method="PROPFIND"))[1] == "R1b"
    assert rules.line_rule(record(agent="sqlmap/1.0"))[1] == "R2a"
    assert rules.line_rule(record(agent="Mozilla/5.0 (compatible; AhrefsBot/7.0)"))[1] == "R2b"
    assert rules.line_rule(record(agent="Googlebot/2.1 (+http://www.google.com/bot.html)")) == ("gray", "R3")
    assert rules.line_rule(record(agent="curl/7.68")) == ("gray", "R4s")
    assert rules.line_rule(record()) == ("good", "R0")
    burst = [record(f"/missing{i}", status=404, t=i * 10) for i in range(25)]
    assert {lab for lab, _ in rules.label(burst)} == {"bad"}
    assert {lab for lab, _ in RuleLabeler(gray="bad").label([record(agent="curl/7")])} == {"bad"}
    (tmp_path / "s.tsv").write_text("session_id\tlabel\nabc\thuman\n")
    assert read_label_file(tmp_path / "s.tsv") == ("session", {"abc": "good"})
    (tmp_path / "l.tsv").write_text("file\tline\tlabel\na.log\t3\tbad\n")
    assert read_label_file(tmp_path / "l.tsv") == ("line", {("a.log", 3): "bad"})


@needs_logs
def test_rule_counts_match_the_data_readme():
    expected = {  # bad / gray / good per file, from the shared README's table
        "elastic_apache_2015-05-17_18.log": (32, 1558, 2935),
        "almhuette_2019-10-14_16.log": (2858, 212, 960),
        "secrepo_access_2021-10-22.log": (230, 217, 197),
    }
    for name, (bad, gray, good) in expected.items():
        labels = [lab for lab, _ in RuleLabeler().label(r for _, _, r in parse_stream([LOGS / name]))]
        assert (labels.count("bad"), labels.count("gray"), labels.count("good")) == (bad, gray, good), name
    w3af = [
        lab for lab, _ in RuleLabeler().label(r for _, _, r in parse_stream([LOGS / "scanner_w3af_2016-12-22.log"]))
    ]
    assert w3af.count("bad") == 3927
    humans = RuleLabeler().label(r for _, _, r in parse_stream([LOGS / "webbot_humans_2019-10-28.log"]))
    assert sum(rule == "R6" for _, rule in humans) == 985  # the README's warning about the rate rule


def test_split_by_client_never_shares_a_client():
    rng = np.random.default_rng(0)
    clients = [f"c{rng.integers(0, 40)}" for _ in range(2000)]
    groups = ["a" if int(c[1:]) % 2 else "b" for c in clients]
    parts = split_by_client(clients, groups, (0.6, 0.2, 0.2), seed=1)
    seen = [{clients[i] for i in part} for part in parts]
    assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])
    assert sorted(np.concatenate(parts).tolist()) == list(range(2000))
    assert 0.45 < len(parts[0]) / 2000 < 0.75


def test_client_tally_bans_n_bad_within_x_minutes():
    tally = ClientTally(threshold=5, minutes=1)
    for i in range(5):
        tally.add("slow", i * 30.0, True)  # 5 bad, but never more than 2 within a minute
        tally.add("fast", i * 5.0, True)
        tally.add("good", i * 5.0, False)
    banned = tally.banned()
    assert [b["client"] for b in banned] == ["fast"] and banned[0]["bad_in_window"] == 5
    assert banned[0]["window_start"] == 0.0 and banned[0]["window_end"] == 20.0
    tally.forget_idle(10_000.0)
    assert set(tally.state) == {"fast"}  # banned clients are kept


@pytest.fixture(scope="module")
def webbot_data():
    if not LOGS.is_dir():
        pytest.skip("shared logs not found")
    return LabelledLines.gather(
        bad=[str(LOGS / "scanner_w3af_2016-12-22.log")],
        logs=[str(LOGS / "webbot_humans_2019-10-28.log"), str(LOGS / "webbot_moderate_bots_2019-10-30_part1.log")],
        label_files=[str(LOGS / "webbot_session_labels_dev.tsv")],
    )


def test_train_save_load_and_classify(webbot_data, tmp_path):
    model, report, info = WebLogModel.train(webbot_data, user_agent=False, behaviour=True, restarts=2, epochs=8)
    assert info["lines"]["train"] > info["lines"]["test"] > 0
    assert report.f1("ground truth", "bad") > 0.6  # requests and behaviour only, no user agent
    path = tmp_path / "m.safetensors"
    model.save(path)
    loaded = WebLogModel.load(path)
    assert loaded.classes == model.classes and loaded.featurizer.vocabulary == model.featurizer.vocabulary
    sample = webbot_data.records[:50]
    model.featurizer.reset_behaviour()
    loaded.featurizer.reset_behaviour()
    np.testing.assert_array_equal(model.predict_proba(sample), loaded.predict_proba(sample))


def test_a_disguised_scanner_is_caught_by_what_it_requests(tmp_path):
    """Train with every scanner line's user agent replaced by a browser's, so the
    'w3af.org' token never exists; the later half of the scan (other pages,
    other payloads) still comes out bad, by its paths, parameters and payload
    characters alone."""
    if not LOGS.is_dir():
        pytest.skip("shared logs not found")
    lines = (LOGS / "scanner_w3af_2016-12-22.log").read_text(errors="replace").splitlines()
    rows = sorted((line.replace('"w3af.org"', f'"{FIREFOX}"') for line in lines), key=lambda r: parse_line(r).time)
    half = len(rows) // 2
    train_file, test_file = tmp_path / "train.log", tmp_path / "test.log"
    train_file.write_text("\n".join(rows[:half]) + "\n")
    test_file.write_text("\n".join(rows[half:]) + "\n")
    data = LabelledLines.gather(bad=[str(train_file)], logs=[str(LOGS / "elastic_apache_2015-05-17_18.log")],
                                rules=RuleLabeler(), gray_as="drop")  # fmt: skip
    model, _, _ = WebLogModel.train(data, user_agent=True, restarts=1, epochs=10, fractions=(0.8, 0.1, 0.1))
    assert not [t for t in model.featurizer.vocabulary if "w3af" in t]
    test_records = [r for _, _, r in parse_stream([test_file])]
    predicted = np.array(model.classes)[model.predict_proba(test_records).argmax(axis=1)]
    assert len(test_records) > 1000
    assert np.mean(predicted == "bad") >= 0.8, np.mean(predicted == "bad")


@needs_logs
def test_cli_label_train_classify_evaluate(tmp_path, capsys):
    labels = tmp_path / "labels.tsv"
    assert main(["logs", "label", str(LOGS / "secrepo_access_2021-10-22.log"), "-o", str(labels)]) == 0
    rows = labels.read_text().splitlines()
    assert rows[0] == "file\tline\tlabel\trule" and len(rows) == 645
    model = tmp_path / "m.safetensors"
    argv = ["logs", "train", str(LOGS / "secrepo_access_2021-10-22.log"), str(LOGS / "almhuette_2019-10-14_16.log"),
            "--rules", "--gray-as", "bad", "--restarts", "2", "--epochs", "5", "--quiet", "-o", str(model)]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "rule-labelled:" in out and "Model saved to" in out
    lines_out, ban_list, ban_json = tmp_path / "out.jsonl", tmp_path / "ban.txt", tmp_path / "ban.json"
    assert main(["logs", "classify", str(model), str(LOGS / "almhuette_2019-10-14_16.log"), "-o", str(lines_out),
                 "--format", "jsonl", "--ban-threshold", "20", "--ban-minutes", "10", "--ban-list", str(ban_list),
                 "--ban-json", str(ban_json)]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert re.search(r"4,030 lines in [\d.]+ s", err)
    first = json.loads(lines_out.read_text().splitlines()[0])
    assert set(first) == {"file", "line", "client", "time", "label", "p"} and abs(sum(first["p"].values()) - 1) < 1e-4
    banned = json.loads(ban_json.read_text())
    assert banned and all(b["bad_in_window"] >= 20 for b in banned)
    assert ban_list.read_text().split() == [b["client"] for b in banned]
    assert main(["logs", "evaluate", str(model), str(LOGS / "secrepo_access_2021-10-22.log"), "--rules",
                 "--gray-as", "bad"]) == 0  # fmt: skip
    assert "precision" in capsys.readouterr().out
    assert main(["logs", "train", str(LOGS / "secrepo_access_2021-10-22.log"), "-o", str(model)]) == 2
    assert "LOG files need labels" in capsys.readouterr().err


def test_classify_streams_in_chunks(tmp_path):
    log = tmp_path / "flood.log"
    flood = [f'10.0.0.{i % 3} - - [01/Jan/2020:00:00:{i % 60:02d} +0000] "GET /wp-login.php HTTP/1.1" 404 1 "-" "x"'
             for i in range(500)]  # fmt: skip
    log.write_text("\n".join(flood) + "\n")
    data = LabelledLines.gather(logs=[str(log)], rules=RuleLabeler())
    data.records += [record(f"/page{i}", host=f"9.9.9.{i}") for i in range(60)]
    data.labels += ["good"] * 60
    data.sources += ["truth"] * 60
    data.files += ["good.log"] * 60
    model, _, _ = WebLogModel.train(data, restarts=1, epochs=5, fractions=(0.34, 0.33, 0.33))
    tally = ClientTally(threshold=50, minutes=1)
    n, counts = classify(model, [str(log)], None, tally=tally, chunk=64)
    assert n == 500 and counts["bad"] > 400
    assert {b["client"] for b in tally.banned()} == {"10.0.0.0", "10.0.0.1", "10.0.0.2"}


@needs_logs
def test_parallel_classify_writes_exactly_what_serial_does(tmp_path):
    import io

    data = LabelledLines.gather(logs=[str(LOGS / "secrepo_access_2021-10-22.log")], rules=RuleLabeler(), gray_as="bad")
    model, _, _ = WebLogModel.train(data, restarts=1, epochs=3)
    outputs, tallies = [], []
    for workers in (0, 1):
        out, tally = io.StringIO(), ClientTally(threshold=3, minutes=10)
        n, _ = classify(model, [str(LOGS / "secrepo_access_2021-10-22.log")], out, tally=tally, chunk=100,
                        workers=workers)  # fmt: skip
        outputs.append(out.getvalue())
        tallies.append(tally.banned())
    assert n == 644 and outputs[0] == outputs[1] and tallies[0] == tallies[1]


@needs_logs
def test_truncated_svd_projection_is_saved_and_applied(tmp_path):
    data = LabelledLines.gather(logs=[str(LOGS / "secrepo_access_2021-10-22.log")], rules=RuleLabeler(), gray_as="bad")
    model, report, info = WebLogModel.train(data, svd=16, restarts=1, epochs=5)
    assert info["inputs"] == 16 and model.network.n_inputs == 16 and model.projection.shape == (info["features"], 16)
    path = tmp_path / "svd.safetensors"
    model.save(path)
    loaded = WebLogModel.load(path)
    np.testing.assert_array_equal(loaded.projection, model.projection)
    sample = data.records[:40]
    np.testing.assert_array_equal(loaded.predict_proba(sample), model.predict_proba(sample))
    assert report.f1("rule-labelled", "bad") is not None


@needs_logs
def test_per_line_label_files_round_trip(tmp_path):
    log = str(LOGS / "secrepo_access_2021-10-22.log")
    labels = tmp_path / "labels.tsv"
    assert main(["logs", "label", log, "-o", str(labels)]) == 0
    from_file = LabelledLines.gather(logs=[log], label_files=[str(labels)])
    from_rules = LabelledLines.gather(logs=[log], rules=RuleLabeler())
    assert from_file.labels == from_rules.labels and None not in from_file.labels
    assert from_file.numbers[:3] == [1, 2, 3]
