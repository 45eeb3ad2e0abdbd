"""tshark as the oracle for our captures: every pcap we write must dissect cleanly.

Two entry points:

``check_capture(path)``
    Runs tshark over a pcap/pcapng file and raises :class:`CaptureCheckError` when tshark
    fails, when a frame is marked malformed, or when a dissector reports an expert item of
    severity *warning* or above (threshold adjustable with ``fail_on``). Returns a
    :class:`CaptureReport` (frame count, protocols seen) when the capture is clean.

``tshark_fields(path, fields)``
    Returns the dissected values of the named fields, one dict per frame, so tests can
    assert on what Wireshark *understood* rather than on what we meant to write.

How the checks are made (facts measured with tshark 4.0.17):

* Checksum validation is off by default for IPv4, UDP and TCP; it is switched on with
  ``-o ip.check_checksum:TRUE``, ``-o udp.check_checksum:TRUE`` and
  ``-o tcp.check_checksum:TRUE``. ICMP and ICMPv6 have no such preference: their
  checksums are always verified.
* A bad IPv4/UDP/TCP checksum is an expert item of severity *Error*, but a bad ICMP or
  ICMPv6 checksum is only a *Warning*; an IPv6 payload length larger than the data is
  also a *Warning* (group Protocol). Hence the default threshold ``fail_on="warning"``.
  Any item of group *Checksum* or *Malformed* fails regardless of the threshold.
* An unknown ``-o`` preference makes tshark exit with status 1, so a misspelt preference
  can never silently disable a check.
* tshark runs with ``-n`` (no name resolution) and with ``WIRESHARK_CONFIG_DIR`` pointed
  at ``keys_dir`` (or an empty temporary directory), so the user's own Wireshark
  preferences never change the verdict. Put decryption tables (``esp_sa``,
  ``ikev2_decryption_table``) in ``keys_dir`` to let tshark decrypt ESP and IKEv2.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = [
    "CHECKSUM_PREFS",
    "CaptureCheckError",
    "CaptureReport",
    "Problem",
    "TsharkError",
    "ToolMissing",
    "check_capture",
    "find_tshark",
    "tshark_fields",
]

#: Preferences that make tshark validate checksums (all exist in tshark 4.0).
CHECKSUM_PREFS: tuple[str, ...] = (
    "ip.check_checksum:TRUE",
    "udp.check_checksum:TRUE",
    "tcp.check_checksum:TRUE",
)

#: Preference that lets tshark decrypt ESP with the SAs found in ``keys_dir/esp_sa``.
ESP_DECRYPT_PREF = "esp.enable_encryption_decode:TRUE"

# Expert-info severities and groups as encoded by epan/proto.h (PI_* constants).
_SEVERITY = {
    0x00100000: "comment",
    0x00200000: "chat",
    0x00400000: "note",
    0x00600000: "warning",
    0x00800000: "error",
}
_SEVERITY_RANK = {"comment": 1, "chat": 2, "note": 3, "warning": 4, "error": 5}
_GROUP = {
    0x01000000: "checksum",
    0x02000000: "sequence",
    0x03000000: "response-code",
    0x04000000: "request-code",
    0x05000000: "undecoded",
    0x06000000: "reassemble",
    0x07000000: "malformed",
    0x08000000: "debug",
    0x09000000: "protocol",
    0x0A000000: "security",
    0x0B000000: "comments",
    0x0C000000: "decryption",
    0x0D000000: "assumption",
    0x0E000000: "deprecated",
}
# Groups that fail the check at any severity.
_ALWAYS_FATAL_GROUPS = frozenset({"checksum", "malformed"})

_CHECK_FIELDS = (
    "frame.number",
    "frame.protocols",
    "_ws.malformed",
    "_ws.expert.severity",
    "_ws.expert.group",
    "_ws.expert.message",
)


class TsharkError(RuntimeError):
    """tshark could not be run or did not understand the request."""


class ToolMissing(TsharkError):
    """The tshark executable is not installed (Debian package ``tshark``)."""


@dataclass(frozen=True)
class Problem:
    """One finding of tshark on one frame (``frame`` is None for whole-file problems)."""

    frame: int | None
    severity: str
    group: str
    message: str

    def __str__(self) -> str:
        where = f"frame {self.frame}" if self.frame is not None else "capture"
        return f"{where}: [{self.severity}/{self.group}] {self.message}"


@dataclass(frozen=True)
class CaptureReport:
    """What tshark saw in a capture that passed the check.

    ``protocols`` is the union of the ``frame.protocols`` chains, ``frame_protocols`` each
    frame's chain (e.g. ``"eth:ethertype:ipv6:icmpv6:data"``) in order, and ``problems``
    the expert items below the failure threshold (kept for the reader, e.g. warnings
    when ``fail_on="error"``).
    """

    path: str
    frames: int
    protocols: frozenset[str]
    frame_protocols: tuple[str, ...] = ()
    problems: tuple[Problem, ...] = ()


class CaptureCheckError(AssertionError):
    """A capture failed the tshark check; ``problems`` lists frame numbers and messages."""

    def __init__(
        self,
        path: str,
        problems: Sequence[Problem],
        *,
        returncode: int = 0,
        stderr: str = "",
    ) -> None:
        self.path = path
        self.problems = tuple(problems)
        self.returncode = returncode
        self.stderr = stderr
        lines = [f"tshark check failed for {path}:"]
        lines += [f"  {p}" for p in self.problems]
        if returncode:
            lines.append(f"  tshark exited with status {returncode}")
        if stderr:
            lines.append("  stderr: " + stderr.strip().replace("\n", "\n          "))
        super().__init__("\n".join(lines))


def find_tshark() -> str:
    """Full path of tshark, or :class:`ToolMissing`."""
    path = shutil.which("tshark")
    if path is None:
        raise ToolMissing(
            "tshark not found on PATH; install it with scripts/install-system-deps "
            "(Debian package tshark)"
        )
    return path


def _clean_stderr(text: str) -> str:
    # tshark always complains when run as root; that line is noise, not a diagnosis.
    return "\n".join(
        line for line in text.splitlines() if not line.startswith("Running as user")
    )


def _run_tshark(
    path: str | os.PathLike[str],
    fields: Iterable[str],
    *,
    display_filter: str | None,
    decode_as: Iterable[str],
    options: Iterable[str],
    keys_dir: str | os.PathLike[str] | None,
) -> tuple[int, list[dict[str, list[str]]], str]:
    """Run tshark with ``-T json -e ...``; return (status, per-frame layers, stderr)."""
    tshark = find_tshark()
    capture = Path(path)
    if not capture.is_file():
        raise FileNotFoundError(f"capture file not found: {capture}")
    argv = [tshark, "-n", "-r", str(capture), "-T", "json"]
    prefs = list(CHECKSUM_PREFS)
    if keys_dir is not None:
        prefs.append(ESP_DECRYPT_PREF)
    prefs += list(options)
    for pref in prefs:
        argv += ["-o", pref]
    for rule in decode_as:
        argv += ["-d", rule]
    if display_filter:
        argv += ["-Y", display_filter]
    for name in fields:
        argv += ["-e", name]

    with tempfile.TemporaryDirectory(prefix="m6l-wireshark-") as empty_dir:
        env = dict(os.environ)
        env["WIRESHARK_CONFIG_DIR"] = str(keys_dir) if keys_dir is not None else empty_dir
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    stderr = _clean_stderr(proc.stderr)
    frames: list[dict[str, list[str]]] = []
    if proc.stdout.strip():
        try:
            packets = json.loads(proc.stdout)
        except json.JSONDecodeError as exc:
            if proc.returncode == 0:
                raise TsharkError(f"tshark produced unreadable JSON: {exc}") from exc
            packets = []  # tshark died mid-output; the exit status says why
        for packet in packets:
            layers = packet.get("_source", {}).get("layers", {})
            frames.append({k: [str(v) for v in vals] for k, vals in layers.items()})
    return proc.returncode, frames, stderr


def _severity_name(raw: str) -> str:
    try:
        return _SEVERITY.get(int(raw, 0), raw)
    except ValueError:
        text = raw.strip().lower()
        return "warning" if text.startswith("warn") else text


def _group_name(raw: str) -> str:
    try:
        return _GROUP.get(int(raw, 0), raw)
    except ValueError:
        return raw.strip().lower()


def check_capture(
    path: str | os.PathLike[str],
    *,
    decode_as: Iterable[str] = (),
    options: Iterable[str] = (),
    keys_dir: str | os.PathLike[str] | None = None,
    fail_on: Literal["warning", "error"] = "warning",
) -> CaptureReport:
    """Dissect ``path`` with tshark and fail on anything malformed.

    ``decode_as`` entries go to ``-d`` (e.g. ``"udp.port==4191,ipv6"`` for DSMIP6),
    ``options`` entries to ``-o`` (``"name:value"``, added after the checksum preferences
    so they can override them). ``keys_dir`` is used as tshark's configuration directory
    (decryption tables). ``fail_on`` is the lowest expert severity that fails the check;
    checksum and malformed items fail at any severity.

    Raises :class:`CaptureCheckError` on a non-zero tshark exit, a malformed frame or a
    failing expert item; :class:`ToolMissing` when tshark is absent.
    """
    if fail_on not in ("warning", "error"):
        raise ValueError("fail_on must be 'warning' or 'error'")
    decode_as, options = tuple(decode_as), tuple(options)
    status, frames, stderr = _run_tshark(
        path,
        _CHECK_FIELDS,
        display_filter=None,
        decode_as=decode_as,
        options=options,
        keys_dir=keys_dir,
    )
    threshold = _SEVERITY_RANK[fail_on]
    fatal: list[Problem] = []
    minor: list[Problem] = []
    protocols: set[str] = set()
    chains: list[str] = []

    for index, layers in enumerate(frames, start=1):
        numbers = layers.get("frame.number", [])
        number = int(numbers[0]) if numbers else index
        chain = (layers.get("frame.protocols") or [""])[0]
        chains.append(chain)
        protocols.update(p for p in chain.split(":") if p)

        severities = layers.get("_ws.expert.severity", [])
        groups = layers.get("_ws.expert.group", [])
        messages = layers.get("_ws.expert.message", [])
        saw_malformed_item = False
        for i, raw_severity in enumerate(severities):
            severity = _severity_name(raw_severity)
            group = _group_name(groups[i]) if i < len(groups) else "?"
            message = messages[i] if i < len(messages) else ""
            saw_malformed_item |= group == "malformed"
            problem = Problem(number, severity, group, message)
            if (
                _SEVERITY_RANK.get(severity, 0) >= threshold
                or group in _ALWAYS_FATAL_GROUPS
            ):
                fatal.append(problem)
            elif _SEVERITY_RANK.get(severity, 0) >= _SEVERITY_RANK["warning"]:
                minor.append(problem)
        if layers.get("_ws.malformed") and not saw_malformed_item:
            text = next((m for m in layers["_ws.malformed"] if m.startswith("[")), "")
            fatal.append(Problem(number, "error", "malformed", text or "Malformed Packet"))

    if status != 0:
        if not stderr.strip():
            stderr = "(no message)"
        raise CaptureCheckError(str(path), fatal, returncode=status, stderr=stderr)
    if fatal:
        raise CaptureCheckError(str(path), fatal)
    return CaptureReport(
        path=str(path),
        frames=len(frames),
        protocols=frozenset(protocols),
        frame_protocols=tuple(chains),
        problems=tuple(minor),
    )


def tshark_fields(
    path: str | os.PathLike[str],
    fields: Sequence[str],
    display_filter: str | None = None,
    decode_as: Iterable[str] = (),
    options: Iterable[str] = (),
    *,
    keys_dir: str | os.PathLike[str] | None = None,
) -> list[dict[str, list[str]]]:
    """Dissected values of ``fields``, one dict per (displayed) frame.

    Every requested field is a key of every dict; its value is the list of all
    occurrences in that frame as tshark displays them (``[]`` when absent), because a
    field may occur several times (e.g. ``ipv6.src`` in IPv6-in-UDP). Numbers come back
    as strings, as tshark prints them (``"4191"``, ``"0x00000100"`` for hex fields).
    The same preferences as :func:`check_capture` apply (checksum validation on).
    """
    if isinstance(fields, str):
        fields = [fields]
    fields = list(fields)
    if not fields:
        raise ValueError("tshark_fields needs at least one field name")
    status, frames, stderr = _run_tshark(
        path,
        fields,
        display_filter=display_filter,
        decode_as=tuple(decode_as),
        options=tuple(options),
        keys_dir=keys_dir,
    )
    if status != 0:
        raise TsharkError(f"tshark exited with status {status} on {path}: {stderr.strip()}")
    return [{name: layers.get(name, []) for name in fields} for layers in frames]
