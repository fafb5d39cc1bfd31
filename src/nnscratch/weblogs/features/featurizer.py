"""From parsed log lines to sparse 0/1 feature vectors that carry to other sites.

The classic design: turn each line into tokens, build a dictionary of the
tokens seen in training, and give every line a 0/1 vector with a one for each
of its known tokens. What matters is *which* tokens: a model that sees exact
paths, referrer hosts and browser versions learns the training site and its
visitors' software, and fails on the next site. So by default the tokens
describe shape and evidence (see ``evidence``):

* **request** (``request_tokens``, cached per distinct request): method and
  version, status and status class, the path's shape (depth, segment classes,
  extension class), the query's shape, payload and probe evidence from the
  twice-decoded target, character statistics, and the user agent's *class*.
  Options: ``agent="tokens"`` adds product/version/OS tokens (off by default:
  they learn the sample's browsers), ``paths=True`` adds the exact path and its
  prefixes (off by default: they learn the site).
* **context** (``Context``, off by default, in time order): the client's behaviour
  over a sliding window (rate, inter-arrival regularity and bursts, 4xx/5xx
  shares, distinct paths, static assets, POST/HEAD shares, payload share,
  missing referrers, how long the window's requests span), and site-relative
  evidence computed from the log itself without labels: how many clients ask
  for this path and how often it fails, and whether the referrer is this site.

``Featurizer`` maps tokens to columns with a fitted ``vocabulary`` (minimum
count, maximum size, unknown tokens ignored) or by feature hashing (crc32,
stable across processes), caches the columns of identical requests (floods
repeat themselves; ``cache_hit_rate`` says how much), and returns scipy CSR.
"""

from __future__ import annotations

import bisect
import re
import zlib
from collections import Counter, OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import unquote

import numpy as np

from ...extras import require
from ..evidence.request import agent_class, is_static, path_shape, payload_evidence, query_shape, referrer_parts
from ..lines.record import LogRecord
from .counts import IDLE, ClientBook, ClientState, RequestFacts
from .families import FAMILIES
from .points import JudgementPoints
from .summary import CLIENT_SETS

__all__ = ["request_tokens", "request_facts", "Context", "Featurizer", "AGENT_MODES", "EXPLOIT_TOKENS"]

AGENT_MODES = next(f.choices for f in FAMILIES if f.setting == "agent")
_IMAGES = frozenset("png jpg jpeg gif ico svg webp bmp avif".split())
_PRODUCT = re.compile(r"([A-Za-z][\w.+-]*)/([\w.+-]+)")
_PARENS = re.compile(r"\(([^)]*)\)")


class _Levels:
    """Thermometer tokens: one per edge that a value reaches (``b:rate:>=20`` implies ``b:rate:>=5``).

    Unlike one token per bucket, this lets a model extrapolate: a rate above
    anything seen in training still switches on every "at least" it learned
    from. The token strings are made once; a call is a bisection and a slice.
    """

    def __init__(self, name: str, edges: Sequence[float]) -> None:
        self.edges = list(edges)
        self.tokens = [f"{name}:>={edge:g}" for edge in edges]

    def __call__(self, value: float) -> list[str]:
        return self.tokens[: bisect.bisect_right(self.edges, value)]


_RATE, _4XX, _5XX = _Levels("b:rate", (2, 5, 20, 60, 300)), _Levels("b:4xx", (0.01, 0.2, 0.5, 0.9)), \
    _Levels("b:5xx", (0.01, 0.2, 0.5))  # fmt: skip
_PATHS, _STATIC = _Levels("b:paths", (2, 5, 20, 100)), _Levels("b:static", (0.01, 0.1, 0.3, 0.7))
_POST, _HEAD = _Levels("b:post", (0.01, 0.3, 0.7, 0.95)), _Levels("b:head", (0.01, 0.5))
_FLAGGED, _NOREF = _Levels("b:flagged", (0.01, 0.2, 0.5)), _Levels("b:noref", (0.01, 0.5, 0.99))
_SPAN, _GAP = _Levels("b:span", (10, 60, 300)), _Levels("b:gap", (0.5, 2, 10, 60))
_CV, _ZERO = _Levels("b:cv", (0.5, 1, 2)), _Levels("b:zero", (0.1, 0.3, 0.6))
_SITE_CLIENTS, _SITE_FAILS = _Levels("site:clients", (2, 3, 8)), _Levels("site:fails", (0.01, 0.5, 0.9))


