"""Our IKEv2 (mip6lab.ikev2 on real UDP sockets, ``mip6lab ike``) against strongSwan.

Two namespaces on a veth, documentation addresses only: ``mn`` 2001:db8:1::1 and ``ha``
2001:db8:1::2. One side runs charon (:class:`mip6lab.testing.strongswan.Charon`, with
kernel-libipsec), the other ``mip6lab ike initiate`` / ``mip6lab ike respond`` as a
subprocess through ``ip netns exec``. What is checked is what both ends say:

* our initiator → charon responder with an IPv6 pool, for two IKE/ESP proposal sets: our
  JSON shows the IKE SA established, the INTERNAL_IP6_ADDRESS from charon's pool, and
  ``swanctl --list-sas`` shows the same IKE SPIs ESTABLISHED and the child SA INSTALLED
  with our SPIs mirrored. kernel-libipsec fakes a NAT (interop-notes.md), so our side
  must see NAT detected and have moved IKE to UDP 4500 after IKE_SA_INIT.
* charon initiator (``vips = ::``) → our responder with ``--pool6``: charon's list-sas
  shows ESTABLISHED and the virtual IP from our pool; our JSON agrees on SPIs and lease.
* a wrong PSK, both directions: AUTHENTICATION_FAILED, exit status 1, no SA on either side.
* our initiator with ``--delete``: charon's IKE SA goes away (INFORMATIONAL Delete).

Charon's traps honoured here: ``mobike = no`` (no extra INFORMATIONALs), identities typed
as charon types them (``mn@...`` RFC822, ``ha...`` FQDN), AES with the Key Length attribute.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mip6lab.testing import strongswan as sw
from mip6lab.testing.strongswan import Charon, Child, Connection, Pool, SharedKey, SwanctlConfig

MN, HA = "2001:db8:1::1", "2001:db8:1::2"
MN_ID, HA_ID = "mn@mip6lab.example", "ha.mip6lab.example"
PSK = "mip6lab psk #0123456789"
POOL_FIRST, POOL_LAST = "2001:db8:aaaa::100", "2001:db8:aaaa::1ff"   # charon's pool
OUR_POOL = "2001:db8:bbbb::/64"                                       # our responder's
# behind our responder: charon as initiator with a virtual IP cannot install a policy
# whose remote selector is the IKE peer's own address ("unable to install IPsec policies
# (SPD) in kernel", kernel-libipsec), so the child SA protects this address instead
HA_SERVICE = "2001:db8:f2::1"

PROPOSALS = [
    pytest.param("aes256gcm16-prfsha256-curve25519", "aes256gcm16", id="gcm-x25519"),
    pytest.param("aes128-sha256-modp2048", "aes128-sha256", id="cbc-modp2048"),
]

pytestmark = pytest.mark.netns


def _prereqs() -> None:
    from mip6lab.testing.prereq import missing, require_netns, require_tool

    require_netns("our IKE and charon in two namespaces")
    require_tool(sw.find_charon() or "charon", "the strongSwan IKE daemon")
    require_tool("swanctl", "to drive charon over vici")
    if lacking := sw.missing_plugins():
        missing("strongSwan plugins missing: " + ", ".join(
            f"{p} (Debian package {pkg})" for p, pkg in sorted(lacking.items())))


@pytest.fixture
def pair():
    """Two namespaces, mn and ha, on a veth with the documentation addresses."""
    from mip6lab.net.netns import NetnsSet

    _prereqs()
    with NetnsSet() as s:
        mn, ha = s.add_namespace("mn"), s.add_namespace("ha")
        s.add_veth(mn, "eth0", ha, "eth0")
        s.add_address(mn, "eth0", f"{MN}/64")
        s.add_address(ha, "eth0", f"{HA}/64")
        yield s, mn, ha


def _psk_file(tmp_path: Path, psk: str = PSK) -> Path:
    path = tmp_path / "psk"
    path.write_text(psk + "\n")
    path.chmod(0o600)
    return path


def _mip6lab(*args: str) -> list[str]:
    return [sys.executable, "-m", "mip6lab", *args]


def _initiate(s, ns, psk_file: Path, ike: str = "aes256gcm16-prfsha256-curve25519",
              esp: str = "aes256gcm16", *extra: str) -> tuple[int, dict, str]:
    proc = s.run(ns, *_mip6lab(
        "ike", "initiate", "--remote", HA, "--local", MN, "--id", MN_ID,
        "--remote-id", HA_ID, "--psk-file", str(psk_file), "--request", "ipv6",
        "--ike-proposal", ike, "--esp-proposal", esp, "--timeout", "10", "--json", "-v",
        *extra), check=False, timeout=40)
    assert proc.stdout.strip(), f"no output (status {proc.returncode}):\n{proc.stderr}"
    return proc.returncode, json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


def _responder_conf(ike: str, esp: str, psk: str = PSK) -> SwanctlConfig:
    return SwanctlConfig(
        connections=[Connection(
            "ours", local_addrs=HA, proposals=ike, local_id=HA_ID, remote_id=MN_ID,
            pools=["hoa6"], mobike=False,
            children=[Child("c", esp_proposals=esp, local_ts="dynamic",
                            remote_ts="dynamic")])],
        pools=[Pool("hoa6", f"{POOL_FIRST}-{POOL_LAST}")],
        secrets=[SharedKey(psk, ids=[MN_ID, HA_ID])])


def _in_pool(address: str, first: str, last: str) -> bool:
    return ipaddress.ip_address(first) <= ipaddress.ip_address(address) \
        <= ipaddress.ip_address(last)


# =========================================================== our initiator -> charon
@pytest.mark.parametrize("ike, esp", PROPOSALS)
def test_our_initiator_charon_responder(pair, tmp_path, ike, esp):
    s, mn, ha = pair
    with Charon(s, ha, tmp_path / "ha", swanctl=_responder_conf(ike, esp)) as charon:
        charon.load()
        status, ours, log = _initiate(s, mn, _psk_file(tmp_path), ike, esp)
        assert status == 0 and ours["established"], (ours, log, charon.log_text()[-3000:])
        assert ours["error"] is None
        assert ours["ike_sa"]["proposal"] == ike
        # kernel-libipsec fakes the NAT-D hash: we see a NAT and moved IKE to 4500
        assert ours["nat_detected"] is True
        assert (ours["ike_sa"]["local_port"], ours["ike_sa"]["remote_port"]) == (4500, 4500)
        # HoA assignment: INTERNAL_IP6_ADDRESS from charon's pool
        (hoa,) = [a["value"] for a in ours["assigned"]
                  if a["attribute"] == "INTERNAL_IP6_ADDRESS"]
        assert _in_pool(hoa, POOL_FIRST, POOL_LAST)

        theirs = charon.wait_established(5, ike="ours", child="c")
        assert theirs.state == "ESTABLISHED" and not theirs.initiator
        assert (theirs.spi_i, theirs.spi_r) == (ours["ike_sa"]["spi_i"],
                                                ours["ike_sa"]["spi_r"])
        assert theirs.remote_vips == [hoa]
        assert theirs.remote_port == 4500
        (child,) = ours["child_sas"]
        assert child["suite"] == esp and child["mode"] == "tunnel"
        assert child["local_ts"] == [f"{hoa}/128"] and child["remote_ts"] == [f"{HA}/128"]
        c = theirs.child("c")
        assert c.state == "INSTALLED" and c.mode == "TUNNEL" and c.encap
        assert (c.spi_in, c.spi_out) == (int(child["spi_out"], 16), int(child["spi_in"], 16))
        assert (c.local_ts, c.remote_ts) == ([f"{HA}/128"], [f"{hoa}/128"])


def test_our_initiator_deletes_and_charon_forgets(pair, tmp_path):
    s, mn, ha = pair
    with Charon(s, ha, tmp_path / "ha",
                swanctl=_responder_conf("aes256gcm16-prfsha256-curve25519",
                                        "aes256gcm16")) as charon:
        charon.load()
        status, ours, log = _initiate(s, mn, _psk_file(tmp_path), "aes256gcm16-prfsha256-"
                                      "curve25519", "aes256gcm16", "--delete")
        assert status == 0 and ours["established"] and ours["deleted"], (ours, log)
        assert ours["state"] == "CLOSED"
        assert charon.list_sas() == []
        assert "deleting IKE_SA" in charon.log_text() or \
            "received DELETE for IKE_SA" in charon.log_text()


def test_wrong_psk_our_initiator(pair, tmp_path):
    s, mn, ha = pair
    conf = _responder_conf("aes256gcm16-prfsha256-curve25519", "aes256gcm16",
                           psk="the responder's key")
    with Charon(s, ha, tmp_path / "ha", swanctl=conf) as charon:
        charon.load()
        status, ours, log = _initiate(s, mn, _psk_file(tmp_path))
        assert status == 1 and not ours["established"], (ours, log)
        assert ours["error"]["notify"] == "AUTHENTICATION_FAILED"
        assert ours["child_sas"] == [] and ours["ike_sa"] is None
        assert charon.list_sas() == []
        assert "N(AUTH_FAILED)" in charon.log_text()   # what charon answered


# =========================================================== charon -> our responder
def _initiator_conf(ike: str, esp: str, psk: str = PSK) -> SwanctlConfig:
    return SwanctlConfig(
        connections=[Connection(
            "ours", local_addrs=MN, remote_addrs=HA, proposals=ike, local_id=MN_ID,
            remote_id=HA_ID, vips=["::"], mobike=False,
            children=[Child("c", esp_proposals=esp, local_ts="dynamic",
                            remote_ts=f"{HA_SERVICE}/128", start_action="none")])],
        secrets=[SharedKey(psk, ids=[MN_ID, HA_ID])])


def _spawn_responder(s, ns, psk_file: Path, ike: str, esp: str) -> subprocess.Popen:
    proc = s.spawn(ns, _mip6lab(
        "ike", "respond", "--listen", HA, "--id", HA_ID, "--remote-id", MN_ID,
        "--psk-file", str(psk_file), "--pool6", OUR_POOL, "--ike-proposal", ike,
        "--esp-proposal", esp, "--local-ts", f"{HA_SERVICE}/128", "--once", "--timeout", "20", "--json", "-v"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 10
    while True:    # both sockets bound before charon sends anything
        bound = s.run(ns, "ss", "-Hnlu", check=False).stdout
        if f"[{HA}]:500 " in bound and f"[{HA}]:4500 " in bound:
            return proc
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"our responder did not bind: {bound}"
        time.sleep(0.05)


@pytest.mark.parametrize("ike, esp", PROPOSALS)
def test_charon_initiator_our_responder(pair, tmp_path, ike, esp):
    from mip6lab.testing.prereq import require_tool

    require_tool("ss", "to see our responder's sockets bound")
    s, mn, ha = pair
    responder = _spawn_responder(s, ha, _psk_file(tmp_path), ike, esp)
    with Charon(s, mn, tmp_path / "mn", swanctl=_initiator_conf(ike, esp)) as charon:
        charon.load()
        try:
            charon.initiate("c", timeout=10)
        finally:
            out, err = responder.communicate(timeout=25)
        assert responder.returncode == 0, (out, err, charon.log_text()[-3000:])
        ours = json.loads(out.strip().splitlines()[-1])
        theirs = charon.wait_established(5, ike="ours", child="c")
        assert theirs.state == "ESTABLISHED" and theirs.initiator
        (vip,) = theirs.local_vips
        assert ipaddress.ip_address(vip) in ipaddress.ip_network(OUR_POOL)
        assert ours["established"] and ours["role"] == "responder"
        assert [a["value"] for a in ours["assigned"]
                if a["attribute"] == "INTERNAL_IP6_ADDRESS"] == [vip]
        assert (theirs.spi_i, theirs.spi_r) == (ours["ike_sa"]["spi_i"],
                                                ours["ike_sa"]["spi_r"])
        assert ours["ike_sa"]["proposal"] == ike
        assert ours["ike_sa"]["peer_id"] == ["rfc822", MN_ID]
        assert theirs.local_port == 4500     # charon moved (fake NAT); we answered there
        (child,) = ours["child_sas"]
        c = theirs.child("c")
        assert c.state == "INSTALLED"
        assert (c.spi_in, c.spi_out) == (int(child["spi_out"], 16), int(child["spi_in"], 16))
        assert c.local_ts == [f"{vip}/128"] and c.remote_ts == [f"{HA_SERVICE}/128"]
        assert child["remote_ts"] == [f"{vip}/128"] and child["suite"] == esp


def test_wrong_psk_charon_initiator(pair, tmp_path):
    from mip6lab.testing.prereq import require_tool

    require_tool("ss", "to see our responder's sockets bound")
    s, mn, ha = pair
    ike, esp = "aes256gcm16-prfsha256-curve25519", "aes256gcm16"
    responder = _spawn_responder(s, ha, _psk_file(tmp_path, "our own key"), ike, esp)
    with Charon(s, mn, tmp_path / "mn", swanctl=_initiator_conf(ike, esp)) as charon:
        charon.load()
        try:
            with pytest.raises(sw.CharonError) as failure:
                charon.initiate("c", timeout=10)
        finally:
            out, err = responder.communicate(timeout=25)
        assert "AUTHENTICATION_FAILED" in str(failure.value)
        assert charon.list_sas() == []
        assert responder.returncode == 1, (out, err)
        ours = json.loads(out.strip().splitlines()[-1])
        assert not ours["established"] and ours["child_sas"] == []
        assert ours["error"]["notify"] == "AUTHENTICATION_FAILED"
        assert ours["state"] == "CLOSED"
