"""What the watcher does about a ban: small, named, swappable actions.

As fail2ban separates its filters from its actions, the detector decides and an
action carries the decision to a firewall or a web server. Every action gets
the changes of a step (``Change``: ban, unban or extend, with the address, the
seconds and the reason) and the whole list of active bans, and uses whichever
suits it: files are rewritten whole and atomically from the active list;
commands are sent per change. ``Actions`` runs them all; one that fails is
reported and retried at the next step with the changes it missed, and never
stops the others or the watcher.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ... import io as model_io
from .state import Ban

__all__ = [
    "Change", "Action", "Actions", "BanListFile", "NginxDeny", "NftablesSet", "IpsetRestore", "Fail2ban",
    "CrowdsecDecisions", "CrowdsecCscli", "CommandHook", "JsonEvents", "is_address", "is_network", "ip_version",
    "ip_target", "replace_text", "ACTIONS",
    "add_action_options", "actions_from_args", "action_options",
]  # fmt: skip


@dataclass
class Change:
    """One thing that happened to a ban."""

    event: str  # "ban", "unban", "extend", or "restore" (an active ban applied again after a restart)
    address: str
    seconds: float  # how long the ban lasts from now (0 for unban)
    reason: str = ""
    log_time: float | None = None  # the log time of the line whose ruling made it (a ban or an extension)


def replace_text(path: str | Path, text: str) -> bool:
    """Replace ``path`` with ``text`` (``io.write_atomically``: a reader never sees half a
    file); False, and nothing written, if it already holds exactly that."""
    try:
        if Path(path).read_text(encoding="utf-8") == text:
            return False
    except FileNotFoundError:
        pass
    model_io.write_atomically(path, text.encode("utf-8"))
    return True


def _run(command: Sequence[str], stdin: str | None = None) -> str:
    """Run a command (30 s at most); its standard output, or RuntimeError with what it said."""
    done = subprocess.run(list(command), input=stdin, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        said = " ".join(filter(None, (done.stdout.strip(), done.stderr.strip())))[:300]
        raise RuntimeError(f"{shlex.join(command)} exited {done.returncode}: {said}")
    return done.stdout


def is_address(client: str) -> bool:
    """Whether a client key is an IP address or a CIDR network (a range ban, ``logs bans --add``),
    not a session id from a log without addresses."""
    return ip_version(client) is not None


IpTarget = ipaddress.IPv4Address | ipaddress.IPv6Address | ipaddress.IPv4Network | ipaddress.IPv6Network


def ip_target(text: str) -> IpTarget:
    """What a ban names: an IP address, or a CIDR network (``203.0.113.0/24``, host bits
    allowed) for a range; ValueError for anything else (a session id)."""
    return ipaddress.ip_network(text, strict=False) if "/" in text else ipaddress.ip_address(text)


def ip_version(client: str) -> int | None:
    """4 or 6 for an IP address or CIDR network, None for anything else (a session id)."""
    try:
        return ip_target(client).version
    except ValueError:
        return None


def is_network(client: str) -> bool:
    """Whether a client key is a CIDR network (``203.0.113.0/24``), not one address."""
    return "/" in client and ip_version(client) is not None


class Action:
    """Base class: ``apply(changes, active)``; ``name`` says what it is in reports.
    ``addresses_only``: the action acts on IP addresses, so ``Actions`` hands it no
    session clients (a log without addresses bans by session id, see ``client_of``)."""

    name = "action"
    addresses_only = True
    # The command line, declared: most actions are chosen by one option whose value is
    # their one argument (``option``, ``metavar``, ``help``); others override the two
    # class methods. ``options`` lists the options that choose the action, for messages.
    option: str | None = None
    metavar = "FILE"
    help = ""
    options: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.option and "options" not in cls.__dict__:
            cls.options = (cls.option,)

    @classmethod
    def add_options(cls, parser: argparse.ArgumentParser) -> None:
        """Declare this action's command-line options (``logs watch``)."""
        if cls.option:
            parser.add_argument(cls.option, metavar=cls.metavar, help=cls.help)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> list[Action]:
        """The actions of this kind the parsed options ask for (none, one, or several)."""
        value = getattr(args, cls.option.lstrip("-").replace("-", "_")) if cls.option else None
        return [cls(value)] if value else []  # type: ignore[call-arg]

    def apply(self, changes: list[Change], active: list[Ban]) -> None:
        raise NotImplementedError

    # The file the action writes, if any, and whether a line of an existing one is the
    # action's own: ``logs watch`` refuses to replace (or append to) a file of another
    # program before any state is made (``--force`` overrides).
    writes: Path | None = None

    @staticmethod
    def own_line(line: str) -> bool:
        return True

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name})"