def _agent_tokens(agent: str) -> list[str]:
    """Exact user-agent tokens (products, major versions, OS parts, words): the optional, site-bound kind."""
    if agent in ("", "-"):
        return ["uap:empty"]
    tokens = []
    for product, version in _PRODUCT.findall(agent):
        tokens.append(f"uap:{product}")
        tokens.append(f"uav:{product}/{version.split('.')[0]}")
    for group in _PARENS.findall(agent):
        tokens.extend(f"uao:{part.strip()}" for part in group.split(";") if part.strip())
    rest = _PARENS.sub(" ", _PRODUCT.sub(" ", agent))
    tokens.extend(f"uaw:{word}" for word in rest.split() if len(word) > 1)
    return tokens


def request_tokens(record: LogRecord, agent: str = "class", paths: bool = False) -> list[str]:
    """The tokens of one request, without its context (deduplicated by the caller).

    Parameters
    ----------
    record : LogRecord
    agent : {"class", "tokens", "off"}
        The user agent as its class (browser, crawler, script, ...), as its class
        plus exact product/version tokens, or not at all.
    paths : bool
        Add the exact path (``p:``) and its prefixes (``pp:``): site vocabulary.
    """
    tokens = [f"s:{record.status}", f"sc:{record.status // 100}xx"]
    if not record.request_ok:
        tokens.append("req:malformed" if record.request not in ("", "-") else "req:empty")
        if "\\x" in record.request:
            tokens.append("enc:byte-escape")
    else:
        method = record.method.upper()
        tokens += [f"m:{method if method in ('GET', 'POST', 'HEAD', 'OPTIONS') else 'other'}",
                   f"v:{record.version or 'none'}"]  # fmt: skip
        path, _, query = record.target.partition("?")
        if not path.startswith("/"):
            tokens.append("target:absolute" if "://" in path else "target:odd")
        tokens += path_shape(unquote(path, errors="replace"))
        tokens += query_shape(query)
        tokens += payload_evidence(record.target)
        if paths:
            low = unquote(path, errors="replace").lower()
            tokens.append(f"p:{low[:200]}")
            parts = [p for p in low.split("/") if p]
            tokens += ["pp:/" + "/".join(parts[:depth]) for depth in range(1, min(len(parts), 4))]
    if agent != "off":
        tokens.append(f"ua:{agent_class(record.agent)}")
        if agent == "tokens":
            tokens += _agent_tokens(record.agent)
    return tokens


# Evidence that means an attack on any site, whatever else the client did: code execution
# payloads, path traversal, secrets and key files, webshells and known exploit endpoints
# (``evidence.request.EXPLOITS``). A 404, an odd path, a CMS login or a quote in a query is
# ambiguous: it needs company.
EXPLOIT_TOKENS = frozenset({"pay:command", "pay:traversal", "exploit:secret", "exploit:endpoint"})


def request_facts(record: LogRecord, tokens: Iterable[str]) -> RequestFacts:
    path = record.target.split("?", 1)[0] if record.request_ok else record.request[:100]
    tokens = set(tokens)
    flagged = any(t.startswith(("pay:", "probe:", "enc:", "exploit:")) for t in tokens)
    static = is_static(path)
    return RequestFacts(path, static, flagged, not EXPLOIT_TOKENS.isdisjoint(tokens),
                        static and path.rsplit(".", 1)[-1].lower() in _IMAGES)  # fmt: skip


