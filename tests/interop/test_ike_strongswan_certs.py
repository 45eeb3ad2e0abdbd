"""Certificate authentication (RFC 7296 §3.6-3.8, RFC 7427) between our IKEv2 and charon.

The namespaces, addresses and identities of test_ike_strongswan; a test CA from
:mod:`mip6lab.testing.pki` issues both end entities (``mn@mip6lab.example`` as an
rfc822Name SAN, ``ha.mip6lab.example`` as a dNSName SAN). Charon authenticates with
``auth = pubkey``, its certificate, key and the CA loaded from swanctl's directory layout
next to its swanctl.conf (``x509/``, ``private/``, ``x509ca/``; the harness loads the
pem, x509, pkcs1, pkcs8, pubkey and openssl plugins). Our side runs ``mip6lab ike
initiate/respond --cert --key --ca``. Both directions, RSA-2048 and ECDSA P-256:
ESTABLISHED on both sides with the same IKE SPIs and mirrored child SPIs; and a
certificate from a CA charon does not trust gives AUTHENTICATION_FAILED.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mip6lab.testing.pki import TestCA
from mip6lab.testing.strongswan import Charon, Child, Connection, Pool, SwanctlConfig

from .test_ike_strongswan import (HA, HA_ID, HA_SERVICE, MN, MN_ID, _mip6lab,  # noqa: F401
                                  pair)

pytestmark = pytest.mark.netns
IKE, ESP = "aes256gcm16-prfsha256-curve25519", "aes256gcm16"
KEY_TYPES = ["rsa", "ecdsa"]


@pytest.fixture(scope="module")
def ca():
    return TestCA.create("mip6lab interop CA", "ecdsa")


def _ours(tmp_path: Path, ca: TestCA, identity: str, key_type: str,
          issuer: TestCA | None = None) -> list[str]:
    """--cert/--key/--ca options for our side, files under tmp_path/ours."""
    issued = (issuer or ca).issue(identity, key_type)
    cert, key = issued.write(tmp_path / "ours")
    return ["--cert", str(cert), "--key", str(key),
            "--ca", str(ca.write(tmp_path / "ours" / "ca.pem"))]


def _charon_credentials(directory: Path, ca: TestCA, identity: str, key_type: str) -> None:
    ca.write_swanctl(directory, ca.issue(identity, key_type), name="own")


def _initiate_with_certs(s, ns, credentials: list[str]) -> tuple[int, dict, str]:
    proc = s.run(ns, *_mip6lab(
        "ike", "initiate", "--remote", HA, "--local", MN, "--id", MN_ID,
        "--remote-id", HA_ID, *credentials, "--request", "ipv6",
        "--ike-proposal", IKE, "--esp-proposal", ESP, "--timeout", "10", "--json", "-v"),
        check=False, timeout=40)
    assert proc.stdout.strip(), f"no output (status {proc.returncode}):\n{proc.stderr}"
    return proc.returncode, json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


def _responder_conf() -> SwanctlConfig:
    return SwanctlConfig(connections=[Connection(
        "ours", local_addrs=HA, proposals=IKE, local_id=HA_ID, remote_id=MN_ID,
        local_auth="pubkey", remote_auth="pubkey", local_options={"certs": "own.pem"},
        pools=["hoa6"], mobike=False,
        children=[Child("c", esp_proposals=ESP, local_ts="dynamic", remote_ts="dynamic")])],
        pools=[Pool("hoa6", "2001:db8:aaaa::100-2001:db8:aaaa::1ff")])


def _initiator_conf() -> SwanctlConfig:
    return SwanctlConfig(connections=[Connection(
        "ours", local_addrs=MN, remote_addrs=HA, proposals=IKE, local_id=MN_ID,
        remote_id=HA_ID, local_auth="pubkey", remote_auth="pubkey",
        local_options={"certs": "own.pem"}, vips=["::"], mobike=False,
        children=[Child("c", esp_proposals=ESP, local_ts="dynamic",
                        remote_ts=f"{HA_SERVICE}/128", start_action="none")])])


# =========================================================== our initiator -> charon
@pytest.mark.parametrize("ours_key", KEY_TYPES)
@pytest.mark.parametrize("theirs_key", KEY_TYPES)
def test_our_initiator_charon_responder_certificates(pair, tmp_path, ca, ours_key,
                                                     theirs_key):
    s, mn, ha = pair
    _charon_credentials(tmp_path / "ha", ca, HA_ID, theirs_key)
    with Charon(s, ha, tmp_path / "ha", swanctl=_responder_conf()) as charon:
        charon.load()
        status, ours, log = _initiate_with_certs(s, mn, _ours(tmp_path, ca, MN_ID,
                                                              ours_key))
        assert status == 0 and ours["established"], (ours, log, charon.log_text()[-4000:])
        assert ours["ike_sa"]["peer_id"] == ["fqdn", HA_ID]
        theirs = charon.wait_established(5, ike="ours", child="c")
        assert theirs.state == "ESTABLISHED" and not theirs.initiator
        assert (theirs.spi_i, theirs.spi_r) == (ours["ike_sa"]["spi_i"],
                                                ours["ike_sa"]["spi_r"])
        (child,) = ours["child_sas"]
        c = theirs.child("c")
        assert c.state == "INSTALLED"
        assert (c.spi_in, c.spi_out) == (int(child["spi_out"], 16), int(child["spi_in"], 16))
        text = charon.log_text()
        # charon checked our certificate against its CA and our RFC 7427 signature
        scheme = "RSA_EMSA_PKCS1_SHA2_256" if ours_key == "rsa" else "ECDSA_WITH_SHA256_DER"
        assert f"authentication of '{MN_ID}' with {scheme} successful" in text, text[-4000:]


def test_untrusted_certificate_our_initiator(pair, tmp_path, ca):
    s, mn, ha = pair
    _charon_credentials(tmp_path / "ha", ca, HA_ID, "ecdsa")
    stranger = TestCA.create("not charon's CA", "ecdsa")
    credentials = _ours(tmp_path, ca, MN_ID, "ecdsa", issuer=stranger)
    with Charon(s, ha, tmp_path / "ha", swanctl=_responder_conf()) as charon:
        charon.load()
        status, ours, log = _initiate_with_certs(s, mn, credentials)
        assert status == 1 and not ours["established"], (ours, log)
        assert ours["error"]["notify"] == "AUTHENTICATION_FAILED"
        assert ours["child_sas"] == []
        assert charon.list_sas() == []


# =========================================================== charon -> our responder
@pytest.mark.parametrize("ours_key", KEY_TYPES)
@pytest.mark.parametrize("theirs_key", KEY_TYPES)
def test_charon_initiator_our_responder_certificates(pair, tmp_path, ca, ours_key,
                                                     theirs_key):
    import subprocess

    from mip6lab.testing.prereq import require_tool

    require_tool("ss", "to see our responder's sockets bound")
    s, mn, ha = pair
    _charon_credentials(tmp_path / "mn", ca, MN_ID, theirs_key)
    responder = _spawn_responder_certs(s, ha, _ours(tmp_path, ca, HA_ID, ours_key))
    with Charon(s, mn, tmp_path / "mn", swanctl=_initiator_conf()) as charon:
        charon.load()
        try:
            charon.initiate("c", timeout=10)
        finally:
            try:
                out, err = responder.communicate(timeout=25)
            except subprocess.TimeoutExpired:
                responder.kill()
                out, err = responder.communicate()
        assert responder.returncode == 0, (out, err, charon.log_text()[-4000:])
        ours = json.loads(out.strip().splitlines()[-1])
        theirs = charon.wait_established(5, ike="ours", child="c")
        assert theirs.state == "ESTABLISHED" and theirs.initiator
        assert ours["established"] and ours["role"] == "responder"
        assert ours["ike_sa"]["peer_id"] == ["rfc822", MN_ID]
        assert (theirs.spi_i, theirs.spi_r) == (ours["ike_sa"]["spi_i"],
                                                ours["ike_sa"]["spi_r"])
        (child,) = ours["child_sas"]
        c = theirs.child("c")
        assert c.state == "INSTALLED"
        assert (c.spi_in, c.spi_out) == (int(child["spi_out"], 16), int(child["spi_in"], 16))
        assert f"authentication of '{HA_ID}' with" in charon.log_text()


def _spawn_responder_certs(s, ns, credentials: list[str]):
    """_spawn_responder of test_ike_strongswan, with --cert/--key/--ca for --psk-file."""
    import subprocess
    import time

    proc = s.spawn(ns, _mip6lab(
        "ike", "respond", "--listen", HA, "--id", HA_ID, "--remote-id", MN_ID,
        *credentials, "--pool6", "2001:db8:bbbb::/64", "--ike-proposal", IKE,
        "--esp-proposal", ESP, "--local-ts", f"{HA_SERVICE}/128", "--once",
        "--timeout", "20", "--json", "-v"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 10
    while True:
        bound = s.run(ns, "ss", "-Hnlu", check=False).stdout
        if f"[{HA}]:500 " in bound and f"[{HA}]:4500 " in bound:
            return proc
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"our responder did not bind: {bound}"
        time.sleep(0.05)
