"""More of our IKEv2 against strongSwan: a third proposal set, rekeys and DELETE from both
ends, a real Linux NAT, and ESP over the negotiated child SA.

Same set-up as :mod:`test_ike_strongswan` (namespaces ``mn``/``ha`` on a veth, charon with
kernel-libipsec, ``mip6lab ike initiate`` as a subprocess), but our initiator stays alive
after establishment (``--stay``/``--until-deleted``, ``--rekey-*-after``, ``--events``):

* aes256gcm16-prfsha384-ecp384 with ESP aes128gcm16 (the third proposal set);
* we rekey the child SA and then the IKE SA: charon's ``list-sas`` shows one IKE SA with
  our new SPIs and the new child SA INSTALLED with our new SPIs mirrored;
* charon rekeys the child SA and the IKE SA (``swanctl --rekey``), then deletes
  (``swanctl --terminate``): our event lines show ChildSaRekeyed and IkeSaRekeyed with the
  SPIs charon lists, then IkeSaDeleted(by_peer=True) of the current IKE SA;
* through a router namespace with MASQUERADE between 192.0.2.0/24 (us) and
  198.51.100.0/24 (charon): we see our own side NATed, IKE on 4500, and charon lists the
  router's address as the peer;
* ESP: the child SA keys of our ``--show-keys`` output seal an ICMPv6 echo request to
  charon's address (inner source: the HoA charon assigned), injected from our UDP 4500
  as a raw frame; charon answers through the tunnel and our inbound SA opens the reply.
"""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
from pathlib import Path

import pytest

from mip6lab.testing.strongswan import Charon, Child, Connection, Pool, SharedKey, SwanctlConfig

from .test_ike_strongswan import (HA, HA_ID, MN, MN_ID, PSK, _in_pool, _initiate, _mip6lab,
                                  _prereqs, _psk_file, _responder_conf, pair)  # noqa: F401

pytestmark = pytest.mark.netns

GCM_X25519 = ("aes256gcm16-prfsha256-curve25519", "aes256gcm16")