class Context:
    """A client's sliding window and site-relative evidence, as tokens.

    The window is the client's own tally (``counts.Window``, kept by the stream's
    ``ClientBook``: the requests of the last ``window`` seconds, this one included);
    feed lines in time order (``lines.order.TimeOrder`` does that for training,
    ``evaluate``, ``classify`` and the watcher alike). Site-relative evidence needs no
    labels: how many distinct clients have asked for this path so far (up to 8), how
    often it answered 4xx/5xx, and which referrer hosts are this site (hosts whose
    referring pages are paths this site serves). At most ``max_paths`` paths are
    remembered.
    """

    def __init__(self, max_paths: int = 100_000) -> None:
        self.max_paths = max_paths
        self.paths: OrderedDict[str, list] = OrderedDict()  # path -> [clients (<= 8), requests, failures, use]
        self.site_hosts: set[str] = set()
        self._host_matches: Counter = Counter()
        self._first_clients: set[str] = set()  # up to 20: enough clients to tell what is rare
        self.changed: set[str] | None = None  # a state file's: paths touched since it last ``taken``
        self.used = 0  # paths looked up so far: each entry's last item is its place in the order of use

    def __repr__(self) -> str:
        return f"Context(paths={len(self.paths):,}, site hosts={len(self.site_hosts)})"

    def taken(self) -> tuple[dict[str, list | None], dict]:
        """What changed since the last call, for a state file: the entries of the paths touched
        (None for one forgotten since), and the rest of the site's evidence."""
        out = {p: self.paths.get(p) for p in self.changed or ()}
        self.changed = set()  # tracked from now on
        rest = {"site_hosts": sorted(self.site_hosts), "host_matches": dict(self._host_matches),
                "first_clients": sorted(self._first_clients), "used": self.used}  # fmt: skip
        return out, rest

    def restore(self, paths: dict[str, list], rest: dict) -> None:
        """Take back what ``taken`` gave (after a restart), paths in their order of use."""
        for path, entry in sorted(paths.items(), key=lambda kv: kv[1][3]):
            self.paths[path] = entry
        self.used = rest["used"]
        self.site_hosts = set(rest["site_hosts"])
        self._host_matches = Counter(rest["host_matches"])
        self._first_clients = set(rest["first_clients"])

    def _referrer(self, referrer: str) -> str:
        kind, host, ref_path = referrer_parts(referrer)
        if kind != "external":
            return kind
        if host in self.site_hosts:
            return "same-site"
        # A referring page whose path this site has served is one of this site's pages.
        if ref_path != "/" and ref_path in self.paths:
            self._host_matches[host] += 1
            if self._host_matches[host] >= 3:
                self.site_hosts.add(host)
                if len(self._host_matches) > 10_000:
                    self._host_matches.clear()
                return "same-site"
        return kind

    def tokens(self, record: LogRecord, facts: RequestFacts, state: ClientState) -> list[str]:
        """The context tokens of a line, from its client's ``state`` (this line included)."""
        client, window = state.client, state.window
        if len(self._first_clients) < 20:
            self._first_clients.add(client)
        entries = window.entries
        n = len(entries)
        tokens = (
            _RATE(n) + _4XX(window.e4 / n) + _5XX(window.e5 / n) + _PATHS(len(window.paths))
            + _STATIC(window.static / n) + _POST(window.post / n) + _HEAD(window.head / n)
            + _FLAGGED(window.flagged / n) + _NOREF(window.noref / n) + _SPAN(record.time - entries[0].time)
        )  # fmt: skip
        # Gaps between requests inside the window: the oldest request's gap reaches back
        # outside it (to a request that left, or was never seen), so it is taken out.
        gaps = n - 1
        if gaps >= 2:
            outside = max(entries[0].gap, 0.0)
            mean = (window.gaps - outside) / gaps
            var = max((window.gap2 - outside * outside) / gaps - mean * mean, 0.0)
            cv = var**0.5 / mean if mean > 0 else 10.0
            zero = (window.zero - entries[0].zero) / gaps
            tokens += ["b:gaps"] + _GAP(mean) + _CV(cv) + _ZERO(zero)
        return tokens + self._site(facts.path, client, record.status) + ["ref:" + self._referrer(record.referrer)]

    def _site(self, path: str, client: str, status: int) -> list[str]:
        entry = self.paths.get(path)
        if entry is None:
            entry = self.paths[path] = [[], 0, 0, 0]
            if len(self.paths) > self.max_paths:
                forgotten = self.paths.popitem(last=False)[0]
                if self.changed is not None:
                    self.changed.add(forgotten)
        else:
            self.paths.move_to_end(path)
        self.used += 1
        entry[3] = self.used
        if self.changed is not None:
            self.changed.add(path)
        clients = entry[0]
        if client not in clients and len(clients) < 8:
            clients.append(client)
        entry[1] += 1
        entry[2] += status >= 400
        if len(self._first_clients) < 20:  # too few clients yet to say what is rare on this site
            return []
        return ["site:warm"] + _SITE_CLIENTS(len(clients)) + _SITE_FAILS(entry[2] / entry[1])


