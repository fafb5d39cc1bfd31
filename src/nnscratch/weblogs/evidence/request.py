"""What a request looks like, in words that carry from one site to another.

A model that learns the exact paths, hosts and browser versions of its
training logs recognises those logs, not attacks. So each part of a line is
described by its *shape* and by *evidence* that means the same on every site:

* ``path_shape``: depth, the class of each segment (word, number, hex, uuid,
  random-looking, encoded, very long, dot-file), the extension's class
  (script, static asset, page, archive/backup, config/secret, data, none).
* ``query_shape``: how many keys, what their values look like.
* ``payload_evidence``: the grammar of SQL injection, XSS, traversal and file
  inclusion, command injection, null bytes, double encoding, shell
  metacharacters, in the target decoded twice; character-class ratios and
  entropy. Probes for software a site may not run (CMS logins, secrets,
  backups, exploit endpoints) are evidence too: every site on the internet is
  asked for them, and the site-relative features tell whether this site answers.
* ``referrer_class``: none, same-site, external, odd, or carrying a payload.
* ``agent_class``: browser, declared crawler, monitor, scripted client, attack
  tool, empty, or malformed/inconsistent; never the product and version.

Every function takes strings and returns short strings; nothing here depends
on the training data.
"""

from __future__ import annotations

import functools
import math
import re
from collections import Counter

from .vocabulary import ATTACK_AGENTS, CRAWLER_AGENTS, MONITOR_AGENTS, SCRIPT_AGENTS, SEO_AGENTS, bucket, decode_twice

__all__ = [
    "decode", "path_shape", "query_shape", "payload_evidence", "referrer_class", "referrer_parts",
    "agent_class", "extension_class", "is_static", "entropy",
]  # fmt: skip

EXTENSIONS = {
    "script": "php php3 php4 php5 phtml asp aspx jsp jspx cgi pl py rb sh cfm do action exe dll",
    "static": "css js mjs png jpg jpeg gif ico svg woff woff2 ttf eot otf map webp bmp avif mp4 webm mp3 ogg",
    "page": "html htm xhtml shtml",
    "archive": "zip gz tgz tar rar 7z bz2 xz bak old orig backup swp sql dump save tmp",
    "config": "env ini conf cfg config yml yaml toml properties htaccess htpasswd key pem crt git svn ds_store log",
    "data": "json xml txt csv rss atom pdf doc docx xls xlsx",
}
_EXTENSION_CLASS = {ext: kind for kind, names in EXTENSIONS.items() for ext in names.split()}
STATIC_EXTENSIONS = frozenset(EXTENSIONS["static"].split())

_HEX = re.compile(r"[0-9a-f]{8,}")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_NUMBER = re.compile(r"\d+")
_WORD = re.compile(r"[a-z][a-z_-]*")
_WORDISH = re.compile(r"[a-z0-9][a-z0-9_.,+~-]*")

# The grammar of attacks, on the lower-cased target decoded twice. Each pattern
# names a family; a family is evidence whatever the site.
PAYLOADS = {
    "sqli": r"union\W+(?:all\W+)?select|select\W.{0,80}\Wfrom\W|\binsert\W+into\W|\bdrop\W+table|"
    r"\bor\W+['\"]?\w+['\"]?\s*=\s*['\"]?\w+|['\"]\s*(?:or|and)\s|sleep\s*\(\s*\d|benchmark\s*\(|"
    r"waitfor\W+delay|information_schema|@@version|\bconcat\s*\(|char\s*\(\s*\d|--\s*$|/\*.*\*/|"
    r"'\s*;|;\s*--",
    "xss": r"<\s*/?\s*(?:script|svg|img|iframe|body|object|embed)\b|javascript\s*:|\bon[a-z]{3,15}\s*=|"
    r"alert\s*\(|document\.(?:cookie|location)|<[a-z]+[^>]*>",
    "traversal": r"\.\./|\.\.\\|/etc/(?:passwd|shadow|hosts)|/proc/self|win\.ini|boot\.ini|c:\\|"
    r"(?:file|php|data|expect|zip)://",
    "command": r"[;|`]\s*(?:ls|id|cat|uname|whoami|wget|curl|nc|bash|sh|ping|echo|sleep)\b|\$\([^)]*\)|"
    r"/bin/(?:ba)?sh|cmd\.exe|powershell|base64_decode|\beval\s*\(|\bsystem\s*\(|passthru|"
    r"shell_exec|\(\)\s*\{",
    "include": r"=\s*(?:https?|ftp)://|\?\w+=\S*\.(?:txt|php)\?",
    "template": r"\{\{.*\}\}|\$\{.*\}|<%.*%>",
}
_PAYLOADS = {name: re.compile(pattern, re.DOTALL) for name, pattern in PAYLOADS.items()}

