"""JSON access logs, one object a line: nginx ``escape=json``, Caddy and Traefik.

Three shapes are recognised by their keys:

* **Caddy** (its default access log): ``ts`` (seconds since the epoch, or an
  ISO 8601 time), ``status``, ``size``, and a ``request`` object with
  ``client_ip`` (or ``remote_ip``, or ``remote_addr`` as ``ip:port``),
  ``method``, ``uri``, ``proto`` and ``headers`` (``User-Agent``, ``Referer``:
  lists of values).
* **Traefik** (``accessLog.format: json``): ``StartUTC`` (ISO 8601),
  ``ClientHost`` (or ``ClientAddr``), ``RequestMethod``, ``RequestPath``,
  ``RequestProtocol``, ``DownstreamStatus``, ``DownstreamContentSize``, and
  ``request_User-Agent`` / ``request_Referer`` when headers are kept
  (``accessLog.fields.headers.defaultMode: keep``; without them the agent is ``-``).
* **nginx** ``log_format NAME escape=json '{...}'``, or any flat object, with
  the variables' names as keys: the address in ``remote_addr`` (or
  ``client_ip``, ``ip``); the time in ``time_iso8601``, ``time_local``
  (``17/May/2015:10:05:03 +0000``), ``@timestamp``, ``timestamp``, ``time``
  or ``msec``; the request in ``request`` (``GET /a HTTP/1.1``) or in
  ``request_method`` with ``request_uri`` (or ``uri`` and ``args``) and
  ``server_protocol``; ``status``; the size in ``body_bytes_sent`` (or
  ``bytes_sent``, ``size``, ``bytes``); ``http_referer`` (or ``referer``,
  ``referrer``) and ``http_user_agent`` (or ``user_agent``, ``agent``).

Times without a zone are taken as UTC. A line that is not a JSON object, or
lacks a time or a request, is a ``Malformed`` with the reason.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any

from ..record import LogRecord, Malformed, request_record
from .base import LogFormat
from .combined import parse_clf_time

__all__ = ["parse_json_line", "FORMAT"]

_FRACTION = re.compile(r"(\.\d{6})\d+")  # nanoseconds (Traefik) to microseconds
_ADDRESS_KEYS = ("remote_addr", "client_ip", "remote_ip", "ip", "client")
_TIME_KEYS = ("time_iso8601", "time_local", "@timestamp", "timestamp", "time", "msec", "ts")
_SIZE_KEYS = ("body_bytes_sent", "bytes_sent", "size", "bytes")
_REFERRER_KEYS = ("http_referer", "referer", "referrer")
_AGENT_KEYS = ("http_user_agent", "user_agent", "agent")


def _first(obj: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        value = obj.get(key)
        if value not in (None, ""):
            return value
    return None


def _time(value: Any) -> float | None:
    """Seconds since the epoch from a number, an ISO 8601 time or a CLF time."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if not isinstance(value, str):
        return None
    text = value.strip()
    try:
        return float(text)  # nginx $msec
    except ValueError:
        pass
    if "/" in text:
        return parse_clf_time(text)
    text = _FRACTION.sub(r"\1", text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()


def _without_port(address: str) -> str:
    if address.startswith("["):  # [::1]:443
        return address[1 : address.index("]")] if "]" in address else address
    host, sep, port = address.rpartition(":")
    return host if sep and port.isdigit() and host.count(":") == 0 else address


def _header(headers: Any, name: str) -> str:
    value = headers.get(name) if isinstance(headers, dict) else None
    if isinstance(value, list):
        value = value[0] if value else None
    return str(value) if value not in (None, "") else "-"


def _fields(obj: dict[str, Any]) -> tuple[Any, Any, str, Any, Any, str, str]:
    """(address, time, request line, status, size, referrer, agent) of any of the three shapes."""
    request = obj.get("request")
    if isinstance(request, dict):  # Caddy
        address = request.get("client_ip") or request.get("remote_ip")
        address = address or _without_port(str(request.get("remote_addr", "-")))
        line = f"{request.get('method', '')} {request.get('uri', '')} {request.get('proto', '')}".strip()
        headers = request.get("headers")
        return (address, obj.get("ts"), line, obj.get("status"), obj.get("size"), _header(headers, "Referer"),
                _header(headers, "User-Agent"))  # fmt: skip
    if "RequestPath" in obj or "DownstreamStatus" in obj:  # Traefik
        address = obj.get("ClientHost") or _without_port(str(obj.get("ClientAddr", "-")))
        line = f"{obj.get('RequestMethod', '')} {obj.get('RequestPath', '')} {obj.get('RequestProtocol', '')}".strip()
        return (address, obj.get("StartUTC") or obj.get("time"), line, obj.get("DownstreamStatus"),
                obj.get("DownstreamContentSize"), str(obj.get("request_Referer") or "-"),
                str(obj.get("request_User-Agent") or "-"))  # fmt: skip
    line = request if isinstance(request, str) else ""
    if not line and obj.get("request_method"):
        uri = obj.get("request_uri") or obj.get("uri") or ""
        if not obj.get("request_uri") and obj.get("args"):
            uri += "?" + str(obj["args"])
        line = f"{obj['request_method']} {uri} {obj.get('server_protocol', '')}".strip()
    return (_first(obj, _ADDRESS_KEYS) or "-", _first(obj, _TIME_KEYS), line, obj.get("status"),
            _first(obj, _SIZE_KEYS), str(_first(obj, _REFERRER_KEYS) or "-"),
            str(_first(obj, _AGENT_KEYS) or "-"))  # fmt: skip


def _number(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def parse_json_line(line: str | bytes) -> LogRecord | Malformed:
    """Parse one JSON access-log line; never raises.

    >>> r = parse_json_line('{"remote_addr":"1.2.3.4","time_iso8601":"2015-05-17T10:05:03+00:00",'
    ...                     '"request":"GET /a?x=1 HTTP/1.1","status":"200","body_bytes_sent":"512",'
    ...                     '"http_referer":"","http_user_agent":"curl/7.1"}')
    >>> r.host, r.method, r.target, r.status, r.size, r.referrer, r.agent, r.time
    ('1.2.3.4', 'GET', '/a?x=1', 200, 512, '-', 'curl/7.1', 1431857103.0)
    >>> parse_json_line("not json").reason
    'not a JSON object'
    """
    try:
        text = (line.decode("utf-8", errors="replace") if isinstance(line, bytes) else line).strip()
        if not text:
            return Malformed("empty line", text)
        try:
            obj = json.loads(text)
        except ValueError:
            return Malformed("not a JSON object", text[:300])
        if not isinstance(obj, dict):
            return Malformed("not a JSON object", text[:300])
        address, when, request, status, size, referrer, agent = _fields(obj)
        seconds = _time(when)
        if seconds is None:
            return Malformed("JSON access-log line without a readable time", text[:300])
        if not request:
            return Malformed("JSON access-log line without a request", text[:300])
        return request_record(str(address), seconds, request, _number(status), _number(size), referrer, "-", agent)
    except Exception as err:  # noqa: BLE001 - the contract is "never raises"; report instead
        return Malformed(f"internal parser error: {type(err).__name__}", str(line)[:300])


def _sniff(line: str) -> bool:
    return line.startswith("{") and isinstance(parse_json_line(line), LogRecord)


FORMAT = LogFormat(
    "json",
    "JSON lines: nginx log_format escape=json, Caddy's and Traefik's JSON access logs",
    lambda: parse_json_line,
    _sniff,
)
