"""Exercise 6: an ESP packet of a capture decrypted with the exported keys, and the BU
found inside (RFC 4303 §2, §3.4; RFC 4106 §4-§5 for AES-GCM; Wireshark's ``esp_sa``).

The capture is the MN's visited link in ``home-registration``; the keys are the
``esp_sa`` table that ``mip6lab scenario run --keys`` writes. The student writes
``decrypt_esp(frame, esp_sa)`` -> (next header, payload) and ``find_bu(frames, esp_sa)``
-> (index of the first frame carrying a BU, its sequence number); the checks compare
with the stack's own decryption (:func:`mip6lab.ipsec.esp.open_copy`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..ipsec.esp import EspError, esp_spi, open_copy
from ..ipsec.wireshark import esp_sa_table
from ..scenarios import create
from . import Feedback, as_bytes, attempt

MH_BU = 5


def _upper(packet: bytes) -> tuple[int, bytes]:
    """(next header, payload) after an IPv6 packet's extension headers."""
    nh, at = packet[6], 40
    while nh in (0, 43, 60) and at + 2 <= len(packet):
        nh, at = packet[at], at + 8 * (packet[at + 1] + 1)
    return nh, packet[at:]


@dataclass
class Exercise:
    seed: int
    frames: list = field(repr=False)        # the capture: frames on the MN's link, in order
    esp_sa: str = field(repr=False)         # the exported keys, Wireshark's esp_sa text
    sas: list = field(repr=False, default_factory=list)

    def __repr__(self) -> str:
        return f"Exercise(seed={self.seed}, {len(self.frames)} frames, " \
               f"{len(self.esp_sa.splitlines())} SAs in esp_sa)"

    def save(self, directory: str = ".") -> tuple[str, str]:
        """Write the capture (pcap) and esp_sa into ``directory``, to open in Wireshark
        with ``WIRESHARK_CONFIG_DIR=directory`` (or to read with scapy's rdpcap)."""
        from scapy.utils import wrpcap
        from scapy.layers.l2 import Ether

        os.makedirs(directory, exist_ok=True)
        pcap = os.path.join(directory, "capture.pcap")
        wrpcap(pcap, [Ether(f) for f in self.frames])
        keys = os.path.join(directory, "esp_sa")
        with open(keys, "w", encoding="ascii") as out:
            out.write(self.esp_sa)
        return pcap, keys

    def opened(self, frame: bytes) -> tuple[int, bytes] | None:
        """The stack's decryption of one frame: (next header, payload), None without ESP."""
        l3 = frame[14:] if frame[12:14] in (b"\x86\xdd", b"\x08\x00") else None
        spi = esp_spi(l3) if l3 is not None else None
        if spi is None:
            return None
        for sa in self.sas:
            if sa.spi == spi and sa.direction == "in":
                try:
                    inner = open_copy(sa, l3).packet
                except EspError:
                    continue
                if sa.mode == "tunnel":
                    return (41 if inner[0] >> 4 == 6 else 4), inner
                return _upper(inner)
        return None


def prepare(seed: int) -> Exercise:
    scenario = create("home-registration", seed=seed)
    scenario.lab.run(until=3.0)
    frames = [e.packet for e in scenario.lab.events
              if e.kind == "tx" and e.link == "visit1" and e.packet]
    sas = scenario.security_associations()
    return Exercise(seed, frames, esp_sa_table(sas), sas)


def _esp_frames(exercise: Exercise) -> list[tuple[int, tuple[int, bytes]]]:
    found = []
    for index, frame in enumerate(exercise.frames):
        opened = exercise.opened(frame)
        if opened is not None:
            found.append((index, opened))
    return found