# Paths asked for by probes on every site: software the site may not run,
# secrets, backups and exploit endpoints (the families of the data README's R1a).
PROBES = {
    "cms": r"wp-login\.php|xmlrpc\.php|/wp-admin|/wp-includes|/wp-content/plugins|wp-config|/administrator/|"
    r"/user/register|/admin\.php|/adminer|/phpmyadmin|/pma/|/myadmin|/mysqladmin|setup\.php",
    "secret": r"/\.(?:env|git|svn|hg|htaccess|htpasswd|ds_store|bash_history|aws|ssh|docker)|/credentials|"
    r"wallet\.dat|id_rsa|/config\.php|/configuration\.php|web\.config",
    "backup": r"/(?:backup|backups|bak|old|back|restore|dump|db)/|/(?:backup|dump|db|database|site|www)\.",
    "exploit": r"/cgi-bin/|/hnap1|/boaform|/gponform|/vendor/phpunit|eval-stdin|/solr/|/actuator|/manager/html|"
    r"/jmx-console|/invoker/|/console/|/owa/|/autodiscover|/ecp/|/remote/login|/\+cscoe\+|/druid/|"
    r"/nacos|/struts|/jenkins|/telescope|/_ignition|/debug/|/server-status|/phpinfo|info\.php|"
    r"/xampp|/webdav|/shell|webshell|c99\.php|r57\.php|mstshash",
}
_PROBES = {name: re.compile(pattern) for name, pattern in PROBES.items()}

# Requests that are an attack on any site, whoever sends them: secrets and key files no
# page links to, and endpoints of known exploits and webshells. Narrower than the probes
# above (a blog's "/tags/shell" page or a Joomla "/administrator/" is not in here): one such
# request is evidence enough to judge a client (``features.summary.EXPLOIT_WEIGHT``).
EXPLOITS = {
    "secret": r"/\.env(?:$|[.?/~])|/\.git/(?:config|head|index|logs)|/\.(?:aws|ssh|docker)/|id_[rd]sa\b|"
    r"/\.htpasswd|/\.bash_history|wp-config\.php|/etc/(?:passwd|shadow)|/proc/self/|win\.ini|boot\.ini",
    "endpoint": r"eval-stdin\.php|/vendor/phpunit/|/hnap1|/boaform|/gponform|/_ignition/execute-solution|"
    r"(?:^|/)(?:c99|r57|wso|b374k|alfa)[^/]*\.php|/shell[^/]*\.(?:php|asp|aspx|jsp)\b|webshell|"
    r"/cgi-bin/.*(?:;|\|)|/actuator/(?:env|heapdump|gateway)|/jmx-console|/invoker/|/manager/html|"
    r"think\\app/invokefunction|/setup\.cgi|/apply\.cgi",
}
_EXPLOITS = {name: re.compile(pattern) for name, pattern in EXPLOITS.items()}

_ATTACK_AGENT = re.compile("|".join(ATTACK_AGENTS), re.IGNORECASE)
_CRAWLER_AGENT = re.compile("|".join(SEO_AGENTS + CRAWLER_AGENTS), re.IGNORECASE)
_MONITOR_AGENT = re.compile("|".join(MONITOR_AGENTS), re.IGNORECASE)
_SCRIPT_AGENT = re.compile("^(?:" + "|".join(SCRIPT_AGENTS) + ")", re.IGNORECASE)
_BROWSER = re.compile(r"^Mozilla/5\.0 \((?:Windows|Macintosh|X11|Linux|iPhone|iPad|Android)[^)]*\) .*"
                      r"(?:Gecko|AppleWebKit|Trident)", re.IGNORECASE)  # fmt: skip


