"""Real Linux network namespaces that are always cleaned up.

:class:`NetnsSet` creates namespaces, veth pairs between them, addresses, routes and
processes inside them, and removes all of it when the ``with`` block ends, even when it
ends with an exception. It is used by the interop tests (against the kernel, tshark,
strongSwan) and is the ground for the real-namespace driver::

    with NetnsSet() as s:
        mn, ha = s.add_namespace("mn"), s.add_namespace("ha")
        s.add_veth(mn, "eth0", ha, "eth0")
        s.add_address(mn, "eth0", "2001:db8:1::1/64")
        s.add_address(ha, "eth0", "2001:db8:1::2/64")
        s.run(mn, "ping", "-c", "1", "-W", "2", "2001:db8:1::2")
        daemon = s.spawn(ha, ["sleep", "60"])
    # namespaces deleted, daemon terminated

Naming: the kernel name of a namespace is ``<prefix>-<pid>-<n>-<label>`` (for example
``m6l-4242-3-mn``), where ``pid`` is the creating process and ``n`` a per-process
counter, so parallel test runs never collide and :func:`cleanup_stale` can tell the
leftovers of a dead run (creator pid gone) from namespaces still in use.

Clean-up guarantees, in order of strength:

1. ``__exit__`` (or :meth:`NetnsSet.close`) — always, also after exceptions;
2. an ``atexit`` hook for sets never closed (notebooks, KeyboardInterrupt);
3. SIGTERM and SIGHUP handlers (and SIGINT when it would otherwise kill the process)
   that clean up, then hand the signal on to the previous handler or default action;
4. :func:`cleanup_stale` for what a SIGKILLed run left behind.

Processes started with :meth:`NetnsSet.spawn` are ended by their own PID only: SIGTERM,
then SIGKILL after a grace period. Grandchildren a process forks (``sh -c 'x &'``) are
not tracked; start daemons in the foreground.

Facts worth knowing: ``ip netns del`` only unmounts the name; the kernel dismantles the
namespace (and the veth peer in the *other* namespace) asynchronously, and not at all
while a process still lives inside. Hence the order here: processes first, then veth
pairs explicitly, then namespaces.
"""

from __future__ import annotations

import atexit
import ipaddress
import itertools
import logging
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

__all__ = [
    "DEFAULT_PREFIX",
    "CleanupError",
    "CommandFailed",
    "Namespace",
    "NetnsSet",
    "Veth",
    "cleanup_stale",
    "list_namespaces",
    "netns_available",
]

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "m6l"
IFNAMSIZ = 15  # longest Linux interface name (16 bytes with the NUL)

_LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.]{0,31}$")
_PREFIX_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,15}$")
_counter = itertools.count(1)  # shared by all sets of this process: names stay unique


class CommandFailed(subprocess.CalledProcessError):
    """A command run by :class:`NetnsSet` failed; the message includes its stderr."""

    def __str__(self) -> str:
        text = f"command {' '.join(map(str, self.cmd))!r} exited with status {self.returncode}"
        err = self.stderr.strip() if isinstance(self.stderr, str) else ""
        return f"{text}: {err}" if err else text


class CleanupError(RuntimeError):
    """Something could not be removed; ``errors`` lists what and why."""

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors = list(errors)
        super().__init__("network namespace clean-up incomplete:\n  " + "\n  ".join(errors))


@dataclass(frozen=True)
class Namespace:
    """A namespace of a :class:`NetnsSet`: ``label`` as given, ``name`` as the kernel knows it."""

    label: str
    name: str

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Veth:
    """A veth pair: end ``a`` = (namespace, ifname), end ``b`` likewise."""

    ns_a: Namespace
    if_a: str
    ns_b: Namespace
    if_b: str


def _ip_binary() -> str:
    path = shutil.which("ip")
    if path is None:
        raise FileNotFoundError("'ip' not found: install iproute2 (scripts/install-system-deps)")
    return path


