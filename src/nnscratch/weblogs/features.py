"""From parsed log lines to sparse 0/1 feature vectors.

The classic design: turn each line into tokens, build a dictionary of the
tokens seen in training, and give every line a 0/1 vector with a one for each
of its known tokens. Tokens (``kind:value`` strings):

* request: ``m:GET``, ``v:HTTP/1.1``, ``req:malformed``; the URL path
  (``p:/a/b.php``) and its prefixes (``pp:/a``), its extension (``ext:php``),
  each query key (``q:id``), and what the target contains once URL-decoded
  (``has:quote``, ``has:dotdot``, ``has:lt``, ...; ``len:`` buckets). The
  character tokens are what lets a model catch a scanner by *what it asks
  for* even when it wears a browser's user agent.
* response: ``s:404``, ``sc:4xx``.
* referrer: ``ref:none`` or ``ref:scheme:https``, ``ref:host:...``, ``ref:path:...``.
* user agent (optional): ``ua:empty``, product and major version
  (``uap:Chrome``, ``uav:Chrome/77``), the OS tokens in parentheses
  (``uao:Linux x86_64``) and bare words (``uaw:w3af.org``).
* behaviour (optional, per client over a sliding window; see ``Behaviour``):
  ``b:rate:...``, ``b:4xx:...``, ``b:paths:...``, ``b:gap:...``, ``b:static:...``.

``Featurizer`` maps tokens to columns with a fitted ``vocabulary`` (minimum
count, maximum size, unknown tokens ignored) or by feature hashing (crc32,
stable across processes), caches the tokens of identical requests (floods
repeat themselves; ``cache_hit_rate`` says how much), and returns scipy CSR.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter, OrderedDict, deque
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import unquote

import numpy as np

from .parse import LogRecord

__all__ = ["request_tokens", "Behaviour", "Featurizer", "STATIC_EXTENSIONS"]

STATIC_EXTENSIONS = frozenset("css js png jpg jpeg gif ico svg woff woff2 ttf eot map webp bmp".split())
_PRODUCT = re.compile(r"([A-Za-z][\w.+-]*)/([\w.+-]+)")
_PARENS = re.compile(r"\(([^)]*)\)")
_CHARACTERS = {
    "quote": ("'", '"'),
    "lt": ("<",),
    "dotdot": ("../", "..\\"),
    "semicolon": (";",),
    "paren": ("(",),
    "nul": ("\x00",),
    "space": (" ",),
    "dollar": ("$",),
    "brace": ("{",),
    "pipe": ("|",),
    "backtick": ("`",),
    "at": ("@",),
}


def _bucket(value: float, edges: Sequence[float]) -> str:
    for edge in edges:
        if value < edge:
            return f"<{edge:g}"
    return f">={edges[-1]:g}"


def _agent_tokens(agent: str) -> list[str]:
    if agent in ("", "-"):
        return ["ua:empty"]
    tokens = []
    for product, version in _PRODUCT.findall(agent):
        tokens.append(f"uap:{product}")
        tokens.append(f"uav:{product}/{version.split('.')[0]}")
    for group in _PARENS.findall(agent):
        tokens.extend(f"uao:{part.strip()}" for part in group.split(";") if part.strip())
    rest = _PARENS.sub(" ", _PRODUCT.sub(" ", agent))
    tokens.extend(f"uaw:{word}" for word in rest.split() if len(word) > 1)
    return tokens


def request_tokens(record: LogRecord, user_agent: bool = True) -> list[str]:
    """The tokens of one request (everything but behaviour), deduplicated by the caller."""
    tokens = [f"s:{record.status}", f"sc:{record.status // 100}xx"]
    if not record.request_ok:
        tokens.append("req:malformed" if record.request not in ("", "-") else "req:empty")
    else:
        tokens += [f"m:{record.method.upper()}", f"v:{record.version or 'none'}"]
        target = record.target
        path, _, query = target.partition("?")
        decoded = unquote(unquote(target, errors="replace"), errors="replace").lower()
        path = unquote(path, errors="replace").lower()
        tokens.append(f"p:{path[:200]}")
        parts = [p for p in path.split("/") if p]
        for depth in range(1, min(len(parts), 4)):
            tokens.append("pp:/" + "/".join(parts[:depth]))
        last = parts[-1] if parts else ""
        if "." in last:
            tokens.append(f"ext:{last.rsplit('.', 1)[1][:10]}")
        for pair in query.split("&") if query else ():
            key = unquote(pair.split("=", 1)[0], errors="replace").lower()
            tokens.append(f"q:{key[:40]}")
        for name, needles in _CHARACTERS.items():
            if any(n in decoded for n in needles):
                tokens.append(f"has:{name}")
        tokens.append("len:" + _bucket(len(target), (16, 64, 256, 1024)))
    if record.referrer in ("", "-"):
        tokens.append("ref:none")
    else:
        scheme, sep, rest = record.referrer.partition("://")
        host, _, refpath = rest.partition("/") if sep else ("", "", record.referrer)
        tokens += [f"ref:scheme:{scheme.lower()[:10]}" if sep else "ref:odd", f"ref:host:{host.lower()[:100]}"]
        tokens.append(f"ref:path:/{refpath.split('?')[0][:100]}")
    if user_agent:
        tokens.extend(_agent_tokens(record.agent))
    return tokens


class Behaviour:
    """Per-client behaviour over a sliding time window, as tokens.

    For each request (seen in time order per client) it looks at that client's
    requests in the last ``window`` seconds, this one included: request count,
    share of 4xx answers, distinct paths, mean time between requests and share
    of static assets, each discretised into a token. The client is the session
    id where the log has one, else the IP address. Memory is bounded by the
    number of active clients times their requests per window.
    """

    def __init__(self, window: float = 600.0) -> None:
        self.window = float(window)
        # per client: [queue of (time, is_4xx, path, is_static), n_4xx, n_static, path counts]
        self.clients: dict[str, list[Any]] = {}

    @staticmethod
    def client_of(record: LogRecord) -> str:
        return record.session if record.session != "-" else record.host

    def tokens(self, record: LogRecord) -> list[str]:
        state = self.clients.get(self.client_of(record))
        if state is None:
            state = self.clients[self.client_of(record)] = [deque(), 0, 0, Counter()]
        queue, paths = state[0], state[3]
        path = record.target.split("?", 1)[0]
        static = "." in path and path.rsplit(".", 1)[-1].lower() in STATIC_EXTENSIONS
        error = 400 <= record.status < 500
        queue.append((record.time, error, path, static))
        state[1] += error
        state[2] += static
        paths[path] += 1
        # Running totals: each request enters and leaves the window once, so a
        # flood of thousands of requests per window costs O(1) per request.
        while queue[0][0] < record.time - self.window:
            _, old_error, old_path, old_static = queue.popleft()
            state[1] -= old_error
            state[2] -= old_static
            paths[old_path] -= 1
            if not paths[old_path]:
                del paths[old_path]
        n = len(queue)
        gap = (queue[-1][0] - queue[0][0]) / (n - 1) if n > 1 else self.window
        return [
            "b:rate:" + _bucket(n, (2, 5, 20, 60, 300)),
            "b:4xx:" + _bucket(state[1] / n, (0.01, 0.2, 0.5, 0.9)),
            "b:paths:" + _bucket(len(paths), (2, 5, 20, 100)),
            "b:gap:" + _bucket(gap, (0.5, 2, 10, 60)),
            "b:static:" + _bucket(state[2] / n, (0.01, 0.3, 0.7)),
        ]

    def forget_idle(self, now: float) -> None:
        """Drop clients with nothing in the window (keeps memory flat on long streams)."""
        idle = [c for c, state in self.clients.items() if state[0][-1][0] < now - self.window]
        for client in idle:
            del self.clients[client]


class Featurizer:
    """Tokens -> columns of a sparse 0/1 matrix, with a cache of identical requests.

    Parameters
    ----------
    user_agent : bool, default True
        Include user-agent tokens (turn off to judge a model by behaviour and
        requests alone; see the data README on the user-agent confound).
    behaviour : bool, default False
        Add per-client sliding-window tokens (needs the lines in time order).
    window : float, default 600
        The behaviour window in seconds.
    hashing : int, optional
        Hash tokens into this many columns instead of fitting a vocabulary.
    min_count, max_features
        Vocabulary pruning: tokens seen fewer than ``min_count`` times in
        training are dropped, then the ``max_features`` most frequent are kept.
    cache_size : int
        Distinct requests whose tokens are remembered (least recently used go first).
    """

    def __init__(
        self, *, user_agent: bool = True, behaviour: bool = False, window: float = 600.0, hashing: int | None = None,
        min_count: int = 2, max_features: int = 50_000, cache_size: int = 200_000,
    ) -> None:  # fmt: skip
        self.user_agent, self.behaviour, self.window = user_agent, behaviour, float(window)
        self.hashing, self.min_count, self.max_features = hashing, min_count, max_features
        self.cache_size = cache_size
        self.vocabulary: dict[str, int] = {}
        self._cache: OrderedDict[tuple, list[str]] = OrderedDict()
        self._column_cache: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self.cache_hits = self.cache_lookups = 0
        self._behaviour = Behaviour(window) if behaviour else None

    def __repr__(self) -> str:
        columns = f"hashing={self.hashing}" if self.hashing else f"vocabulary={len(self.vocabulary):,} tokens"
        return f"Featurizer({columns}, user_agent={self.user_agent}, behaviour={self.behaviour})"

    @property
    def n_features(self) -> int:
        return self.hashing if self.hashing else len(self.vocabulary)

    @property
    def cache_hit_rate(self) -> float:
        return self.cache_hits / self.cache_lookups if self.cache_lookups else 0.0

    def _lookup(self, cache: OrderedDict, record: LogRecord, compute: Any) -> Any:
        """``compute(record)`` for the request part of a line, from an LRU cache
        keyed by what the request tokens depend on (not the client or the time)."""
        key = (record.request, record.status, record.referrer, record.agent if self.user_agent else "")
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

    def tokens(self, record: LogRecord) -> list[str]:
        """The tokens of one line (request tokens from the cache when possible)."""
        cached = self._lookup(self._cache, record, lambda r: sorted(set(request_tokens(r, self.user_agent))))
        if self._behaviour is not None:
            return cached + self._behaviour.tokens(record)
        return cached

    def reset_behaviour(self) -> None:
        """Start the behaviour windows afresh (between independent log files)."""
        if self.behaviour:
            self._behaviour = Behaviour(self.window)

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

    def columns(self, record: LogRecord) -> np.ndarray:
        """The sorted column indices of one line, for a fitted featurizer.

        What ``transform(tokens(...))`` gives, but faster: the columns of each
        distinct request are cached as a small int32 array (a flood costs one
        lookup per line), and only the behaviour tokens are looked up afresh.
        """

        def request_columns(r: LogRecord) -> np.ndarray:
            columns = {c for c in map(self._column, set(request_tokens(r, self.user_agent))) if c is not None}
            return np.array(sorted(columns), dtype=np.int32)

        cached = self._lookup(self._column_cache, record, request_columns)
        if self._behaviour is None:
            return cached
        extra = [c for c in map(self._column, self._behaviour.tokens(record)) if c is not None]
        if not extra:
            return cached
        extra_columns = np.asarray(extra, dtype=np.int32)
        if self.hashing:  # a hashed behaviour token may collide with a request token: merge
            return np.union1d(cached, extra_columns)
        # With a vocabulary, behaviour tokens ("b:...") have columns of their own, so
        # appending is exact (CSR rows need not be sorted) and much cheaper than a union.
        return np.concatenate((cached, extra_columns))

    def matrix(self, column_lists: Sequence[np.ndarray]) -> Any:
        """A CSR matrix from per-line column arrays (see ``columns``)."""
        import scipy.sparse as sp

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
            "user_agent": self.user_agent, "behaviour": self.behaviour, "window": self.window,
            "hashing": self.hashing, "min_count": self.min_count, "max_features": self.max_features,
            "cache_size": self.cache_size, "vocabulary": sorted(self.vocabulary, key=self.vocabulary.__getitem__),
        }  # fmt: skip

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Featurizer:
        config = dict(config)
        vocabulary = config.pop("vocabulary", [])
        featurizer = cls(**config)
        featurizer.vocabulary = {t: i for i, t in enumerate(vocabulary)}
        return featurizer