class BanListFile(Action):
    """A plain list of banned addresses, one per line, rewritten atomically."""

    option, metavar, help = "--ban-list", "FILE", "action: a plain list of banned addresses"

    def __init__(self, path: str | Path) -> None:
        self.path, self.name = Path(path), f"ban list {path}"
        self.writes = self.path

    @staticmethod
    def own_line(line: str) -> bool:
        return not line.strip() or ip_version(line.strip()) is not None

    def apply(self, changes: list[Change], active: list[Ban]) -> None:
        replace_text(self.path, "".join(f"{b.address}\n" for b in sorted(active, key=lambda b: b.address)))


class NginxDeny(Action):
    """An nginx include of ``deny ADDRESS;`` lines, and a reload command run when it changed.

    Include it in a ``server`` or ``location`` block; nginx answers 403 to the banned.
    """

    options = ("--nginx",)

    @classmethod
    def add_options(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--nginx", metavar="FILE", help="action: an nginx include of deny lines")
        parser.add_argument("--nginx-reload", metavar="COMMAND",
                            help="run after the include changed, e.g. 'nginx -s reload'")  # fmt: skip

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> list[Action]:
        if args.nginx_reload and not args.nginx:
            raise ValueError("--nginx-reload runs after the nginx include changed: give the include with --nginx FILE.")
        return [cls(args.nginx, args.nginx_reload)] if args.nginx else []

    def __init__(self, path: str | Path, reload: str | None = None) -> None:
        self.path, self.reload = Path(path), shlex.split(reload) if reload else None
        self.name, self.writes = f"nginx include {path}", self.path

    @staticmethod
    def own_line(line: str) -> bool:  # what apply writes (deny lines under a comment), or a placeholder
        return line.lstrip().startswith(("#", "deny ")) or not line.strip()

    def apply(self, changes: list[Change], active: list[Ban]) -> None:
        lines = [f"deny {b.address};  # until {time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(b.until))}Z\n"
                 for b in sorted(active, key=lambda b: b.address)]  # fmt: skip
        if replace_text(self.path, "# managed by nnscratch logs watch\n" + "".join(lines)) and self.reload:
            _run(self.reload)


class NftablesSet(Action):
    """nftables sets with per-element timeouts (``banned4``/``banned6`` in table ``inet nnscratch``);
    interval sets, so that a range ban (a CIDR network) is one element.

    With ``apply`` the commands go to ``nft -f -`` (the table, the sets and an
    input chain that drops their members are created first); without it they
    are appended to ``script`` for the operator to review or feed to ``nft -f``.
    """

    options = ("--nft-apply", "--nft-script")

    @classmethod
    def add_options(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--nft", action="store_true",
                            help="action: nftables sets with timeouts; with --nft-apply or --nft-script")  # fmt: skip
        parser.add_argument("--nft-table", default="nnscratch", help="the nftables table (family inet)")
        parser.add_argument("--nft-apply", action="store_true",
                            help="action: run nft (creates the table, sets and a drop chain)")  # fmt: skip
        parser.add_argument("--nft-script", metavar="FILE",
                            help="action: append the nft commands to FILE instead of running them")  # fmt: skip

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> list[Action]:
        if args.nft_apply or args.nft_script:
            return [cls(args.nft_table, apply=args.nft_apply, script=args.nft_script)]
        if args.nft:
            raise ValueError("--nft needs a way to reach nftables: --nft-apply (run nft now) or --nft-script FILE "
                             "(append the commands to FILE).")  # fmt: skip
        return []

    def __init__(self, table: str = "nnscratch", apply: bool = False, script: str | Path | None = None) -> None:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", table):  # it goes into nft's commands as it is
            raise ValueError(f"--nft-table must be a name of letters, digits and '_' (at most 64, not starting with a "
                             f"digit). Received: {table!r}.")  # fmt: skip
        self.table, self.do_apply, self.script = table, apply, Path(script) if script else None
        self.name, self.writes = f"nftables table inet {table}", self.script
        self._ready = False

    @staticmethod
    def own_line(line: str) -> bool:  # the script is appended to: only nft commands of ours before
        return line.startswith(("add ", "delete ", "flush ")) or not line.strip()

    def setup_commands(self) -> list[str]:
        t = f"inet {self.table}"
        return [f"add table {t}",
                f"add set {t} banned4 {{ type ipv4_addr; flags interval, timeout; }}",
                f"add set {t} banned6 {{ type ipv6_addr; flags interval, timeout; }}",
                f"add chain {t} input {{ type filter hook input priority -10; policy accept; }}",
                f"flush chain {t} input",
                f"add rule {t} input ip saddr @banned4 drop",
                f"add rule {t} input ip6 saddr @banned6 drop"]  # fmt: skip

    def commands(self, changes: list[Change]) -> list[str]:
        out = []
        for c in changes:
            family = "banned6" if ip_version(c.address) == 6 else "banned4"
            element = f"inet {self.table} {family} {{ {c.address}"
            if c.event in ("ban", "extend", "restore"):
                if c.event == "extend":
                    out.append(f"delete element {element} }}")
                out.append(f"add element {element} timeout {max(int(c.seconds), 1)}s }}")
            else:
                out.append(f"delete element {element} }}")
        return out

    def apply(self, changes: list[Change], active: list[Ban]) -> None:
        commands = self.commands(changes)
        if self.do_apply:
            if not self._ready:
                _run(["nft", "-f", "-"], "\n".join(self.setup_commands()) + "\n")
                self._ready = True
            for command in commands:  # one at a time: deleting an element that expired is not an error here
                try:
                    _run(["nft", "-f", "-"], command + "\n")
                except RuntimeError:
                    if not command.startswith("delete"):
                        raise
        elif self.script is not None and commands:
            with self.script.open("a", encoding="utf-8") as f:
                f.write("".join(f"{command}\n" for command in commands))


class IpsetRestore(Action):
    """A file in ``ipset restore`` format: two sets (an ipset holds one address family), each
    flushed and filled with the active bans of its family and their remaining time:
    ``nnscratch`` (IPv4) and ``nnscratch6`` (IPv6, ``family inet6``); ``hash:net`` sets, which
    hold single addresses and range bans (CIDR networks) alike."""

    option, metavar, help = "--ipset", "FILE", "action: a file in 'ipset restore' format (sets NAME and NAME6)"

    def __init__(self, path: str | Path, set_name: str = "nnscratch") -> None:
        self.path, self.set_name, self.name = Path(path), set_name, f"ipset file {path}"
        self.writes = self.path

    @staticmethod
    def own_line(line: str) -> bool:
        return line.startswith(("create ", "flush ", "add ")) or not line.strip()

    def apply(self, changes: list[Change], active: list[Ban]) -> None:
        now = time.time()
        lines = []
        for version, name, family in ((4, self.set_name, ""), (6, self.set_name + "6", " family inet6")):
            lines += [f"create {name} hash:net{family} timeout 0 -exist\n", f"flush {name}\n"]
            lines += [f"add {name} {b.address} timeout {max(int(b.remaining(now)), 1)} -exist\n"
                      for b in sorted(active, key=lambda b: b.address)
                      if ip_version(b.address) == version]  # fmt: skip
        replace_text(self.path, "".join(lines))


class Fail2ban(Action):
    """``fail2ban-client set JAIL banip ADDRESS`` on a ban, an extension or a restore, and
    ``unbanip`` on an unban. fail2ban 1.0's ``banip`` takes no duration (the jail's
    ``bantime`` applies), so the watcher lifts its bans itself with ``unbanip``; a jail
    whose ``bantime`` is shorter than a ban would lift it early, and that is reported once
    (set ``bantime = -1`` in the jail to leave every lift to the watcher).
    ``client_args`` go before the command (``-c CONFDIR -s SOCKET`` for a private server)."""

    options = ("--fail2ban",)

    @classmethod
    def add_options(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--fail2ban", metavar="JAIL", help="action: fail2ban-client set JAIL banip/unbanip")
        parser.add_argument(
            "--fail2ban-client-args",
            metavar="ARGS",
            default="",
            help="options for fail2ban-client, e.g. '-c /etc/fail2ban -s /run/fail2ban/fail2ban.sock'",
        )

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> list[Action]:
        if args.fail2ban_client_args and not args.fail2ban:
            raise ValueError("--fail2ban-client-args are options for the fail2ban action: name its jail with "
                             "--fail2ban JAIL.")  # fmt: skip
        return [cls(args.fail2ban, client_args=args.fail2ban_client_args)] if args.fail2ban else []

    def __init__(self, jail: str, client: str = "fail2ban-client", client_args: str = "") -> None:
        self.jail, self.name = jail, f"fail2ban jail {jail}"
        self.client = [client, *shlex.split(client_args)]
        self.bantime: float | None = None  # the jail's, asked once; negative: bans never expire there
        self.notes: list[str] = []  # said once by Actions
        self._warned = False

    def _call(self, *command: str) -> str:
        try:
            return _run([*self.client, *command])
        except RuntimeError as err:
            if "does not exist" in str(err):
                raise RuntimeError(f"fail2ban has no jail {self.jail!r}: create it (a jail.local section "
                                   f"[{self.jail}] with enabled = true) or name an existing one with "
                                   "--fail2ban JAIL") from None  # fmt: skip
            raise

    def apply(self, changes: list[Change], active: list[Ban]) -> None:
        if self.bantime is None:
            if not changes:
                return
            said = self._call("get", self.jail, "bantime").split()
            self.bantime = float(said[-1]) if said and re.fullmatch(r"-?\d+(\.\d+)?", said[-1]) else -1.0
        for c in changes:
            if c.event in ("ban", "extend", "restore"):
                self._call("set", self.jail, "banip", c.address)
                if 0 <= self.bantime < c.seconds and not self._warned:
                    self._warned = True
                    self.notes.append(f"warning: fail2ban's jail {self.jail} lifts bans after {self.bantime:g} s (its "
                                      f"bantime), sooner than this watcher's {c.seconds:.0f} s ban of {c.address}: "
                                      "set bantime = -1 in the jail to leave the lifting to the watcher")  # fmt: skip
            elif c.event == "unban":
                self._call("set", self.jail, "unbanip", c.address)


class CrowdsecDecisions(Action):
    """A decisions file that ``cscli decisions import -i FILE`` accepts: every active ban."""

    option, metavar, help = "--crowdsec", "FILE", "action: a decisions file for 'cscli decisions import -i'"

    def __init__(self, path: str | Path) -> None:
        self.path, self.name = Path(path), f"CrowdSec decisions {path}"
        self.writes = self.path

    @staticmethod
    def own_line(line: str) -> bool:  # json.dumps(rows, indent=1): a list of flat objects
        return line.strip()[:1] in ("", "[", "]", "{", "}", '"')

    def apply(self, changes: list[Change], active: list[Ban]) -> None:
        now = time.time()
        rows = [
            {
                "duration": f"{max(int(b.remaining(now)), 1)}s",
                "reason": f"nnscratch: {b.reason}"[:200],
                "scope": "range" if is_network(b.address) else "ip",
                "type": "ban",
                "value": b.address,
            }
            for b in sorted(active, key=lambda b: b.address)
        ]
        replace_text(self.path, json.dumps(rows, indent=1) + "\n")


class CrowdsecCscli(Action):
    """CrowdSec's own decisions, through ``cscli``: ``cscli decisions add --ip ADDRESS
    --duration Ns --type ban --reason ...`` on a ban, ``cscli decisions delete --ip ADDRESS``
    on an unban. An extension or a restore deletes first, so CrowdSec never holds two
    decisions for one address; its bouncers then enforce them. (``cscli decisions list``
    shows decisions added this way; imported ones need ``-a``.)"""

    option, metavar = "--cscli", "COMMAND"
    help = "action: CrowdSec decisions through this cscli command (e.g. cscli, or 'cscli -c FILE')"

    def __init__(self, cscli: str = "cscli") -> None:
        self.cscli, self.name = shlex.split(cscli), f"CrowdSec through {cscli}"

    def apply(self, changes: list[Change], active: list[Ban]) -> None:
        for c in changes:
            scope = "--range" if is_network(c.address) else "--ip"
            if c.event in ("unban", "extend", "restore"):
                _run([*self.cscli, "decisions", "delete", scope, c.address])
            if c.event in ("ban", "extend", "restore"):
                _run([*self.cscli, "decisions", "add", scope, c.address, "--duration", f"{max(int(c.seconds), 1)}s",
                      "--type", "ban", "--reason", f"nnscratch: {c.reason}"[:200]])  # fmt: skip


class CommandHook(Action):
    """Any command, run per change with ``{event}``, ``{address}``, ``{seconds}`` and
    ``{reason}`` filled in (each argument formatted on its own: no shell)."""

    options = ("--exec",)

    @classmethod
    def add_options(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--exec", action="append", default=[], metavar="COMMAND",
            help="action: run COMMAND per change with {event} {address} {seconds} {reason} (repeatable)",
        )  # fmt: skip

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> list[Action]:
        return [cls(command) for command in args.exec]

    addresses_only = False  # the command gets whatever the client key is

    def __init__(self, template: str) -> None:
        self.template, self.name = shlex.split(template), f"command {template}"

    def apply(self, changes: list[Change], active: list[Ban]) -> None:
        for c in changes:
            values = {"event": c.event, "address": c.address, "seconds": str(int(c.seconds)), "reason": c.reason}
            _run([part.format(**values) for part in self.template])


class JsonEvents(Action):
    """One JSON line per change (ban, unban, extend) on standard output or appended to a file."""

    option, metavar = "--events", "FILE"
    help = "action: JSON lines of ban, unban, extend and restore events (- for stdout)"
    addresses_only = False

    def __init__(self, path: str | None = None) -> None:
        self.path, self.name = path, f"events {path or 'stdout'}"
        self.writes = Path(path) if path not in (None, "-") else None

    @staticmethod
    def own_line(line: str) -> bool:  # appended to: only event lines of ours before
        return line.startswith('{"time": ') or not line.strip()

    def apply(self, changes: list[Change], active: list[Ban]) -> None:
        if not changes:
            return
        text = "".join(
            json.dumps(
                {
                    "time": time.time(),
                    "event": c.event,
                    "address": c.address,
                    "seconds": round(c.seconds, 1),
                    "reason": c.reason,
                }
            )
            + "\n"
            for c in changes
        )
        if self.path in (None, "-"):
            sys.stdout.write(text)
            sys.stdout.flush()
        else:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(text)


# Every kind of action, in the order their options are listed: a new action is a class here
# and one entry in this tuple.
ACTIONS: tuple[type[Action], ...] = (BanListFile, NginxDeny, NftablesSet, IpsetRestore, Fail2ban, CrowdsecDecisions,
                                     CrowdsecCscli, CommandHook, JsonEvents)  # fmt: skip


def add_action_options(parser: argparse.ArgumentParser) -> None:
    """Every action's options, declared by the action."""
    for kind in ACTIONS:
        kind.add_options(parser)


def actions_from_args(args: argparse.Namespace) -> list[Action]:
    """The actions the parsed options ask for, each built by its own kind."""
    return [action for kind in ACTIONS for action in kind.from_args(args)]


def action_options() -> str:
    """The options that choose an action, for messages."""
    return ", ".join(option for kind in ACTIONS for option in kind.options)


class Actions:
    """Runs every action; one that fails is retried with every change it missed, after
    ``retry_after`` seconds, then twice as long each time it fails again (at most
    ``max_retry_after``). A failure is reported once, again only when its error changes, and
    so is the recovery: a broken action never floods the log."""

    def __init__(self, actions: Sequence[Action], report: Callable[[str], Any] | None = None,
                 retry_after: float = 2.0, max_retry_after: float = 60.0) -> None:  # fmt: skip
        self.actions = list(actions)
        self.report = report or (lambda message: print(message, file=sys.stderr, flush=True))
        self.retry_after, self.max_retry_after = retry_after, max_retry_after
        self.pending: dict[int, list[Change]] = {}
        self.failed_at: dict[int, float] = {}
        self.delay: dict[int, float] = {}  # the wait before the next retry of a failing action
        self.errors: dict[int, tuple[str, int]] = {}  # its error, and how many times in a row
        self.failures = 0
        self.skipped_sessions = False
        # Told of each action's result (the metrics): the changes it carried out, or that it failed.
        self.on_applied: Callable[[Action, list[Change]], Any] | None = None
        self.on_failed: Callable[[Action], Any] | None = None

    def __repr__(self) -> str:
        return f"Actions({self.actions!r})"

    def apply(self, changes: list[Change], active: list[Ban], force: bool = False) -> None:
        now = time.monotonic()
        sessions = [c for c in changes if not is_address(c.address)]
        if sessions and not self.skipped_sessions and any(a.addresses_only for a in self.actions):
            self.skipped_sessions = True
            names = ", ".join(a.name for a in self.actions if a.addresses_only)
            self.report(
                f"note: {sessions[0].address!r} is a session id, not an address (the log has none): "
                f"{names} act on addresses and skip session clients; --exec and --events get them"
            )
        by_address = [c for c in changes if is_address(c.address)] if sessions else list(changes)
        active_addresses = [b for b in active if is_address(b.address)]
        for i, action in enumerate(self.actions):
            if action.addresses_only:
                mine, active_here = by_address, active_addresses
            else:
                mine, active_here = list(changes), active
            todo = self.pending.get(i, []) + mine
            if i in self.failed_at and not force and now - self.failed_at[i] < self.delay[i]:
                self.pending[i] = todo
                continue
            if not todo and not force and i not in self.failed_at:
                continue
            try:
                action.apply(todo, active_here)
            except Exception as err:  # noqa: BLE001 - an action must never stop the watcher
                self._failed(i, action, err, todo, now)
            else:
                self._worked(i, action)
                if self.on_applied is not None and todo:
                    self.on_applied(action, todo)
            notes: list[str] = getattr(action, "notes", [])
            while notes:
                self.report(notes.pop(0))

    def _failed(self, i: int, action: Action, err: Exception, todo: list[Change], now: float) -> None:
        self.failures += 1
        if self.on_failed is not None:
            self.on_failed(action)
        self.pending[i], self.failed_at[i] = todo, now
        self.delay[i] = min(self.delay[i] * 2, self.max_retry_after) if i in self.delay else self.retry_after
        error = f"{type(err).__name__}: {err}"
        previous, times = self.errors.get(i, ("", 0))
        self.errors[i] = (error, times + 1 if error == previous else 1)
        if error != previous:
            self.report(f"error: {action.name} failed ({error}); retrying with the {len(todo)} change(s) it "
                        f"missed in {self.delay[i]:g} s, then less often (at most every "
                        f"{self.max_retry_after:g} s); the same error is not repeated")  # fmt: skip

    def _worked(self, i: int, action: Action) -> None:
        if i in self.errors:
            self.report(f"{action.name} works again after {self.errors[i][1]} failure(s) in a row")
        for table in (self.pending, self.failed_at, self.delay, self.errors):
            table.pop(i, None)

    def close(self) -> None:
        for action in self.actions:
            closer: Callable[[], None] | None = getattr(action, "close", None)
            if closer is not None:
                closer()
