"""Log formats: JSON lines (nginx, Caddy, Traefik) and W3C (IIS) beside the combined family."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nnscratch.cli import main
from nnscratch.weblogs.lines.formats import FORMATS, detect, get_format
from nnscratch.weblogs.lines.formats.combined import parse_line
from nnscratch.weblogs.lines.formats.jsonlines import parse_json_line
from nnscratch.weblogs.lines.formats.w3c import W3CParser
from nnscratch.weblogs.lines.reading import LogPath, ParseStats, parse_stream
from nnscratch.weblogs.lines.record import LogRecord, Malformed

CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
NGINX = json.dumps(
    {
        "time_local": "22/Oct/2021:02:28:51 -0700",
        "remote_addr": "203.0.113.7",
        "remote_user": "",
        "request": "GET /wp-login.php?x=%27 HTTP/1.1",
        "status": "404",
        "body_bytes_sent": "162",
        "request_time": "0.000",
        "http_referrer": "",
        "http_referer": "-",
        "http_user_agent": CHROME,
    }
)
CADDY = json.dumps(
    {
        "level": "info",
        "ts": 1646861401.5241024,
        "logger": "http.log.access.log0",
        "msg": "handled request",
        "request": {
            "remote_ip": "198.51.100.4",
            "remote_port": "41342",
            "client_ip": "198.51.100.4",
            "proto": "HTTP/2.0",
            "method": "POST",
            "host": "example.org",
            "uri": "/api/login?next=/",
            "headers": {"User-Agent": ["curl/8.4.0"], "Referer": ["https://example.org/"], "Accept": ["*/*"]},
        },
        "bytes_read": 31,
        "user_id": "",
        "duration": 0.0009,
        "size": 10900,
        "status": 401,
        "resp_headers": {"Server": ["Caddy"]},
    }
)
TRAEFIK = json.dumps({"ClientAddr": "192.0.2.9:51234", "ClientHost": "192.0.2.9", "ClientPort": "51234",
                      "ClientUsername": "-", "DownstreamContentSize": 19, "DownstreamStatus": 404, "Duration": 154400,
                      "RequestHost": "example.org", "RequestMethod": "GET", "RequestPath": "/.env",
                      "RequestProtocol": "HTTP/1.1", "RouterName": "web@docker", "StartUTC":
                      "2024-03-05T10:11:12.123456789Z", "request_User-Agent": "python-requests/2.31.0",
                      "level": "info", "msg": "", "time": "2024-03-05T10:11:12Z"})  # fmt: skip
IIS = """#Software: Microsoft Internet Information Services 10.0
#Version: 1.0
#Date: 2024-03-05 10:11:00
#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) cs(Referer) sc-status sc-substatus sc-win32-status time-taken
2024-03-05 10:11:12 10.0.0.4 GET /default.aspx id=3 443 - 203.0.113.8 Mozilla/5.0+(Windows+NT+10.0;+Win64;+x64) https://example.org/ 200 0 0 15
2024-03-05 10:11:13 10.0.0.4 GET /admin/config.php - 443 - 203.0.113.9 sqlmap/1.7 - 404 0 2 3
#Fields: date time c-ip cs-method cs-uri-stem cs-uri-query sc-status sc-bytes cs-version cs(User-Agent)
2024-03-05 10:12:00 203.0.113.8 HEAD / - 200 512 HTTP/1.1 Mozilla/5.0+(X11;+Linux)
"""  # noqa: E501


def test_json_lines_of_nginx_caddy_and_traefik():
    nginx, caddy, traefik = (parse_json_line(line) for line in (NGINX, CADDY, TRAEFIK))
    assert (nginx.host, nginx.method, nginx.target, nginx.status, nginx.size, nginx.referrer, nginx.agent) == (
        "203.0.113.7", "GET", "/wp-login.php?x=%27", 404, 162, "-", CHROME)  # fmt: skip
    assert nginx.time == parse_line('1.2.3.4 - - [22/Oct/2021:02:28:51 -0700] "GET / HTTP/1.1" 200 1').time
    assert (caddy.host, caddy.method, caddy.target, caddy.version, caddy.status, caddy.size) == (
        "198.51.100.4", "POST", "/api/login?next=/", "HTTP/2.0", 401, 10900)  # fmt: skip
    assert caddy.agent == "curl/8.4.0" and caddy.referrer == "https://example.org/" and caddy.time == 1646861401.5241024
    assert (traefik.host, traefik.target, traefik.status, traefik.size, traefik.agent) == (
        "192.0.2.9", "/.env", 404, 19, "python-requests/2.31.0")  # fmt: skip
    assert traefik.time == pytest.approx(1709633472.123456) and traefik.referrer == "-" and traefik.session == "-"
    flat = json.loads(NGINX)
    del flat["request"]
    flat.update(request_method="GET", request_uri="/a?b=1", server_protocol="HTTP/1.0", time_local=None,
                time_iso8601="2021-10-22T02:28:51-07:00")  # fmt: skip
    split = parse_json_line(json.dumps(flat))
    assert (split.request, split.time) == ("GET /a?b=1 HTTP/1.0", nginx.time)


@pytest.mark.parametrize(
    ("line", "reason"),
    [("not json", "not a JSON object"), ("[1, 2]", "not a JSON object"), ('{"status": 200', "not a JSON object"),
     ('{"remote_addr": "1.2.3.4", "request": "GET / HTTP/1.1"}', "without a readable time"),
     ('{"ts": "yesterday", "request": {"uri": "/"}}', "without a readable time"),
     ('{"msec": "1700000000.5", "status": 200}', "without a request"), ("", "empty line")],
)  # fmt: skip
def test_bad_json_lines_are_counted_with_their_reason(line, reason):
    item = parse_json_line(line)
    assert isinstance(item, Malformed) and reason in item.reason


def test_w3c_follows_its_fields_directive():
    parser = W3CParser()
    items = [parser(line) for line in IIS.splitlines()]
    records = [r for r in items if isinstance(r, LogRecord)]
    assert sum(isinstance(r, Malformed) and r.reason.startswith("W3C directive") for r in items) == 5
    first, probe, head = records
    assert (first.host, first.target, first.status, first.referrer) == (
        "203.0.113.8", "/default.aspx?id=3", 200, "https://example.org/")  # fmt: skip
    assert first.agent == "Mozilla/5.0 (Windows NT 10.0; Win64; x64)" and first.time == 1709633472.0
    assert (probe.agent, probe.status, probe.referrer) == ("sqlmap/1.7", 404, "-")
    assert (head.method, head.version, head.size, head.agent) == ("HEAD", "HTTP/1.1", 512, "Mozilla/5.0 (X11; Linux)")
    cut = parser("2024-03-05 10:12:01 203.0.113.8 GET")
    assert isinstance(cut, Malformed) and "fields where #Fields: names 10" in cut.reason
    assert "time stamp" in parser("2024-13-45 10:12:01 a GET / - 200 1 HTTP/1.1 x").reason
    before = W3CParser()("2024-03-05 10:11:13 10.0.0.4 GET /x - 443 - 203.0.113.9 curl/8 - 404 0 2 3")
    assert before.host == "203.0.113.9" and before.agent == "curl/8"  # IIS's default columns before any #Fields:


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_no_line_makes_a_parser_raise(text):
    for fmt in FORMATS.values():
        assert isinstance(fmt.parser()(text), (LogRecord, Malformed))
    assert isinstance(parse_json_line("{" + text), Malformed) or text.startswith("}")


def test_detection_picks_each_format_and_names_them_when_none_fits(logs, tmp_path):
    combined = (logs / "secrepo_access_2021-10-22.log").read_text().splitlines()[:30]
    assert detect(combined).name == "combined" and detect([NGINX, CADDY, TRAEFIK]).name == "json"
    assert detect(IIS.splitlines()).name == "w3c" and detect([]).name == "combined"
    with pytest.raises(ValueError, match=r"fit none of the log formats .*combined .*json .*w3c .*--format NAME"):
        detect(["hello world", "\x16\x03\x01 junk"], "junk.log")
    with pytest.raises(ValueError, match="unknown log format 'nginx'; the formats are: combined"):
        get_format("nginx")
    with pytest.raises(ValueError, match="unknown log format"):
        LogPath("a.log", "apache")
    mixed = tmp_path / "mixed.log"  # a combined log with a few junk lines is still a combined log
    mixed.write_text("\n".join(["junk"] * 3 + combined) + "\n")
    stats = ParseStats()
    assert len(list(parse_stream([mixed], stats))) == 30 and stats.skipped == {"not an access-log line": 3}


def _as_nginx_json(line: str) -> str:
    r = parse_line(line)
    stamp = line[line.index("[") + 1 : line.index("]")]
    return json.dumps(
        {
            "remote_addr": r.host,
            "time_local": stamp,
            "request": r.request,
            "status": str(r.status),
            "body_bytes_sent": str(r.size),
            "http_referer": r.referrer,
            "http_user_agent": r.agent,
        }
    )


def _as_w3c(lines: list[str]) -> str:
    out = ["#Software: test", "#Fields: date time c-ip cs-method cs-uri-stem cs-uri-query sc-status sc-bytes "
           "cs-version cs(User-Agent) cs(Referer)"]  # fmt: skip
    import time

    for line in lines:
        r = parse_line(line)
        if not r.request_ok or " " in r.target:
            continue
        stem, _, query = r.target.partition("?")
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r.time))
        out.append(" ".join([when, r.host, r.method, stem, query or "-", str(r.status), str(r.size),
                             r.version or "-", r.agent.replace(" ", "+") or "-",
                             r.referrer.replace(" ", "+") or "-"]))  # fmt: skip
    return "\n".join(out) + "\n"


def test_the_same_log_in_json_or_w3c_is_read_as_the_same_requests(watch_model, logs, tmp_path, capsys):
    """The shared secrepo log rewritten as nginx JSON and as W3C: every request read back the
    same; classify on the JSON copy (detected, and with --format json) writes the same labels
    and bans as on the original."""
    original = logs / "secrepo_access_2021-10-22.log"
    rows = original.read_text().splitlines()
    as_json, as_w3c = tmp_path / "access.json", tmp_path / "u_ex211022.log"
    as_json.write_text("".join(_as_nginx_json(r) + "\n" for r in rows))
    as_w3c.write_text(_as_w3c(rows))
    fields = lambda r: (r.host, r.time, r.request, r.status, r.size, r.referrer, r.agent)  # noqa: E731
    expected = [fields(r) for _, _, r in parse_stream([original])]
    assert [fields(r) for _, _, r in parse_stream([as_json])] == expected
    # W3C writes spaces in the agent and the referrer as "+", so one that had a "+" of its own ("+http://...")
    # comes back with a space there; every other field of every request comes back as it was.
    w3c = [fields(r) for _, _, r in parse_stream([as_w3c])]
    kept = [fields(r) for _, _, r in parse_stream([original]) if r.request_ok and " " not in r.target]
    assert len(w3c) == len(kept) > 600
    assert [f[:5] for f in w3c] == [f[:5] for f in kept]
    for got, was in zip(w3c, kept, strict=True):
        assert all(a == b or (a == b.replace("+", " ")) for a, b in zip(got[5:], was[5:], strict=True)), was
    model = watch_model
    outputs = {}
    runs = (("combined", original, []), ("json", as_json, []), ("named", as_json, ["--format", "json"]))
    for name, path, extra in runs:
        out, bans = tmp_path / f"{name}.csv", tmp_path / f"{name}.bans.json"
        assert main(["logs", "classify", str(model), str(path), "-o", str(out), "--ban-json", str(bans), *extra]) == 0
        outputs[name] = ([line.split(",", 2)[2] for line in out.read_text().splitlines()[1:]],
                         [(b["client"], b["ban_request"]) for b in json.loads(bans.read_text())])  # fmt: skip
    assert outputs["combined"] == outputs["json"] == outputs["named"] and outputs["combined"][1]
    capsys.readouterr()
    # The wrong format named: refused with the one the lines show, nothing written as if the file were empty.
    assert main(["logs", "classify", str(model), str(as_json), "--format", "w3c", "-o", str(tmp_path / "x.csv")]) == 2
    err = capsys.readouterr().err
    assert "none of its first lines is a w3c line" in err and "they look like json: use --format json" in err
    assert not (tmp_path / "x.csv").exists() or (tmp_path / "x.csv").read_text().count("\n") <= 1
    junk = tmp_path / "junk.log"
    junk.write_bytes(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n" * 5)
    assert main(["logs", "classify", str(model), str(junk)]) == 2
    err = capsys.readouterr().err
    assert "fit none of the log formats" in err and "--format NAME" in err and "Traceback" not in err


def test_the_watcher_follows_a_json_log(watch_model, logs, tmp_path):
    from tests.test_watch import append, make_watcher
    from tests.watch_helpers import SCANNER, scanner_lines

    log = tmp_path / "access.json"
    log.write_text("")
    watcher = make_watcher(watch_model, log, tmp_path / "state.sqlite", tmp_path)
    watcher.step()
    append(log, [_as_nginx_json(line) for line in scanner_lines(logs, 60)])
    assert watcher.step() == 60
    assert watcher.parsers and (tmp_path / "ban.txt").read_text() == SCANNER + "\n"
    junk = tmp_path / "junk.log"
    junk.write_text("")
    reports: list[str] = []
    stuck = make_watcher(watch_model, junk, tmp_path / "other.sqlite", tmp_path)
    stuck.report = reports.append
    stuck.step()
    append(junk, ["hello world"] * 3)
    stuck.step()
    append(junk, ["hello again"])
    stuck.step()
    assert len(reports) == 1 and "fit none of the log formats" in reports[0] and not stuck.bans


def test_every_command_that_reads_logs_takes_format(capsys):
    for command in ("label", "train", "classify", "evaluate", "watch", "crossval"):
        with pytest.raises(SystemExit):
            main(["logs", command, "--help"])
        assert "--format NAME" in capsys.readouterr().out, command


def test_a_manifest_source_names_its_format(logs, tmp_path):
    from nnscratch.weblogs.model.crossval import load_sources, read_manifest

    rows = (logs / "secrepo_access_2021-10-22.log").read_text().splitlines()
    (tmp_path / "a.json").write_text("".join(_as_nginx_json(r) + "\n" for r in rows))
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps({"sources": [{"name": "a", "logs": ["a.json"], "rules": True, "format": "json"}]}))
    data, _ = load_sources(read_manifest(manifest, tmp_path)[0])
    assert len(data.records) == len(rows)
    manifest.write_text(json.dumps({"sources": [{"name": "a", "logs": ["a.json"], "format": "yaml"}]}))
    with pytest.raises(ValueError, match="source 'a': unknown log format 'yaml'"):
        read_manifest(manifest, tmp_path)