def decode(target: str) -> str:
    """The target URL-decoded twice and lower-cased (what attack patterns are matched on)."""
    return decode_twice(target).lower()


def entropy(text: str) -> float:
    """Shannon entropy of the characters of ``text``, in bits per character."""
    if not text:
        return 0.0
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in Counter(text).values())


def extension_class(path: str) -> str:
    """``script``, ``static``, ``page``, ``archive``, ``config``, ``data``, ``other`` or ``none``."""
    last = path.rsplit("/", 1)[-1]
    if "." not in last.strip("."):
        return "config" if last.startswith(".") and len(last) > 1 else "none"
    return _EXTENSION_CLASS.get(last.rsplit(".", 1)[1].lower(), "other")


def is_static(path: str) -> bool:
    """Whether a path names a static asset (stylesheet, script, image, font, media)."""
    last = path.rsplit("/", 1)[-1]
    return "." in last and last.rsplit(".", 1)[1].lower() in STATIC_EXTENSIONS


def _segment_class(segment: str) -> str:
    if "%" in segment:
        return "encoded"
    if len(segment) > 40:
        return "long"
    low = segment.lower()
    if segment.startswith("."):
        return "dotfile"
    stem = low.rsplit(".", 1)[0] if "." in low else low
    if _NUMBER.fullmatch(stem):
        return "number"
    if _UUID.fullmatch(stem):
        return "uuid"
    if _HEX.fullmatch(stem) and any(c.isdigit() for c in stem):
        return "hex"
    if _WORD.fullmatch(stem):
        return "word"
    core = segment.rsplit(".", 1)[0]
    # Random-looking names (scanners' existence checks, e.g. "9dWDimSt"): letters
    # and digits whose case or kind changes at almost every other character.
    if len(core) >= 6 and core.isalnum():
        kinds = ["d" if c.isdigit() else "u" if c.isupper() else "l" for c in core]
        changes = sum(a != b for a, b in zip(kinds, kinds[1:], strict=False))
        if changes >= 3 and changes / len(core) >= 0.3:
            return "random"
    if _WORDISH.fullmatch(low):
        return "mixed"
    return "odd"


def path_shape(path: str) -> list[str]:
    """Shape tokens of a URL path (no query): depth, segment classes, extension class."""
    parts = [p for p in path.split("/") if p]
    tokens = [f"depth:{min(len(parts), 6)}", f"ext:{extension_class(path)}"]
    classes = [_segment_class(p) for p in parts]
    tokens += [f"seg:{c}" for c in set(classes)]
    if classes:
        tokens.append(f"last:{classes[-1]}")
    if "//" in path:
        tokens.append("path:double-slash")
    if path.endswith("/"):
        tokens.append("path:dir")
    tokens.append("plen:" + bucket(len(path), (8, 24, 64, 160)))
    return tokens


def query_shape(query: str) -> list[str]:
    """Shape tokens of a query string: number of keys, value classes, length."""
    if not query:
        return ["q:none"]
    pairs = [pair.partition("=") for pair in query.split("&") if pair]
    tokens = ["qkeys:" + bucket(len(pairs), (2, 4, 8)), "qlen:" + bucket(len(query), (32, 128, 512))]
    for _, has_value, value in pairs:
        if not has_value or not value:
            tokens.append("qv:empty")
        elif _NUMBER.fullmatch(value):
            tokens.append("qv:number")
        elif "%" in value:
            tokens.append("qv:encoded")
        elif _WORDISH.fullmatch(value.lower()):
            tokens.append("qv:word")
        else:
            tokens.append("qv:odd")
    return sorted(set(tokens))