def _execute(argv: Sequence[str], *, check: bool = True, timeout: float | None = 30,
             input: str | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                          input=input, check=False)
    if check and proc.returncode != 0:
        raise CommandFailed(proc.returncode, proc.args, proc.stdout, proc.stderr)
    return proc


def list_namespaces() -> list[str]:
    """Names of all named network namespaces (``ip netns list``)."""
    out = _execute([_ip_binary(), "netns", "list"]).stdout
    # Lines look like "name" or "name (id: 3)".
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stale_pattern(prefix: str) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(prefix)}-(\d+)-(\d+)-(.+)$")


def cleanup_stale(prefix: str = DEFAULT_PREFIX, *, kill_orphans: bool = False) -> list[str]:
    """Delete namespaces named ``<prefix>-<pid>-<n>-<label>`` whose creating pid is dead.

    Returns the names removed. A stale namespace that still holds processes (orphans of
    a run killed with SIGKILL) is skipped with a warning unless ``kill_orphans`` is true:
    then those processes, found with ``ip netns pids``, are killed by PID first.
    Namespaces of live processes (including this one) are never touched.
    """
    pattern = _stale_pattern(prefix)
    removed = []
    for name in list_namespaces():
        match = pattern.match(name)
        if not match or _pid_alive(int(match.group(1))):
            continue
        pids = [int(p) for p in _execute([_ip_binary(), "netns", "pids", name],
                                         check=False).stdout.split()]
        if pids and not kill_orphans:
            log.warning("stale namespace %s still holds processes %s; skipped", name, pids)
            continue
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if _execute([_ip_binary(), "netns", "del", name], check=False).returncode == 0:
            removed.append(name)
    return removed


@cache
def netns_available() -> tuple[bool, str]:
    """Whether this process can create network namespaces: (ok, explanation).

    Really creates and deletes one namespace (once per process; the result is cached).
    """
    if os.geteuid() != 0:
        return False, "not running as root"
    try:
        ip = _ip_binary()
    except FileNotFoundError as exc:
        return False, str(exc)
    name = f"{DEFAULT_PREFIX}-{os.getpid()}-{next(_counter)}-probe"
    proc = _execute([ip, "netns", "add", name], check=False)
    if proc.returncode != 0:
        return False, f"'ip netns add' failed: {proc.stderr.strip()}"
    _execute([ip, "netns", "del", name], check=False)
    return True, "ok"


# --------------------------------------------------------------------------- registry
# Sets not yet closed, for the atexit hook and the signal handlers.
_live: dict[int, NetnsSet] = {}
_hooks_lock = threading.Lock()
_hooks_installed = False
_previous_handlers: dict[int, object] = {}


def _cleanup_all() -> None:
    for netns_set in list(_live.values()):
        try:
            netns_set.close(raise_errors=False)
        except Exception:  # pragma: no cover - last-resort path, never propagate
            log.exception("clean-up of %r failed", netns_set)


def _on_signal(signum: int, frame: object) -> None:
    _cleanup_all()
    previous = _previous_handlers.get(signum, signal.SIG_DFL)
    if callable(previous):
        previous(signum, frame)
    elif previous == signal.SIG_IGN:
        return
    else:  # default action: restore it and deliver the signal again
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def _install_hooks() -> None:
    global _hooks_installed
    with _hooks_lock:
        if _hooks_installed:
            return
        _hooks_installed = True
        atexit.register(_cleanup_all)
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread; atexit remains
        for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            current = signal.getsignal(signum)
            if current == signal.SIG_IGN:
                continue
            if signum == signal.SIGINT and current is signal.default_int_handler:
                # KeyboardInterrupt already unwinds through __exit__ / atexit, and in a
                # notebook it must interrupt a cell, not tear the lab down.
                continue
            _previous_handlers[signum] = current
            signal.signal(signum, _on_signal)


