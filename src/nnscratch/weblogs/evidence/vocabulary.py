"""The words of web-log evidence, in one place: what the rules and the features both read.

The rules (``labels.RuleLabeler``, the data README's R1 to R4) and the request
evidence (``evidence``: payload and probe families, the user agent's class)
speak about the same things: attack targets, attack tools, aggressive
crawlers, declared crawlers, monitors, scripted clients, unusual methods. The
lists live here so that both use the same words, and so do the two small
helpers both need: the target decoded twice, and a value put in a bucket.
Patterns are regular expressions, matched case-insensitively.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import unquote

__all__ = [
    "ATTACK_TARGETS", "ATTACK_AGENTS", "SEO_AGENTS", "CRAWLER_AGENTS", "MONITOR_AGENTS", "SCRIPT_AGENTS",
    "UNUSUAL_METHODS", "decode_twice", "bucket",
]  # fmt: skip

ATTACK_TARGETS = [
    r"wp-login\.php", r"xmlrpc\.php", r"/wp-admin", r"/wp-includes", r"/wp-content/plugins", r"wp-config",
    r"phpmyadmin", r"/pma/", r"/myadmin", r"/mysqladmin", r"setup\.php", r"/administrator/index\.php",
    r"/\.env", r"/\.git/", r"/\.svn", r"/\.htaccess", r"/\.htpasswd", r"/\.ds_store", r"/\.bash_history",
    r"/credentials", r"wallet\.dat",
    r"\.(?:bak|sql|swp|rar|tar|tgz|7z|tar\.gz|sql\.gz|sql\.zip)(?:$|\?)",
    r"/(?:backup|backups|bak|old|back|restore)/[^/?]+\.(?:zip|gz|rar|tar|sql|env|json|txt|js|dat)",
    r"/backup\.(?:zip|gz)",
    r"\.\./", r"\.\.%2f", r"%2e%2e", r"\.\.\\", r"%00", r"/etc/passwd", r"/proc/self", r"win\.ini", r"boot\.ini",
    r"<script", r"%3cscript", r"javascript:", r"onerror=", r"alert\(",
    r"union(?:\s|\+|%20)+(?:all(?:\s|\+|%20)+)?select", r"select.+from", r"sleep\(\d", r"benchmark\(",
    r"waitfor(?:\s|\+|%20)+delay", r"' or '1", r"%27",
    r"base64_decode", r"eval\(", r"system\(", r"passthru", r"shell_exec", r"cmd=", r"exec=", r"/bin/sh",
    r"/bin/bash", r"wget(?:\s|\+|%20)+http", r"curl(?:\s|\+|%20)+http", r"\(\) \{",
    r"shell[^/]*\.(?:php|jpg|asp|aspx|jsp)", r"webshell", r"c99\.php", r"r57\.php",
    r"/cgi-bin/", r"\.cgi(?:$|\?)", r"/hnap1", r"/boaform", r"/gponform", r"/vendor/phpunit", r"eval-stdin",
    r"/solr/", r"/actuator", r"/manager/html", r"/jmx-console", r"/invoker/", r"/console/", r"/owa/",
    r"/autodiscover", r"/ecp/", r"/remote/login", r"/\+cscoe\+", r"/druid/", r"/nacos", r"/struts",
    r"\.action(?:$|\?)", r"/jenkins", r"/telescope", r"/_ignition", r"/debug/default", r"/server-status",
    r"/phpinfo", r"info\.php", r"/config\.php", r"/configuration\.php", r"/admin\.php", r"/adminer", r"/xampp",
    r"/webdav", r"/user/register", r"mstshash",
]  # fmt: skip
ATTACK_AGENTS = [
    "sqlmap", "nikto", "masscan", "zgrab", "nmap", "acunetix", "netsparker", "w3af", "dirbuster", "gobuster",
    r"\bdirb\b", "wpscan", "nuclei", "fuzz faster", "wfuzz", "zmeu", "morfeus", "jorgee", "l9explore", "l9tcpid",
    "expanse", "censys", "shodan", "internetmeasurement", "netcraft", "hello world", "custom-asynchttpclient",
    "mozlila", "moblie", "python-httpx", "scanner", "openvas", "nessus", "qualys", "burp", "havij", "pangolin",
    "hydra", "medusa", "brutus", "whatweb", "owasp", "zap/", "httrack", "grabber",
]  # fmt: skip
SEO_AGENTS = [
    "ahrefsbot", "semrushbot", "mj12bot", "dotbot", "blexbot", "petalbot", "megaindex", "maui?bot", "serpstatbot",
    "dataforseobot", "barkrowler", "bytespider", "gptbot", "claudebot", "ccbot", "amazonbot", "imagesiftbot",
]  # fmt: skip
CRAWLER_AGENTS = [
    "bot", "crawler", "spider", "slurp", "crawl", "facebookexternalhit", "feedfetcher", "feedparser", "feedly",
    "rss", "mediapartners", "adsbot", "bingpreview", "yandex", "baidu", "sogou", "archive\\.org", "ia_archiver",
    r"\+http", "@",
]  # fmt: skip
MONITOR_AGENTS = ["pingdom", "uptimerobot", "statuscake", "site24x7", "newrelic", "check_http", "monitor", "preview"]
SCRIPT_AGENTS = [
    "curl", "wget", "python", "go-http-client", "java", "libwww", "lwp", "okhttp", "apache-httpclient", "node-fetch",
    "axios", "ruby", "perl", "php", "winhttp", "powershell", "dalvik", "aiohttp", "httpclient", "restsharp",
    "postmanruntime", "insomnia", "httpie", "fasthttp", "reqwest", "guzzle", "universalfeedparser", "apt-http/debian",
    "tiny tiny rss", "feed", "http_request",
]  # fmt: skip
UNUSUAL_METHODS = {"CONNECT", "PROPFIND", "TRACE", "TRACK", "DEBUG", "SEARCH", "MKCOL", "PUT", "DELETE"}


def decode_twice(target: str) -> str:
    """The target URL-decoded twice (double encoding hides attacks from one decode).

    >>> decode_twice("/a%252e%252e/b%20c")
    '/a../b c'
    """
    return unquote(unquote(target, errors="replace"), errors="replace")


def bucket(value: float, edges: Sequence[float]) -> str:
    """The bucket of ``value`` among increasing ``edges``, as a short token part.

    >>> bucket(3, (2, 4, 8)), bucket(9, (2, 4, 8))
    ('<4', '>=8')
    """
    for edge in edges:
        if value < edge:
            return f"<{edge:g}"
    return f">={edges[-1]:g}"