def payload_evidence(target: str) -> list[str]:
    """Evidence tokens from the raw and decoded target: attack grammar and character statistics."""
    decoded = decode(target)
    tokens = [f"pay:{name}" for name, pattern in _PAYLOADS.items() if pattern.search(decoded)]
    tokens += [f"probe:{name}" for name, pattern in _PROBES.items() if pattern.search(decoded)]
    tokens += [f"exploit:{name}" for name, pattern in _EXPLOITS.items() if pattern.search(decoded)]
    low = target.lower()
    if "%25" in low:
        tokens.append("enc:double")
    if "%00" in low or "\x00" in decoded:
        tokens.append("enc:null")
    if re.search(r"%[89a-f][0-9a-f]", low) and not re.search(r"%(?:c[2-9a-f]|d[0-9a-f]|e[0-9a-f])%[89ab]", low):
        tokens.append("enc:raw-high-byte")  # percent-encoded bytes that are not UTF-8
    if "\\x" in target:
        tokens.append("enc:byte-escape")
    special = sum(not (c.isalnum() or c in "/._-?=&") for c in decoded)
    tokens.append("special:" + bucket(special / max(len(decoded), 1), (0.02, 0.08, 0.2)))
    if len(decoded) >= 16:
        tokens.append("entropy:" + bucket(entropy(decoded), (3.5, 4.5, 5.2)))
    for name, chars in (("quote", "'\""), ("angle", "<>"), ("semicolon", ";"), ("paren", "()"),
                        ("pipe", "|`"), ("dollar", "$"), ("brace", "{}"), ("space", " ")):  # fmt: skip
        if any(c in decoded for c in chars):
            tokens.append(f"has:{name}")
    return tokens


def referrer_class(referrer: str, site_hosts: frozenset[str] | set[str] = frozenset()) -> str:
    """``none``, ``same-site`` (a host in ``site_hosts``), ``external``, ``odd`` or ``payload``."""
    kind, host, _ = referrer_parts(referrer)
    return "same-site" if kind == "external" and host in site_hosts else kind


@functools.lru_cache(maxsize=65_536)
def referrer_parts(referrer: str) -> tuple[str, str, str]:
    """``(kind, host, path)`` of a referrer, ``kind`` as ``referrer_class`` gives it before
    anything is known of the site (``none``, ``external``, ``odd`` or ``payload``). Cached."""
    if referrer in ("", "-"):
        return "none", "", ""
    scheme, sep, rest = referrer.partition("://")
    if not sep or scheme.lower() not in ("http", "https"):
        return ("payload" if _payload_in(referrer) else "odd"), "", ""
    if _payload_in(referrer):
        return "payload", "", ""
    host, _, path = rest.partition("/")
    return "external", host.split("@")[-1].lower(), "/" + path.split("?", 1)[0]


def _payload_in(text: str) -> bool:
    decoded = decode(text)
    return any(_PAYLOADS[name].search(decoded) for name in ("sqli", "xss", "traversal", "command"))


@functools.lru_cache(maxsize=65_536)
def agent_class(agent: str) -> str:
    """``attack-tool``, ``crawler``, ``monitor``, ``script``, ``browser``, ``empty`` or ``malformed``.

    >>> agent_class("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/77.0 Safari/537.36")
    'browser'
    >>> agent_class("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)"), agent_class("-")
    ('crawler', 'empty')
    >>> agent_class("sqlmap/1.4"), agent_class("python-requests/2.31"), agent_class("Mozilla/4.0")
    ('attack-tool', 'script', 'malformed')

    Cached (a log has few distinct user agents): the same string always gets the same class.
    """
    agent = agent.strip()
    if agent in ("", "-"):
        return "empty"
    if _ATTACK_AGENT.search(agent):
        return "attack-tool"
    if _MONITOR_AGENT.search(agent):
        return "monitor"
    if _CRAWLER_AGENT.search(agent):
        return "crawler"
    if _SCRIPT_AGENT.search(agent):
        return "script"
    if _BROWSER.search(agent):
        return "browser"
    return "malformed"
