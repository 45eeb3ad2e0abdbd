"""IKEv2 handshakes over real UDP in namespaces: ours -> strongSwan against strongSwan -> strongSwan.

One charon responder (namespace ``ha``, kernel-libipsec) is answered by two initiators on
two veths, with the same proposal (aes256gcm16-prfsha256-curve25519, ESP aes256gcm16, PSK,
one child SA): our engine on real sockets (:class:`mip6lab.ikev2.udp.UdpDriver`, in
namespace ``us``, a loop of initiate + delete) and a second charon (namespace ``mn``,
``swanctl --initiate`` / ``--terminate``). Rounds alternate between the two, in the same run.

The instrument is the same for both: tcpdump on the responder's two interfaces, and for each
IKE SA the time from the IKE_SA_INIT request to the IKE_AUTH response as the responder saw
them on the wire (so neither process start-up nor swanctl's vici round trip is counted).
Result: median handshake time, ours / strongSwan's; target ours <= 1.0x strongSwan's
(issue 14.4; it was 1.2x before the engine moved onto its struct-level codec).
Needs root, network namespaces, charon + swanctl + tcpdump: otherwise it says why and skips.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import Result

ROUNDS, PER_ROUND, WARMUP = 4, 15, 2
IKE, ESP = "aes256gcm16-prfsha256-curve25519", "aes256gcm16"
PSK = "mip6lab bench psk"
MN_ID, HA_ID = "mn@mip6lab.example", "ha.mip6lab.example"
HA_SW, MN_SW = "2001:db8:1::2", "2001:db8:1::1"        # strongSwan <-> strongSwan veth
HA_US, US = "2001:db8:2::2", "2001:db8:2::1"           # ours <-> strongSwan veth
SERVICE = "2001:db8:f2::1"                              # behind the responder

# runs in namespace "us": N handshakes (initiate, then delete) on one driver
_OURS = """
import json, sys, time
from mip6lab.ikev2 import udp
from mip6lab.ikev2.config import IkeConfig
local, remote, n, psk, ike, esp, my_id, peer_id = sys.argv[1:9]
config = IkeConfig.make(my_id, psk.encode(), peer_id, ike=ike, esp=esp, request=("ipv6",))
out = []
with udp.UdpDriver(config, local) as driver:
    for _ in range(int(n)):
        start = time.perf_counter()
        up = []
        result = driver.initiate(remote, timeout=10, delete=True,
                                 on_established=lambda r: up.append(time.perf_counter()))
        if not up:
            print(json.dumps({"error": result.to_dict()["error"]}))
            sys.exit(1)
        out.append({"spi_i": result.sa.spi_i.hex(), "wall": up[0] - start,
                    "deleted": result.deleted is not None})
