"""A client's evidence as numbers: the client model's inputs, by group.

``Counts`` is what a judgement records of a client (``counts.ClientBook.counts``:
named raw counts, cheap to keep); ``summarise`` turns rows of them into the
client summaries ``FEATURES`` that the client model reads, all at once.
``CLIENT_SETS`` names the subsets a client model can be trained on.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Sequence

import numpy as np

__all__ = [
    "AGENT_CLASSES", "GROUPS", "FEATURES", "CLIENT_SETS", "EXPLOIT_WEIGHT", "Counts", "summarise", "merge_counts",
]  # fmt: skip

AGENT_CLASSES = ("browser", "crawler", "monitor", "script", "attack-tool", "empty", "malformed")
# The client summary, by group. ``pace`` is how fast a client asks (every request counted,
# beacons included): it depends on the site (a page script that posts every second makes
# every visitor fast). ``pages`` is how it reads: page views (GETs of anything but a static
# asset), the think time between them, whether it follows links and loads the assets of
# what it reads, how deep and wide it browses: the paper's session features and more.
# ``site`` places the client's think time among the site's own (every client's gaps between
# page views so far, no labels): a script reading faster than nearly everyone is near 0.
GROUPS = {
    "volume": ("log_requests", "log_duration"),
    "pace": ("log_rate_per_minute", "gap_cv", "same_second_share"),
    "shares": ("share_4xx", "share_5xx", "distinct_path_share", "static_share", "post_share", "head_share",
               "other_method_share", "no_referrer_share", "malformed_share"),
    "evidence": ("flagged_share", "exploit_share", "log_exploits"),
    "pages": ("page_share", "image_share", "log_bytes_per_request", "log_page_gap", "page_gap_cv",
              "page_referrer_share", "linked_share", "log_assets_per_page", "log_width", "max_depth"),
    "site": ("page_gap_site_rank",),
    "agent": tuple(f"agent_{name}" for name in AGENT_CLASSES),
}  # fmt: skip
FEATURES = tuple(name for group in GROUPS.values() for name in group)
# Named subsets of FEATURES that a client model can be trained on (``Featurizer(client=...)``).
CLIENT_SETS = {
    "default": tuple(n for g, names in GROUPS.items() if g not in ("pace", "site") for n in names),
    "site": tuple(n for g, names in GROUPS.items() if g != "pace" for n in names),
    "all": FEATURES,
    "paper": GROUPS["volume"] + ("gap_cv", "share_4xx", "distinct_path_share", "static_share", "head_share",
                                  "no_referrer_share", "page_share", "image_share", "log_bytes_per_request",
                                  "log_page_gap", "page_gap_cv", "log_width", "max_depth"),
}  # fmt: skip
# One request with unambiguous exploit evidence counts as this many requests of evidence
# (``ClientState.evidence``): with the default ``min_evidence`` of 5, one is enough to judge.
EXPLOIT_WEIGHT = 5

# A client's counts at one judgement, by name: requests, seconds from first to last request, the sum
# and sum of squares of the gaps between requests and their number, gaps of 0 s, 4xx and 5xx answers,
# distinct paths, static assets, POST, HEAD and other methods, flagged requests, requests without a
# referrer, malformed requests; page views, the sum and sum of squares of the gaps between them
# and their number, page views with a referrer, requests whose referrer is a path the client
# asked for before (it follows links), images, bytes, exploit requests, distinct pages, the
# deepest path; and requests by agent class. ``ClientBook.summarise`` reads them.
Counts = namedtuple("Counts", ["requests", "duration", "gaps", "gap2", "ngaps", "same", "e4", "e5", "paths",
                               "static", "post", "head", "other", "flagged", "noref", "malformed", "pages",
                               "pgaps", "pgap2", "npgaps", "pageref", "linked", "images", "bytes", "exploit",
                               "width", "depth", "site_rank"]
                    + [f"agent_{name.replace('-', '_')}" for name in AGENT_CLASSES])  # fmt: skip
_N_COUNTS = len(Counts._fields) - len(AGENT_CLASSES)


def _mean_and_cv(total: np.ndarray, squares: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mean of gaps from their sum, sum of squares and number (0 without gaps), and their
    coefficient of variation (0 with fewer than two gaps or a zero mean, at most 10)."""
    has = count > 0
    per = np.where(has, count, 1.0)
    mean = np.where(has, total / per, 0.0)
    spread = np.sqrt(np.maximum(squares / per - mean * mean, 0.0))
    regular = (count >= 2) & (mean > 0)
    return mean, np.minimum(np.where(regular, spread / np.where(regular, mean, 1.0), 0.0), 10.0)