# --------------------------------------------------------------------------- NetnsSet
class NetnsSet:
    """A group of network namespaces, veth pairs and processes with one lifetime.

    Use as a context manager; :meth:`close` is idempotent. ``prefix`` must be short and
    alphanumeric; ``kill_timeout`` is the grace period between SIGTERM and SIGKILL for
    spawned processes.

    IPv6 duplicate address detection is switched off in every namespace unless
    ``ipv6_dad`` is true: with DAD on, a new link-local address stays *tentative* for
    one to two seconds, and a router cannot resolve a neighbour for a forwarded packet
    until it is not (measured: the first forwarded ping waits ~1 s), which makes tests
    flaky. ``add_address`` also passes ``nodad`` for the same reason.
    """

    def __init__(self, prefix: str = DEFAULT_PREFIX, *, kill_timeout: float = 3.0,
                 ipv6_dad: bool = False) -> None:
        if not _PREFIX_RE.match(prefix):
            raise ValueError(f"prefix must be 1-16 alphanumerics starting with a letter: {prefix!r}")
        self.prefix = prefix
        self.kill_timeout = kill_timeout
        self.ipv6_dad = ipv6_dad
        self._ip = _ip_binary()
        self._owner_pid = os.getpid()
        self._namespaces: dict[str, Namespace] = {}  # label -> Namespace
        self._veths: list[Veth] = []
        self._procs: list[subprocess.Popen] = []
        self._closed = False
        _install_hooks()
        _live[id(self)] = self

    # -- context manager -------------------------------------------------------------
    def __enter__(self) -> NetnsSet:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        # Clean-up errors are raised only when no other exception is on its way.
        self.close(raise_errors=exc_type is None)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<NetnsSet {state} {sorted(ns.name for ns in self._namespaces.values())}>"

    # -- introspection ---------------------------------------------------------------
    @property
    def namespaces(self) -> list[Namespace]:
        """The namespaces created so far, in creation order."""
        return list(self._namespaces.values())

    @property
    def names(self) -> list[str]:
        """Kernel names of the namespaces created so far."""
        return [ns.name for ns in self._namespaces.values()]

    @property
    def processes(self) -> list[subprocess.Popen]:
        """The processes started with :meth:`spawn` (running or not)."""
        return list(self._procs)

    @property
    def veths(self) -> list[Veth]:
        return list(self._veths)

    def namespace(self, ns: Namespace | str) -> Namespace:
        """The namespace of this set given as object, label or kernel name."""
        if isinstance(ns, Namespace):
            if self._namespaces.get(ns.label) == ns:
                return ns
        elif ns in self._namespaces:
            return self._namespaces[ns]
        else:
            for candidate in self._namespaces.values():
                if candidate.name == ns:
                    return candidate
        raise KeyError(f"{ns!r} is not a namespace of {self!r}")

    # -- building ----------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this NetnsSet is closed")

    def _ipcmd(self, *args: str, ns: Namespace | None = None, check: bool = True
               ) -> subprocess.CompletedProcess[str]:
        argv = [self._ip] + (["-n", ns.name] if ns is not None else []) + list(args)
        return _execute(argv, check=check)

    def add_namespace(self, label: str) -> Namespace:
        """Create a namespace (loopback up) and return it."""
        self._check_open()
        if not _LABEL_RE.match(label):
            raise ValueError(f"label must be 1-32 characters [A-Za-z0-9_.]: {label!r}")
        if label in self._namespaces:
            raise ValueError(f"namespace label {label!r} already used in this set")
        ns = Namespace(label, f"{self.prefix}-{os.getpid()}-{next(_counter)}-{label}")
        # Registered before creation: a signal arriving in between still removes it.
        self._namespaces[label] = ns
        try:
            self._ipcmd("netns", "add", ns.name)
        except Exception:
            del self._namespaces[label]
            raise
        self._ipcmd("link", "set", "lo", "up", ns=ns)
        if not self.ipv6_dad:
            # Applies to the interfaces created later in this namespace (veths).
            self.sysctl(ns, "net.ipv6.conf.default.accept_dad", 0)
            self.sysctl(ns, "net.ipv6.conf.all.accept_dad", 0)
        return ns

    def add_veth(self, ns_a: Namespace | str, if_a: str, ns_b: Namespace | str, if_b: str,
                 *, up: bool = True, mtu: int | None = None) -> Veth:
        """Join two namespaces with a veth pair, created directly inside them.

        Both ends may carry the same name (``eth0``): they never meet in one namespace.
        """
        self._check_open()
        a, b = self.namespace(ns_a), self.namespace(ns_b)
        for ifname in (if_a, if_b):
            if not 0 < len(ifname) <= IFNAMSIZ or "/" in ifname or " " in ifname:
                raise ValueError(f"invalid interface name {ifname!r} (at most {IFNAMSIZ} characters)")
        extra = ["mtu", str(mtu)] if mtu is not None else []
        self._ipcmd("link", "add", "name", if_a, "netns", a.name, *extra,
                    "type", "veth", "peer", "name", if_b, "netns", b.name, *extra)
        veth = Veth(a, if_a, b, if_b)
        self._veths.append(veth)
        if up:
            self.link_up(a, if_a)
            self.link_up(b, if_b)
        return veth

    def link_up(self, ns: Namespace | str, ifname: str) -> None:
        self._ipcmd("link", "set", ifname, "up", ns=self.namespace(ns))

    def link_down(self, ns: Namespace | str, ifname: str) -> None:
        self._ipcmd("link", "set", ifname, "down", ns=self.namespace(ns))

    def add_address(self, ns: Namespace | str, ifname: str, address: str) -> None:
        """Add ``address`` (with prefix length) to ``ifname``; IPv6 skips DAD (``nodad``)."""
        iface = ipaddress.ip_interface(address)
        if iface.version == 6:
            self._ipcmd("-6", "addr", "add", str(iface), "dev", ifname, "nodad",
                        ns=self.namespace(ns))
        else:
            self._ipcmd("-4", "addr", "add", str(iface), "dev", ifname, ns=self.namespace(ns))

    def add_route(self, ns: Namespace | str, destination: str, *, via: str | None = None,
                  dev: str | None = None) -> None:
        """Add a route (``destination`` may be ``default``; give ``via`` and/or ``dev``)."""
        if via is None and dev is None:
            raise ValueError("add_route needs via= or dev=")
        if destination == "default":
            if via is None:
                raise ValueError("a default route needs via= (or write ::/0 or 0.0.0.0/0)")
            family = f"-{ipaddress.ip_address(via).version}"
        else:
            family = f"-{ipaddress.ip_network(destination, strict=False).version}"
        args = [family, "route", "add", destination]
        if via is not None:
            args += ["via", via]
        if dev is not None:
            args += ["dev", dev]
        self._ipcmd(*args, ns=self.namespace(ns))

    def sysctl(self, ns: Namespace | str, key: str, value: str | int) -> None:
        """Set a sysctl (``net.ipv6.conf.all.forwarding``) inside the namespace."""
        if not re.match(r"^net\.[A-Za-z0-9_.\-/]+$", key):
            raise ValueError(f"only net.* sysctls are per namespace: {key!r}")
        path = "/proc/sys/" + key.replace(".", "/")
        # /proc/sys/net shows the namespace of the *writer*, hence the write from inside.
        self.run(ns, "sh", "-c", 'printf "%s\\n" "$1" > "$2"', "sh", str(value), path)

    def enable_forwarding(self, ns: Namespace | str, *, ipv4: bool = True,
                          ipv6: bool = True) -> None:
        """Turn the namespace into a router."""
        if ipv4:
            self.sysctl(ns, "net.ipv4.ip_forward", 1)
        if ipv6:
            self.sysctl(ns, "net.ipv6.conf.all.forwarding", 1)

    # -- processes ---------------------------------------------------------------------
    def _exec_argv(self, ns: Namespace | str, argv: Sequence[str]) -> list[str]:
        if isinstance(argv, str):
            raise TypeError("give the command as a sequence of arguments, not a string")
        if not argv:
            raise ValueError("empty command")
        return [self._ip, "netns", "exec", self.namespace(ns).name, *map(str, argv)]

    def run(self, ns: Namespace | str, *argv: str, check: bool = True,
            timeout: float | None = 30, input: str | None = None
            ) -> subprocess.CompletedProcess[str]:
        """Run a command to completion inside ``ns``; output captured as text.

        With ``check`` a non-zero exit raises :class:`CommandFailed` (stderr in message).
        """
        self._check_open()
        return _execute(self._exec_argv(ns, argv), check=check, timeout=timeout, input=input)

    def spawn(self, ns: Namespace | str, argv: Sequence[str], **popen_kwargs
              ) -> subprocess.Popen:
        """Start a long-running process inside ``ns``; it is ended at clean-up.

        ``ip netns exec`` execs the command, so the returned Popen's pid is the command's
        own pid. Extra keyword arguments go to :class:`subprocess.Popen` (default: stdin
        from /dev/null, output inherited).
        """
        self._check_open()
        popen_kwargs.setdefault("stdin", subprocess.DEVNULL)
        proc = subprocess.Popen(self._exec_argv(ns, argv), **popen_kwargs)
        self._procs.append(proc)
        return proc

    def _stop_processes(self, errors: list[str]) -> None:
        running = [p for p in self._procs if p.poll() is None]
        for proc in running:
            try:
                proc.terminate()  # SIGTERM to this PID only
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + self.kill_timeout
        for proc in running:
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0.0))
            except subprocess.TimeoutExpired:
                proc.kill()  # SIGKILL to this PID only
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    errors.append(f"process {proc.pid} ({proc.args!r}) survived SIGKILL")

    # -- clean-up ----------------------------------------------------------------------
    def close(self, *, raise_errors: bool = True) -> None:
        """Stop spawned processes, delete veth pairs and namespaces. Idempotent.

        Never runs in a forked child (the parent owns the namespaces).
        """
        if self._closed or os.getpid() != self._owner_pid:
            return
        self._closed = True
        errors: list[str] = []
        try:
            self._stop_processes(errors)
        except Exception as exc:  # keep going: the namespaces must still be removed
            errors.append(f"stopping processes: {type(exc).__name__}: {exc}")
        try:
            existing: set[str] | None = set(list_namespaces())
        except Exception:
            existing = None  # cannot list: just try to delete everything of ours
        try:
            for veth in self._veths:
                if existing is None or veth.ns_a.name in existing:
                    # Deleting one end removes its peer; failure is harmless (gone already).
                    self._ipcmd("link", "del", veth.if_a, ns=veth.ns_a, check=False)
            for ns in reversed(list(self._namespaces.values())):
                if existing is not None and ns.name not in existing:
                    continue
                leftover = self._ipcmd("netns", "pids", ns.name, check=False).stdout.split()
                if leftover:
                    # Not ours to end (children of spawned processes): say so, since the
                    # namespace lives on, unnamed, until they exit.
                    log.warning("namespace %s still holds processes %s not started by "
                                "spawn(); it persists until they exit", ns.name, leftover)
                proc = self._ipcmd("netns", "del", ns.name, check=False)
                if proc.returncode != 0 and (existing is not None
                                             or "No such file" not in proc.stderr):
                    errors.append(f"ip netns del {ns.name}: {proc.stderr.strip()}")
        except Exception as exc:  # the hooks must never raise mid-signal
            errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            _live.pop(id(self), None)
        if errors:
            if raise_errors:
                raise CleanupError(errors)
            log.error("network namespace clean-up incomplete: %s", "; ".join(errors))