print(json.dumps(out))
"""


def _skip(reason: str) -> list[Result]:
    print(f"   skipped: {reason}")
    return []


def _prerequisites() -> str | None:
    if os.geteuid() != 0:
        return "not root (network namespaces, UDP 500)"
    from mip6lab.net.netns import netns_available
    from mip6lab.testing import strongswan as sw

    ok, why = netns_available()
    if not ok:
        return f"no network namespaces: {why}"
    if sw.find_charon() is None or shutil.which("swanctl") is None:
        return "no strongSwan charon/swanctl (Debian strongswan-charon, strongswan-swanctl)"
    if shutil.which("tcpdump") is None:
        return "no tcpdump (the instrument)"
    if lacking := sw.missing_plugins():
        return "strongSwan plugins missing: " + ", ".join(sorted(lacking))
    return None


def _ike_messages(path: Path):
    """(time, spi_i, exchange, is_response) of every IKE message in an Ethernet pcap."""
    from scapy.utils import RawPcapReader

    reader = RawPcapReader(str(path))
    try:
        for frame, meta in reader:
            stamp = meta.sec + meta.usec / 1e6
            if int.from_bytes(frame[12:14], "big") != 0x86DD or frame[14 + 6] != 17:
                continue
            udp = frame[14 + 40:]
            sport, dport = int.from_bytes(udp[0:2], "big"), int.from_bytes(udp[2:4], "big")
            body = udp[8:]
            if 4500 in (sport, dport):
                if body[:4] != b"\0\0\0\0":
                    continue                       # ESP or keepalive
                body = body[4:]
            if len(body) < 28:
                continue
            yield stamp, body[:8].hex(), body[18], bool(body[19] & 0x20)
    finally:
        reader.close()


def _handshake_times(path: Path) -> dict[str, float]:
    """spi_i -> seconds from the first IKE_SA_INIT request to the IKE_AUTH response."""
    start: dict[str, float] = {}
    done: dict[str, float] = {}
    for stamp, spi, exchange, response in _ike_messages(path):
        if exchange == 34 and not response:
            start.setdefault(spi, stamp)
        elif exchange == 35 and response and spi in start:
            done.setdefault(spi, stamp - start[spi])
    return done


class _Capture:
    def __init__(self, netns, ns, ifname: str, path: Path) -> None:
        self.path = path
        log = path.with_suffix(".log")
        with open(log, "w") as err:
            self.proc = netns.spawn(ns, ["tcpdump", "-i", ifname, "-n", "-U",
                                         "--immediate-mode", "-w", str(path),
                                         "udp port 500 or udp port 4500"],
                                    stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + 5
        while "listening on" not in log.read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"tcpdump: {log.read_text()}")
            time.sleep(0.02)

    def stop(self) -> None:
        time.sleep(0.2)
        self.proc.terminate()
        self.proc.wait(timeout=5)


def _measure(directory: Path) -> dict:
    from mip6lab.net.netns import NetnsSet
    from mip6lab.testing.strongswan import (Charon, Child, Connection, Pool, SharedKey,
                                            SwanctlConfig)

    # Both initiators ask for a virtual IPv6 address (HoA) from the responder's pool.
    # charon as initiator (kernel-libipsec) cannot install a policy towards the IKE peer's
    # own address, so its child SA protects a service address behind the responder
    # (as in tests/interop/test_ike_strongswan.py); the responder offers both.
    secrets = [SharedKey(PSK, ids=[MN_ID, HA_ID])]
    responder = SwanctlConfig(connections=[Connection(
        "r", local_addrs=[HA_SW, HA_US], proposals=IKE, local_id=HA_ID, remote_id=MN_ID,
        mobike=False, pools=["p6"],
        children=[Child("c", esp_proposals=ESP, local_ts=["dynamic", f"{SERVICE}/128"],
                        remote_ts="dynamic")])],
        pools=[Pool("p6", "2001:db8:aaaa::100-2001:db8:aaaa::fff")], secrets=secrets)
    initiator = SwanctlConfig(connections=[Connection(
        "i", local_addrs=MN_SW, remote_addrs=HA_SW, proposals=IKE, local_id=MN_ID,
        remote_id=HA_ID, mobike=False, vips=["::"],
        children=[Child("c", esp_proposals=ESP, local_ts="dynamic",
                        remote_ts=f"{SERVICE}/128", start_action="none")])],
        secrets=secrets)
    ours_wall: list[float] = []
    sw_wall: list[float] = []
    ours_spis: list[str] = []
    with NetnsSet() as s:
        us, mn, ha = s.add_namespace("us"), s.add_namespace("mn"), s.add_namespace("ha")
        s.add_veth(mn, "eth0", ha, "eth0")
        s.add_veth(us, "eth0", ha, "eth1")
        for ns, ifname, address in ((mn, "eth0", MN_SW), (ha, "eth0", HA_SW),
                                    (us, "eth0", US), (ha, "eth1", HA_US)):
            s.add_address(ns, ifname, f"{address}/64")
        s.run(ha, "ip", "link", "set", "lo", "up")
        s.add_address(ha, "lo", f"{SERVICE}/128")    # the route source charon installs
        time.sleep(2.5)      # IPv6 DAD on the new addresses
        with Charon(s, ha, directory / "ha", swanctl=responder,
                    log_levels={"ike": 1, "chd": 1, "cfg": 1, "knl": 1, "net": 1, "enc": 0}
                    ) as r_charon, \
                Charon(s, mn, directory / "mn", swanctl=initiator,
                       log_levels={"ike": 1, "chd": 1, "cfg": 1, "knl": 1, "net": 1,
                                   "enc": 0}) as i_charon:
            r_charon.load()
            i_charon.load()
            cap_sw = _Capture(s, ha, "eth0", directory / "sw.pcap")
            cap_us = _Capture(s, ha, "eth1", directory / "ours.pcap")
            try:
                for _ in range(ROUNDS):
                    proc = s.run(us, sys.executable, "-c", _OURS, US, HA_US, str(PER_ROUND),
                                 PSK, IKE, ESP, MN_ID, HA_ID, check=False, timeout=120)
                    if proc.returncode != 0:
                        raise RuntimeError(f"our initiator failed: {proc.stdout}"
                                           f"{proc.stderr[-2000:]}")
                    runs = json.loads(proc.stdout.strip().splitlines()[-1])
                    ours_wall += [r["wall"] for r in runs[WARMUP:]]
                    ours_spis += [r["spi_i"] for r in runs[WARMUP:]]
                    spis_before = {sa.spi_i for sa in i_charon.list_sas()}
                    assert not spis_before, spis_before
                    for n in range(PER_ROUND):
                        start = time.perf_counter()
                        i_charon.initiate("c", timeout=10)
                        wall = time.perf_counter() - start
                        if n >= WARMUP:
                            sw_wall.append(wall)
                        i_charon.terminate(ike="i", timeout=10)
            finally:
                cap_sw.stop()
                cap_us.stop()
    ours_wire = _handshake_times(directory / "ours.pcap")
    sw_wire = _handshake_times(directory / "sw.pcap")
    ours_times = [ours_wire[spi] for spi in ours_spis if spi in ours_wire]
    # strongSwan's: drop each round's warm-up handshakes, in capture order
    sw_all = list(sw_wire.values())
    sw_times = [t for i, t in enumerate(sw_all) if i % PER_ROUND >= WARMUP]
    return {"ours_wire": ours_times, "sw_wire": sw_times,
            "ours_wall": ours_wall, "sw_wall": sw_wall}


def run() -> list[Result]:
    reason = _prerequisites()
    if reason:
        return _skip(reason)
    directory = Path(tempfile.mkdtemp(prefix="m6l-bench-ike-"))
    try:
        m = _measure(directory)
    except Exception as exc:      # a benchmark reports, it does not fail the run
        return _skip(f"could not measure: {exc!r} (files in {directory})")
    if len(m["ours_wire"]) < 5 or len(m["sw_wire"]) < 5:
        return _skip(f"too few handshakes on the wire: ours {len(m['ours_wire'])}, "
                     f"strongSwan {len(m['sw_wire'])} (files in {directory})")
    shutil.rmtree(directory, ignore_errors=True)
    ours, theirs = statistics.median(m["ours_wire"]), statistics.median(m["sw_wire"])
    ratio = ours / theirs
    verdict = "met" if ratio <= 1.0 else "NOT met"
    print(f"   handshakes: ours {len(m['ours_wire'])}, strongSwan {len(m['sw_wire'])} "
          f"({ROUNDS} alternating rounds of {PER_ROUND}, {WARMUP} warm-up each dropped)")
    print(f"   IKE_SA_INIT req -> IKE_AUTH resp on the wire, median: ours {ours * 1e3:.2f} ms,"
          f" strongSwan {theirs * 1e3:.2f} ms -> ours/strongSwan time = {ratio:.2f}x "
          f"[target <= 1.0x: {verdict}]")
    print(f"   initiator wall per handshake, median: ours (driver loop) "
          f"{statistics.median(m['ours_wall']) * 1e3:.2f} ms, strongSwan (swanctl --initiate, "
          f"incl. swanctl start-up and vici) {statistics.median(m['sw_wall']) * 1e3:.2f} ms")
    return [
        Result("strongSwan->strongSwan handshake (wire)", 1 / theirs, "handshakes/s"),
        Result("ours->strongSwan handshake (wire)", 1 / ours, "handshakes/s",
               "strongSwan->strongSwan", 1 / theirs, target=">= 1.0x (time <= 1.0x)"),
    ]


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    for result in run():
        print("   " + result.line())