class Featurizer:
    """Tokens -> columns of a sparse 0/1 matrix, with a cache of identical requests
    (``cache_size`` distinct requests remembered, the least recently used going first).

    Parameters
    ----------
    agent : {"class", "tokens", "off"}, default "class"
        The user agent as a class only, with exact product/version tokens too
        (they learn the sample's browsers; see the data README's confound), or not at all.
    paths : bool, default False
        Exact path tokens (site vocabulary) besides the path's shape.
    behaviour : bool, default False
        Add the context tokens (client windows, site-relative evidence, referrer
        class); needs the lines in time order.
    window : float, default 600
        The behaviour window in seconds.
    client : {"default", "paper", "all"}, default "default"
        What the client model trained with this featurizer reads (``counts.CLIENT_SETS``).
    hashing : int, optional
        Hash tokens into this many columns instead of fitting a vocabulary.
    min_count, max_features
        Vocabulary pruning: tokens seen fewer than ``min_count`` times in
        training are dropped, then the ``max_features`` most frequent are kept.
    """

    cache_size = 200_000

    def __init__(
        self, *, agent: str = "class", paths: bool = False, behaviour: bool = False, window: float = 600.0,
        hashing: int | None = None, min_count: int = 2, max_features: int = 50_000, client: str = "default",
    ) -> None:  # fmt: skip
        if agent not in AGENT_MODES:
            raise ValueError(f"agent must be one of {AGENT_MODES}. Received: agent={agent!r}.")
        if client not in CLIENT_SETS:
            raise ValueError(f"client must be one of {tuple(CLIENT_SETS)}. Received: client={client!r}.")
        self.agent, self.paths, self.behaviour, self.window = agent, bool(paths), bool(behaviour), float(window)
        self.client = client
        self.hashing, self.min_count, self.max_features = hashing, min_count, max_features
        self.vocabulary: dict[str, int] = {}
        self._cache: OrderedDict[tuple, tuple[list[str], RequestFacts]] = OrderedDict()
        self._column_cache: OrderedDict[tuple, tuple[np.ndarray, RequestFacts]] = OrderedDict()
        self.cache_hits = self.cache_lookups = 0
        self.reset_context()

    def __repr__(self) -> str:
        columns = f"hashing={self.hashing}" if self.hashing else f"vocabulary={len(self.vocabulary):,} tokens"
        return f"Featurizer({columns}, agent={self.agent!r}, paths={self.paths}, behaviour={self.behaviour})"

    @property
    def n_features(self) -> int:
        return self.hashing if self.hashing else len(self.vocabulary)

    @property
    def cache_hit_rate(self) -> float:
        return self.cache_hits / self.cache_lookups if self.cache_lookups else 0.0

    def _lookup(self, cache: OrderedDict, record: LogRecord, compute: Any) -> Any:
        """``compute(record)`` for the request part of a line, from an LRU cache
        keyed by what the request tokens depend on (not the client, time or referrer)."""
        key = (record.request, record.status, record.agent if self.agent != "off" else "")
        self.cache_lookups += 1
        value = cache.get(key)
        if value is None:
            value = cache[key] = compute(record)
            if len(cache) > self.cache_size:
                cache.popitem(last=False)
        else:
            self.cache_hits += 1
            cache.move_to_end(key)
        return value

    def _request(self, record: LogRecord) -> tuple[list[str], RequestFacts]:
        tokens = sorted(set(request_tokens(record, self.agent, self.paths)))
        return tokens, request_facts(record, tokens)

    def tokens_and_facts(self, record: LogRecord) -> tuple[list[str], RequestFacts]:
        """The tokens of one line (request tokens from the cache when possible) and the
        request's facts; the line joins its client's tally (``points``)."""
        tokens, facts = self._lookup(self._cache, record, self._request)
        state = self.points.add(record, facts)
        if self.context is not None:
            return tokens + self.context.tokens(record, facts, state), facts
        return tokens, facts

    def tokens(self, record: LogRecord) -> list[str]:
        """The tokens of one line."""
        return self.tokens_and_facts(record)[0]

    def reset_context(self, idle: float = IDLE, max_clients: int | None = None) -> None:
        """Start afresh (between independent logs): the clients' tally (``points``: each
        client's counts and window, and when it is judged) and the site evidence."""
        book = ClientBook(idle=idle, max_clients=max_clients, window=self.window if self.behaviour else None)
        self.points = JudgementPoints(book)
        self.context = Context() if self.behaviour else None

    def fit(self, token_lists: Iterable[Sequence[str]]) -> Featurizer:
        """Build the vocabulary from training tokens (a no-op with hashing)."""
        if self.hashing:
            return self
        counts = Counter(t for tokens in token_lists for t in tokens)
        kept = [t for t, c in counts.items() if c >= self.min_count]
        kept.sort(key=lambda t: (-counts[t], t))
        self.vocabulary = {t: i for i, t in enumerate(sorted(kept[: self.max_features]))}
        return self

    def _column(self, token: str) -> int | None:
        if self.hashing:
            return zlib.crc32(token.encode("utf-8", "replace")) % self.hashing
        return self.vocabulary.get(token)

    def columns(self, record: LogRecord) -> tuple[np.ndarray, RequestFacts, ClientState]:
        """The column indices of one line, for a fitted featurizer, the request's facts, and
        its client's state once the line has joined its tally (``points``).

        The columns are what ``transform([tokens(record)])`` gives, but faster:
        the columns of each distinct request are cached as a small int32 array
        (a flood costs one lookup per line), and only the context tokens are
        looked up afresh.
        """

        def request_columns(r: LogRecord) -> tuple[np.ndarray, RequestFacts]:
            tokens, facts = self._request(r)
            columns = {c for c in map(self._column, tokens) if c is not None}
            return np.array(sorted(columns), dtype=np.int32), facts

        cached, facts = self._lookup(self._column_cache, record, request_columns)
        state = self.points.add(record, facts)
        if self.context is None:
            return cached, facts, state
        context = self.context.tokens(record, facts, state)
        lookup = self._column if self.hashing else self.vocabulary.get
        extra = [c for c in map(lookup, context) if c is not None]
        if not extra:
            return cached, facts, state
        extra_columns = np.asarray(extra, dtype=np.int32)
        if self.hashing:  # a hashed context token may collide with a request token: merge
            return np.union1d(cached, extra_columns), facts, state
        # With a vocabulary, context tokens have columns of their own, so appending
        # is exact (CSR rows need not be sorted) and much cheaper than a union.
        return np.concatenate((cached, extra_columns)), facts, state

    def matrix(self, column_lists: Sequence[np.ndarray]) -> Any:
        """A CSR matrix from per-line column arrays (see ``columns``)."""
        sp = require("scipy.sparse", "weblogs")

        indptr = np.zeros(len(column_lists) + 1, dtype=np.int64)
        np.cumsum([len(c) for c in column_lists], out=indptr[1:])
        indices = np.concatenate(column_lists) if column_lists else np.zeros(0, dtype=np.int32)
        data = np.ones(len(indices), dtype=np.float32)
        return sp.csr_matrix((data, indices, indptr), shape=(len(column_lists), self.n_features))

    def transform(self, token_lists: Sequence[Sequence[str]]) -> Any:
        """A CSR matrix (n_lines, n_features) of 0/1 float32; unknown tokens ignored."""
        return self.matrix([
            np.array(sorted({c for c in map(self._column, tokens) if c is not None}), dtype=np.int32)
            for tokens in token_lists
        ])  # fmt: skip

    def get_config(self) -> dict[str, Any]:
        """Settings and vocabulary, as JSON-able data for the model file."""
        return {
            **{family.setting: getattr(self, family.setting) for family in FAMILIES}, "window": self.window,
            "hashing": self.hashing, "min_count": self.min_count, "max_features": self.max_features,
            "vocabulary": sorted(self.vocabulary, key=self.vocabulary.__getitem__),
        }  # fmt: skip

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Featurizer:
        config = dict(config)
        vocabulary = config.pop("vocabulary", [])
        featurizer = cls(**config)
        featurizer.vocabulary = {t: i for i, t in enumerate(vocabulary)}
        return featurizer
