"""The ban policy: what a ruling does to a client, and who is never banned.

The decision procedure (``decision``) rules on clients; this says what a ruling
means for the firewall, as fail2ban's jail settings do: a banning ruling bans
for ``ban_time`` seconds, times ``factor`` for each earlier offence, at most
``max_ban_time``; a client already banned for more than half a first ban is
left as it is, and one banned for less is extended; the allowlist (and, unless
``ban_private``, loopback and private addresses) is never banned; a ruling at
or above ``challenge_threshold`` that does not ban sends the client to the
challenge (a captcha).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..lines.reading import read_text
from ..model.clients import Ruling
from .actions import ip_target
from .state import Ban

__all__ = ["Allowlist", "BanPolicy", "RESPONSES"]

RESPONSES = ("ban", "extend", "keep", "not banned", "challenge", "none")


class Allowlist:
    """Addresses and networks never banned: a file (one address or CIDR per line, ``#``
    comments; reloaded on SIGHUP), extra entries, and unless ``ban_private`` the
    loopback, private, link-local and reserved ranges."""

    def __init__(self, path: str | Path | None = None, extra: Sequence[str] = (), ban_private: bool = False) -> None:
        self.path, self.extra, self.ban_private = Path(path) if path else None, list(extra), ban_private
        self.networks: list[Any] = []
        self.reload()

    def __repr__(self) -> str:
        return f"Allowlist({len(self.networks)} networks, ban_private={self.ban_private})"

    def reload(self) -> None:
        entries = list(self.extra)
        if self.path is not None:
            entries += [line.split("#", 1)[0].strip() for line in read_text(self.path, "--allowlist file").splitlines()]
        networks = []
        for entry in filter(None, entries):
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                raise ValueError(f"allowlist entry {entry!r} is not an address or CIDR network "
                                 f"(in {self.path or 'the command line'}).") from None  # fmt: skip
        self.networks = networks

    def why_not(self, address: str) -> str | None:
        """Why ``address`` (or a CIDR network: a range ban) must not be banned, or None if it may be."""
        try:
            ip = ip_target(address)
        except ValueError:
            return None  # a session id (a log without addresses): banned by id, see Actions
        if isinstance(ip, ipaddress.IPv4Network | ipaddress.IPv6Network):
            if any(ip.version == net.version and ip.overlaps(net) for net in self.networks):
                return "allowlisted (a part of the range is)"
        elif any(ip in net for net in self.networks):
            return "allowlisted"
        if not self.ban_private and (ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_reserved):
            return "loopback or private address (--ban-private to ban these)"
        return None


@dataclass
class BanPolicy:
    """What a ruling does (module docstring); ``response`` is the one place it is decided."""

    ban_time: float = 600.0
    factor: float = 2.0
    max_ban_time: float = 7 * 86400.0
    allowlist: Allowlist = field(default_factory=Allowlist)
    challenge_threshold: float = 0.5

    def duration(self, offences: int) -> float:
        """Seconds of a ban for a client with ``offences`` earlier bans."""
        return min(self.ban_time * self.factor**offences, self.max_ban_time)

    def response(self, ruling: Ruling, current: Ban | None, now: float) -> tuple[str, str]:
        """``(response, why)`` to a ruling, given the client's active ban (if any): a response
        of ``RESPONSES``; ``why`` says why a banning ruling does not ban."""
        if not ruling.ban:
            return ("challenge", "") if ruling.probability >= self.challenge_threshold else ("none", "")
        blocked = self.allowlist.why_not(ruling.client)
        if blocked is not None:
            return "not banned", blocked
        if current is not None:
            return ("keep", "") if current.remaining(now) > self.ban_time / 2 else ("extend", "")
        return "ban", ""