# ---------------------------------------------------------------- helpers
class Ours:
    """Our initiator as a background process whose JSON lines are read as they come."""

    def __init__(self, s, ns, psk_file: Path, *extra: str, remote: str = HA,
                 local: str = MN, ike: str = GCM_X25519[0], esp: str = GCM_X25519[1],
                 request: str = "ipv6") -> None:
        self.proc = s.spawn(ns, _mip6lab(
            "ike", "initiate", "--remote", remote, "--local", local, "--id", MN_ID,
            "--remote-id", HA_ID, "--psk-file", str(psk_file), "--request", request,
            "--ike-proposal", ike, "--esp-proposal", esp, "--timeout", "10", "--json",
            "--events", "-v", *extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        self.lines: queue.Queue = queue.Queue()
        self.seen: list[dict] = []
        self.stderr: list[str] = []
        threading.Thread(target=self._read, args=(self.proc.stdout, self.lines),
                         daemon=True).start()
        threading.Thread(target=lambda: self.stderr.extend(self.proc.stderr),
                         daemon=True).start()

    @staticmethod
    def _read(stream, lines: queue.Queue) -> None:
        for line in stream:
            if line.strip():
                lines.put(json.loads(line))
        lines.put(None)

    def wait_event(self, name: str, timeout: float = 10.0, **match) -> dict:
        """The next (or an already seen, not yet taken) event line named ``name``."""
        for entry in self.seen:
            if entry.get("event") == name and all(entry.get(k) == v for k, v in match.items()):
                self.seen.remove(entry)
                return entry
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"no {name} {match} within {timeout} s: {self.log()}"
            try:
                entry = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            assert entry is not None, f"our initiator ended before {name}: {self.log()}"
            if entry.get("event") == name and all(entry.get(k) == v for k, v in match.items()):
                return entry
            self.seen.append(entry)

    def finish(self, timeout: float = 30.0) -> dict:
        """Wait for the process; return its final report (the last line without "event")."""
        self.proc.wait(timeout=timeout)
        report = None
        while True:
            try:
                entry = self.lines.get(timeout=5)
            except queue.Empty:
                break
            if entry is None:
                break
            self.seen.append(entry)
        for entry in self.seen:
            if "event" not in entry:
                report = entry
        assert report is not None, f"no final report: {self.log()}"
        return report

    def events(self, name: str) -> list[dict]:
        return [e for e in self.seen if e.get("event") == name]

    def log(self) -> str:
        return "".join(self.stderr[-60:])

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=5)


def _wait(predicate, what: str, timeout: float = 10.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(interval)


def _only_sa(charon: Charon):
    sas = charon.list_sas()
    assert len(sas) == 1, sas
    return sas[0]


def _installed(sa) -> list:
    return [c for c in sa.child_sas if c.state == "INSTALLED"]


# ---------------------------------------------------------------- third proposal set
def test_third_proposal_ecp384_aes128gcm(pair, tmp_path):
    s, mn, ha = pair
    ike, esp = "aes256gcm16-prfsha384-ecp384", "aes128gcm16"
    with Charon(s, ha, tmp_path / "ha", swanctl=_responder_conf(ike, esp)) as charon:
        charon.load()
        status, ours, log = _initiate(s, mn, _psk_file(tmp_path), ike, esp)
        assert status == 0 and ours["established"], (ours, log, charon.log_text()[-3000:])
        assert ours["ike_sa"]["proposal"] == ike
        theirs = charon.wait_established(5, ike="ours", child="c")
        assert (theirs.spi_i, theirs.spi_r) == (ours["ike_sa"]["spi_i"],
                                                ours["ike_sa"]["spi_r"])
        assert "ECP_384" in theirs.proposal and "PRF_HMAC_SHA2_384" in theirs.proposal
        (child,) = ours["child_sas"]
        c = theirs.child("c")
        assert child["suite"] == esp and c.state == "INSTALLED"
        assert "AES_GCM_16_128" in c.proposal
        assert (c.spi_in, c.spi_out) == (int(child["spi_out"], 16), int(child["spi_in"], 16))


# ------------------------------------------ no proposal flags: the ``default`` offer
@pytest.mark.parametrize("ike, esp, group", [
    ("aes256-sha256-modp2048", "aes128-sha256", "MODP_2048"),
    ("aes256gcm16-prfsha384-ecp384", "aes256gcm16", "ECP_384"),
])
def test_our_default_offer_meets_a_restricted_charon(pair, tmp_path, ike, esp, group):
    """``mip6lab ike initiate`` without --ike-proposal/--esp-proposal offers ``default``
    (an AEAD and a classic proposal, every group we have): it meets a charon that takes
    one group only, after an INVALID_KE_PAYLOAD when the group is not its first guess
    (RFC 7296 §1.2)."""
    s, mn, ha = pair
    with Charon(s, ha, tmp_path / "ha", swanctl=_responder_conf(ike, esp)) as charon:
        charon.load()
        proc = s.run(mn, *_mip6lab(
            "ike", "initiate", "--remote", HA, "--local", MN, "--id", MN_ID,
            "--remote-id", HA_ID, "--psk-file", str(_psk_file(tmp_path)),
            "--request", "ipv6", "--timeout", "10", "--json"), check=False, timeout=40)
        ours = json.loads(proc.stdout.strip().splitlines()[-1])
        assert proc.returncode == 0 and ours["established"], (ours, proc.stderr[-2000:],
                                                               charon.log_text()[-3000:])
        assert ours["ike_sa"]["proposal"] == ike
        theirs = charon.wait_established(5, ike="ours", child="c")
        assert group in theirs.proposal
        (child,) = ours["child_sas"]
        assert child["suite"] == esp and theirs.child("c").state == "INSTALLED"


# ---------------------------------------------------------------- rekeys by us
def test_we_rekey_child_then_ike(pair, tmp_path):
    s, mn, ha = pair
    with Charon(s, ha, tmp_path / "ha", swanctl=_responder_conf(*GCM_X25519)) as charon:
        charon.load()
        ours = Ours(s, mn, _psk_file(tmp_path), "--rekey-child-after", "0.5",
                    "--rekey-ike-after", "1.5", "--stay", "3")
        try:
            first = ours.wait_event("IkeSaEstablished")
            rekeyed = ours.wait_event("ChildSaRekeyed")
            ike_rekeyed = ours.wait_event("IkeSaRekeyed")
            report = ours.finish()
        finally:
            ours.kill()
        assert report["established"] and report["state"] == "ESTABLISHED", ours.log()
        new = ike_rekeyed["new"]
        assert new["initiator"] is True
        assert (new["spi_i"], new["spi_r"]) != (first["ike"]["spi_i"], first["ike"]["spi_r"])
        assert (report["ike_sa"]["spi_i"], report["ike_sa"]["spi_r"]) == (new["spi_i"],
                                                                         new["spi_r"])
        assert report["previous_ike_sas"] == [{"spi_i": first["ike"]["spi_i"],
                                               "spi_r": first["ike"]["spi_r"],
                                               "state": "CLOSED"}]
        (live,) = [c for c in report["child_sas"] if c["state"] == "installed"]
        assert live["spi_in"] == rekeyed["new_spi_in"]
        # charon: one IKE SA, the new one, and the rekeyed child INSTALLED, SPIs mirrored
        theirs = _wait(lambda: (lambda sa: sa if (sa.spi_i, sa.spi_r) == (
            new["spi_i"], new["spi_r"]) else None)(_only_sa(charon)), "charon's new IKE SA")
        assert theirs.state == "ESTABLISHED"
        (c,) = _installed(theirs)
        assert (c.spi_in, c.spi_out) == (int(live["spi_out"], 16), int(live["spi_in"], 16))
        # charon keeps the replaced child a few seconds (delete_rekeyed_delay), DELETED
        assert all(c.state in ("DELETED", "REKEYED") for c in theirs.child_sas
                   if c.state != "INSTALLED"), theirs.child_sas
        assert report["dropped"] == []


# ---------------------------------------------------------------- rekeys and DELETE by charon
def test_charon_rekeys_child_and_ike_then_deletes(pair, tmp_path):
    s, mn, ha = pair
    with Charon(s, ha, tmp_path / "ha", swanctl=_responder_conf(*GCM_X25519)) as charon:
        charon.load()
        ours = Ours(s, mn, _psk_file(tmp_path), "--until-deleted", "--stay", "40")
        try:
            first = ours.wait_event("IkeSaEstablished")
            child0 = ours.wait_event("ChildSaEstablished")["child"]
            theirs = charon.wait_established(5, ike="ours", child="c")
            assert theirs.spi_i == first["ike"]["spi_i"]

            charon.swanctl("--rekey", "--child", "c")
            rekeyed = ours.wait_event("ChildSaRekeyed")
            assert rekeyed["old_spi_in"] == child0["spi_in"]
            new_child = ours.wait_event("ChildSaEstablished")["child"]
            assert new_child["spi_in"] == rekeyed["new_spi_in"]
            deleted = ours.wait_event("ChildSaDeleted")      # charon deletes the old pair
            assert deleted["by_peer"] is True and deleted["spi_in"] == child0["spi_in"]
            sa = _wait(lambda: (lambda sa: sa if len(_installed(sa)) == 1
                                and _installed(sa)[0].spi_out == int(new_child["spi_in"], 16)
                                else None)(_only_sa(charon)), "charon's rekeyed child")
            c = _installed(sa)[0]
            assert c.spi_in == int(new_child["spi_out"], 16)

            charon.swanctl("--rekey", "--ike", "ours")
            ike_rekeyed = ours.wait_event("IkeSaRekeyed")
            new = ike_rekeyed["new"]
            assert new["initiator"] is False         # charon started the rekey
            old_gone = ours.wait_event("IkeSaDeleted")   # charon deletes the old IKE SA
            assert old_gone["by_peer"] is True and old_gone["ike"] == first["ike"]
            sa = _wait(lambda: (lambda sa: sa if (sa.spi_i, sa.spi_r) == (
                new["spi_i"], new["spi_r"]) else None)(_only_sa(charon)),
                "charon listing the rekeyed IKE SA with our SPIs")
            assert sa.state == "ESTABLISHED" and _installed(sa)

            charon.terminate(ike="ours")
            gone = ours.wait_event("IkeSaDeleted")
            report = ours.finish()
        finally:
            ours.kill()
        assert gone["by_peer"] is True
        assert gone["ike"] == {"spi_i": new["spi_i"], "spi_r": new["spi_r"]}
        assert ours.proc.returncode == 0, ours.log()
        assert report["deleted"] and report["deleted_by_peer"] is True
        assert report["state"] == "CLOSED"
        assert (report["ike_sa"]["spi_i"], report["ike_sa"]["spi_r"]) == (new["spi_i"],
                                                                         new["spi_r"])
        assert charon.list_sas() == []
        assert report["dropped"] == [], report["dropped"]


def test_we_delete_after_staying(pair, tmp_path):
    s, mn, ha = pair
    with Charon(s, ha, tmp_path / "ha", swanctl=_responder_conf(*GCM_X25519)) as charon:
        charon.load()
        status, ours, log = _initiate(s, mn, _psk_file(tmp_path), *GCM_X25519,
                                      "--liveness-after", "0.2", "--delete-after", "0.5",
                                      "--until-deleted", "--stay", "10")
        assert status == 0 and ours["deleted"] and ours["deleted_by_peer"] is False, log
        assert ours["state"] == "CLOSED"
        assert charon.list_sas() == []


# ---------------------------------------------------------------- a real NAT
MN4, GW_IN, GW_OUT, HA4 = "192.0.2.2", "192.0.2.1", "198.51.100.1", "198.51.100.2"
POOL4 = ("203.0.113.10", "203.0.113.20")


@pytest.fixture
def natted():
    """mn (192.0.2.2) -- router (MASQUERADE out of 198.51.100.1) -- ha (198.51.100.2)."""
    from mip6lab.net.netns import NetnsSet
    from mip6lab.testing.prereq import require_tool

    _prereqs()
    nat_tool = "iptables" if _has("iptables") else require_tool("nft", "for the NAT router")
    with NetnsSet() as s:
        mn, gw, ha = s.add_namespace("mn"), s.add_namespace("gw"), s.add_namespace("ha")
        s.add_veth(mn, "eth0", gw, "lan0")
        s.add_veth(gw, "wan0", ha, "eth0")
        s.add_address(mn, "eth0", f"{MN4}/24")
        s.add_address(gw, "lan0", f"{GW_IN}/24")
        s.add_address(gw, "wan0", f"{GW_OUT}/24")
        s.add_address(ha, "eth0", f"{HA4}/24")
        s.add_route(mn, "default", via=GW_IN)
        s.enable_forwarding(gw, ipv4=True, ipv6=False)
        if nat_tool == "iptables":
            s.run(gw, "iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "wan0",
                  "-j", "MASQUERADE")
        else:
            s.run(gw, "nft", "add table ip nat; add chain ip nat post { type nat hook "
                  "postrouting priority 100 ; } ; add rule ip nat post oifname wan0 "
                  "masquerade")
        yield s, mn, gw, ha


def _has(tool: str) -> bool:
    import shutil
    return shutil.which(tool) is not None


def test_through_a_real_nat(natted, tmp_path):
    s, mn, gw, ha = natted
    conf = SwanctlConfig(
        connections=[Connection(
            "ours", local_addrs=HA4, proposals=GCM_X25519[0], local_id=HA_ID,
            remote_id=MN_ID, pools=["v4"], mobike=False,
            children=[Child("c", esp_proposals=GCM_X25519[1], local_ts="dynamic",
                            remote_ts="dynamic")])],
        pools=[Pool("v4", f"{POOL4[0]}-{POOL4[1]}")],
        secrets=[SharedKey(PSK, ids=[MN_ID, HA_ID])])
    with Charon(s, ha, tmp_path / "ha", swanctl=conf) as charon:
        charon.load()
        ours = Ours(s, mn, _psk_file(tmp_path), "--stay", "0", remote=HA4, local=MN4,
                    request="ipv4")
        try:
            report = ours.finish()
        finally:
            ours.kill()
        assert report["established"], (report, ours.log(), charon.log_text()[-3000:])
        assert report["nat_detected"] is True
        assert report["nat_local"] is True           # our own side is behind the NAT
        assert (report["ike_sa"]["local_port"], report["ike_sa"]["remote_port"]) == \
            (4500, 4500)
        (vip,) = [a["value"] for a in report["assigned"]
                  if a["attribute"] == "INTERNAL_IP4_ADDRESS"]
        assert _in_pool(vip, *POOL4)
        theirs = charon.wait_established(5, ike="ours", child="c")
        assert theirs.remote_host == GW_OUT           # the NAT's address, not ours
        assert theirs.remote_port is not None
        assert (theirs.spi_i, theirs.spi_r) == (report["ike_sa"]["spi_i"],
                                                report["ike_sa"]["spi_r"])
        assert theirs.child("c").encap
        assert "remote host is behind NAT" in charon.log_text()
        conntrack = s.run(gw, "cat", "/proc/net/nf_conntrack", check=False).stdout
        if conntrack:
            assert "dport=4500" in conntrack


# ---------------------------------------------------------------- ESP over our child SA
def test_esp_over_our_negotiated_child_sa(pair, tmp_path):
    """Keys from our ``--show-keys``; our ESP-in-UDP echo request in, charon's reply out."""
    import ipaddress
    import os
    import sys

    from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6

    from mip6lab.ipsec.esp import NAT_T_PORT, decapsulate, encapsulate
    from mip6lab.ipsec.sad import SecurityAssociation, SecurityAssociationDatabase
    from mip6lab.testing.prereq import require_tool

    from .test_esp_strongswan import (_SEND_FRAMES, Capture, echo, esp_header, esp_in_udp,
                                      mac_address, wait_for)

    require_tool("tcpdump", "to capture charon's ESP answer")
    s, mn, ha = pair
    with Charon(s, ha, tmp_path / "ha", swanctl=_responder_conf(*GCM_X25519)) as charon:
        charon.load()
        ours = Ours(s, mn, _psk_file(tmp_path), "--show-keys", "--stay", "20",
                    "--until-deleted")
        try:
            (hoa,) = [ours.wait_event("AddressAssigned")["value"]]
            child = ours.wait_event("ChildSaEstablished")["child"]
            keys = child["keys"]
            assert keys["secret"] is True
            theirs = charon.wait_established(5, ike="ours", child="c")
            c = theirs.child("c")
            assert c.encap and c.spi_in == int(child["spi_out"], 16)
            suite = child["suite"]
            out = SecurityAssociation(int(child["spi_out"], 16), "out",
                                      ipaddress.ip_address(MN), ipaddress.ip_address(HA),
                                      suite, bytes.fromhex(keys["encr_out"]),
                                      bytes.fromhex(keys["integ_out"]), mode="tunnel",
                                      encap=(NAT_T_PORT, NAT_T_PORT))
            back = SecurityAssociation(int(child["spi_in"], 16), "in",
                                       ipaddress.ip_address(HA), ipaddress.ip_address(MN),
                                       suite, bytes.fromhex(keys["encr_in"]),
                                       bytes.fromhex(keys["integ_in"]), mode="tunnel",
                                       encap=(NAT_T_PORT, NAT_T_PORT))
            sad = SecurityAssociationDatabase()
            sad.add(back)
            # inside the tunnel: HoA (charon's pool) -> HA, both covered by the TS
            inner = bytes(IPv6(src=hoa, dst=HA, hlim=64)
                          / ICMPv6EchoRequest(id=0x6D36, seq=1, data=b"ours via IKE"))
            sealed = encapsulate(out, inner, os.urandom(out.cipher.spec.iv_size))
            header = mac_address(s, ha) + mac_address(s, mn) + b"\x86\xdd"
            capture = Capture(s, mn, tmp_path / "esp.pcap")
            try:
                s.run(mn, sys.executable, "-c", _SEND_FRAMES, "eth0",
                      (header + sealed).hex())
                wait_for("charon to count our packet and answer", lambda: (
                    lambda k: k.packets_in >= 1 and k.packets_out >= 1)(
                        _only_sa(charon).child("c")), timeout=5)
            finally:
                packets = esp_in_udp(capture.stop())
            replies = [p for p in packets if esp_header(p)[0] == back.spi]
            assert len(replies) == 1, [esp_header(p) for p in packets]
            opened = decapsulate(sad, replies[0])
            assert opened.sa is back
            assert echo(opened.packet) == (HA, hoa, "reply", 0x6D36, 1, b"ours via IKE")
            assert back.packets == 1 and back.errors == {}
        finally:
            ours.kill()