def judge_decrypt(decrypt_esp, exercise: Exercise, index: int, where: str) -> Feedback:
    frame = exercise.frames[index]
    nh, payload = exercise.opened(frame)
    result, failed = attempt("decrypt_esp", decrypt_esp, frame, exercise.esp_sa)
    if failed:
        if "InvalidTag" in failed.message:
            return Feedback(False, f"decrypt_esp on {where}: the GCM tag did not verify "
                                   "(InvalidTag): is it the line of this SPI? The key is the "
                                   "esp_sa key without its last 4 bytes (the salt); nonce = "
                                   "salt | the 8-byte IV after the sequence number; associated "
                                   "data = SPI | sequence number (RFC 4106 §4, §5).")
        return failed
    if not isinstance(result, tuple) or len(result) != 2:
        return Feedback(False, f"decrypt_esp should return (next_header, payload), not "
                               f"{result!r}.")
    given_nh, given = result[0], as_bytes(result[1])
    if given is None:
        return Feedback(False, f"decrypt_esp's payload should be bytes, not {result[1]!r}.")
    if given != payload:
        if given.startswith(payload):
            return Feedback(False, f"decrypt_esp on {where}: your payload has "
                                   f"{len(given) - len(payload)} bytes too many at the end: the "
                                   "last two bytes of the plaintext are Pad Length and Next "
                                   "Header, and the padding before them goes too (RFC 4303 "
                                   "§2.4-§2.6); the 16-byte ICV is not plaintext.")
        return Feedback(False, f"decrypt_esp on {where}: your payload is not the stack's "
                               f"({len(given)} bytes, {len(payload)} expected).")
    if given_nh != nh:
        return Feedback(False, f"decrypt_esp on {where}: the payload is right but the next "
                               f"header is {given_nh!r}, not {nh}: it is the plaintext's last "
                               "byte (RFC 4303 §2.6).")
    what = {135: "a Mobility Header", 41: "an IPv6 packet (tunnel mode)",
            4: "an IPv4 packet (tunnel mode)"}.get(nh, f"protocol {nh}")
    return Feedback(True, f"decrypt_esp opened {where}: {what}, {len(payload)} bytes.")


def _bu(exercise: Exercise) -> tuple[int, int]:
    for index, (nh, payload) in _esp_frames(exercise):
        if nh == 135 and payload[2] == MH_BU:
            return index, int.from_bytes(payload[6:8], "big")
    raise LookupError("no BU in the capture")


def check_decrypt(exercise: Exercise, decrypt_esp) -> Feedback:
    """Visible: the first ESP frame of the capture (the BU)."""
    return judge_decrypt(decrypt_esp, exercise, _esp_frames(exercise)[0][0],
                         "the first ESP frame of the capture")


def check_find(exercise: Exercise, find_bu) -> Feedback:
    result, failed = attempt("find_bu", find_bu, exercise.frames, exercise.esp_sa)
    if failed:
        return failed
    index, sequence = _bu(exercise)
    if result == (index, sequence) or result == [index, sequence]:
        return Feedback(True, f"the first BU is frame {index}, sequence number {sequence}.")
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        return Feedback(False, f"find_bu should return (frame index, sequence number), not "
                               f"{result!r}.")
    if result[0] != index:
        return Feedback(False, f"frame {result[0]} is not the first BU; count from 0 over "
                               "the frames; a BU is a Mobility Header (next header 135) of "
                               "MH type 5 (RFC 6275 §6.1.7) inside ESP.")
    return Feedback(False, f"frame {index} is right, but its sequence number is not "
                           f"{result[1]!r}: it is the 16 bits after the MH's checksum.")


def hidden_checks(exercise: Exercise, decrypt_esp) -> list[Feedback]:
    """Hidden: the BA (the other direction: another SA line) and a data packet in the
    tunnel-mode payload SA."""
    frames = _esp_frames(exercise)
    ba = next(i for i, (nh, p) in frames if nh == 135 and p[2] == 6)
    data = next(i for i, (nh, _p) in frames if nh in (41, 4))
    return [judge_decrypt(decrypt_esp, exercise, ba, "the BA"),
            judge_decrypt(decrypt_esp, exercise, data, "a data packet of the payload tunnel")]