def summarise(counts: Sequence[Counts] | np.ndarray) -> np.ndarray:
    """Client summaries ``(k, len(FEATURES))`` from ``k`` rows of ``counts``, all at once.

    Per client, in the order of ``GROUPS``: the log of its requests and of its
    duration; its pace (the log of its rate per minute, the coefficient of
    variation of the gaps between its requests, 0 with fewer than two gaps and
    at most 10, and the share of gaps of 0 s); the shares of 4xx and 5xx
    answers, distinct paths, static assets, POST, HEAD, other methods, requests
    without a referrer and malformed ones; its evidence (the shares of flagged
    and exploit requests, the log of its exploit requests); how it reads (the
    share of page views and of images, the log of its bytes per request, the
    log of the mean think time between page views and their coefficient of
    variation, the shares of page views with a referrer and of requests that
    follow a link from a page it asked for, the log of assets per page view and
    of distinct pages, the deepest path up to 8); its mean think time's place among the
    site's (``counts.SitePace``: 0, faster than every gap seen; 0.5 when unknown); and the share of its requests
    from each class of user agent.
    """
    c = np.asarray(counts, dtype=np.float64).reshape(-1, _N_COUNTS + len(AGENT_CLASSES))
    f = dict(zip(Counts._fields, c.T, strict=True))
    n = f["requests"]
    kinds = c[:, _N_COUNTS:]
    agents = np.maximum(kinds.sum(axis=1, keepdims=True), 1.0)
    pages = f["pages"]
    _, gap_cv = _mean_and_cv(f["gaps"], f["gap2"], f["ngaps"])
    mean_page_gap, page_gap_cv = _mean_and_cv(f["pgaps"], f["pgap2"], f["npgaps"])
    share = np.column_stack([f[k] for k in ("e4", "e5", "paths", "static", "post", "head", "other", "noref",
                                            "malformed", "flagged", "exploit")]) / n[:, None]  # fmt: skip
    return np.column_stack([
        np.log1p(n), np.log1p(f["duration"]),
        np.log1p(n / (f["duration"] + 60.0) * 60.0), gap_cv, f["same"] / np.maximum(f["ngaps"], 1),
        share, np.log1p(f["exploit"]),
        pages / n, f["images"] / n, np.log1p(f["bytes"] / n), np.log1p(mean_page_gap), page_gap_cv,
        f["pageref"] / np.maximum(pages, 1), f["linked"] / n, np.log1p(f["static"] / np.maximum(pages, 1)),
        np.log1p(f["width"]), np.minimum(f["depth"], 8.0), f["site_rank"],
        kinds / agents,
    ])  # fmt: skip


_LONGEST = {"duration", "depth"}  # the longest span and the deepest path; the rest adds up
_OWN = {"site_rank"}  # a site's own measure: the host's


def merge_counts(own: Counts, others: Sequence[Sequence[float]]) -> Counts:
    """A client's counts on this host merged with its counts on other hosts (a fleet): sums,
    except the duration and depth (the largest) and the site rank (this host's). Distinct
    paths and pages add up too: an upper bound, as no host sees the others' paths."""
    if not others:
        return own
    values = list(own)
    for i, name in enumerate(Counts._fields):
        column = [float(other[i]) for other in others]
        if name in _LONGEST:
            values[i] = max([values[i], *column])
        elif name not in _OWN:
            values[i] = values[i] + sum(column)
    return Counts._make(values)
