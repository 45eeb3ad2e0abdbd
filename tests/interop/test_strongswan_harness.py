"""The strongSwan harness: keys out of charon's log, Wireshark tables, charon in namespaces.

Two layers of proof:

* without root: the log parser on the recorded pair in
  tests/data/strongswan-5.9.8-pair/ (copied from the shared fixtures) (exact bytes from the logs, both logs
  agreeing, the keys re-derived with RFC 7296 §2.14/§2.17 from the parsed nonces and SPIs,
  and the key tables equal to the fixture's, byte for byte);
* with root: two charons in two namespaces negotiate a PSK IKE SA with a virtual IPv6
  address from a pool (the HoA of RFC 4877 §9), ping through kernel-libipsec's tunnel, and
  tshark decrypts the captured ESP and IKE_AUTH with the tables written from the logs.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import subprocess
import time
from pathlib import Path

import pytest

from mip6lab.testing import strongswan as sw
from mip6lab.testing.strongswan import (
    Charon,
    Child,
    Connection,
    Pool,
    SharedKey,
    SwanctlConfig,
    esp_sa_table,
    ikev2_decryption_table,
    parse_charon_log,
    parse_hexdumps,
    parse_list_sas,
    parse_log_line,
    parse_proposal,
    wireshark_esp_algorithms,
    wireshark_ike_algorithms,
    write_wireshark_keys,
)

# the real strongSwan capture and logs, copied into the repository from the shared fixtures
FIXTURES = Path(__file__).resolve().parents[1] / "data" / "strongswan-5.9.8-pair"


def _fixture(name: str) -> Path:
    path = FIXTURES / name
    if not path.exists():
        pytest.fail(f"fixture {path} is missing from the repository")
    return path


@pytest.fixture(scope="module")
def initiator_keys() -> sw.CharonKeys:
    return parse_charon_log(_fixture("initiator-charon.log").read_text())


@pytest.fixture(scope="module")
def responder_keys() -> sw.CharonKeys:
    return parse_charon_log(_fixture("responder-charon.log").read_text())


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


# =========================================================================== hex dumps
SK_EI_DUMP = """\
02:49:13 08[IKE] <v6psk|1> Sk_ei secret => 36 bytes @ 0x7f499000c970
02:49:13 08[IKE] <v6psk|1>    0: EB E2 1F 84 62 C1 D0 EB CA 0D FF 71 3D EE C0 00  ....b......q=...
02:49:13 08[IKE] <v6psk|1>   16: 02 09 EC 69 28 A9 D0 EE 56 2D D7 BD 22 5B 5F 4B  ...i(...V-.."[_K
02:49:13 08[IKE] <v6psk|1>   32: 38 5A FC 0C                                      8Z..
"""


def test_hexdump_from_fixture_lines():
    (dump,) = parse_hexdumps(SK_EI_DUMP)
    assert dump.label == "Sk_ei secret"
    assert dump.data == h("EBE21F8462C1D0EBCA0DFF713DEEC000 0209EC6928A9D0EE562DD7BD225B5F4B"
                          "385AFC0C")
    assert (dump.line.thread, dump.line.group, dump.line.ike_name, dump.line.ike_sa) == \
        (8, "IKE", "v6psk", 1)


def test_hexdump_ascii_column_that_looks_like_hex():
    # The bytes "AB CD EF 01 23" are printable: the ASCII column repeats them as hex-like
    # text. Only the announced number of cells may be read.
    data = b"AB CD EF 01 23"
    cells = " ".join(f"{b:02X}" for b in data)
    text = (f"10:00:00 05[IKE] <x|7> tricky => {len(data)} bytes @ 0x1\n"
            f"10:00:00 05[IKE] <x|7>    0: {cells:<47}  {data.decode()}\n")
    (dump,) = parse_hexdumps(text)
    assert dump.data == data


def test_hexdump_interleaved_threads_and_truncation():
    text = (
        "00:00:01 03[CHD] <a|1> first => 20 bytes @ 0x1\n"
        "00:00:01 04[NET] <b|2> received packet: from 192.0.2.1[500] to 192.0.2.2[500]\n"
        "00:00:01 03[CHD] <a|1>    0: 00 01 02 03 04 05 06 07 08 09 0A 0B 0C 0D 0E 0F  ................\n"
        "00:00:01 04[IKE] <b|2> cut => 32 bytes @ 0x2\n"
        "00:00:01 03[CHD] <a|1>   16: 10 11 12 13                                      ....\n"
        "00:00:01 04[IKE] <b|2>    0: FF FF FF FF FF FF FF FF FF FF FF FF FF FF FF FF  ................\n"
        "00:00:01 04[IKE] <b|2> something else entirely\n"
        "00:00:01 05[IKE] <c|3> empty => 0 bytes @ (nil)\n"
    )
    # "cut" is dropped: its thread moved on before the 32 bytes were complete.
    assert [(d.label, d.data) for d in parse_hexdumps(text)] == [
        ("first", bytes(range(20))), ("empty", b"")]


def test_log_line_variants():
    full = parse_log_line("Jan  5 02:49:13 14[CHD] <v6psk|1> adding inbound ESP SA")
    assert (full.thread, full.group, full.ike_name, full.ike_sa, full.message) == \
        (14, "CHD", "v6psk", 1, "adding inbound ESP SA")
    unnamed = parse_log_line("02:49:14 09[ENC] <3> parsed IKE_SA_INIT request 0 [ SA ]")
    assert (unnamed.ike_name, unnamed.ike_sa) == (None, 3)
    bare = parse_log_line("00[DMN] Starting IKE charon daemon")
    assert (bare.thread, bare.ike_sa, bare.message) == (0, None, "Starting IKE charon daemon")
    leveled = parse_log_line("12:00:00 16[IKE4] <v|2> SKEYSEED => 32 bytes @ 0x1")
    assert (leveled.group, leveled.ike_sa) == ("IKE", 2)
    assert parse_log_line("no charon here") is None


# =========================================================================== fixture keys
def test_fixture_ike_sa_keys_exact(initiator_keys):
    sa = initiator_keys.ike_sa(1)
    assert (sa.name, sa.initiator, sa.proposal) == (
        "v6psk", True, "IKE:AES_GCM_16_256/PRF_HMAC_SHA2_256/CURVE_25519")
    assert sa.spi_i == h("b5c7326aaf8979ad") and sa.spi_r == h("2351bff79041d1b6")
    assert sa.nonce_i == h("74EF70DF2CD5FA4EA41006553F3F9C9C413EE5944E2ADFF957C401B0F7B5FB18")
    assert sa.nonce_r == h("95960BAB687C0D34CC4207E8688956730D1B9DBE9F82CFBE135A45306EE65C3F")
    assert sa.shared_secret == h(
        "4E947523EAE0297AF99AFEC01E3ED021322EFB83FDAA7E4627CF705DB921B36A")
    assert sa.skeyseed == h("ABBCF8A29437BED2CB40F9D24AE96EAE1EAFA699139F1FD74013194AE4186C28")
    assert sa.sk_d == h("3CE567DF0266BED6F44B232C547AADFCAA2F92C040728D7D1C85E62A3D5A4226")
    assert sa.sk_ei == h("EBE21F8462C1D0EBCA0DFF713DEEC0000209EC6928A9D0EE562DD7BD225B5F4B"
                         "385AFC0C")
    assert sa.sk_er == h("DBA5318B6F2C2387AFD246113C9028388C9C4F940C50678737401CF88387B639"
                         "C642E69E")
    assert sa.sk_pi == h("42747F12ECE379BA6656DBD7335C6DE8633294FF3B73C96DA353E9BC5AB17E69")
    assert sa.sk_pr == h("A44A48E00B7D46A7B040F93A290141A5C573A093E8C044A51A45514B9244CD36")
    assert sa.sk_ai is None and sa.sk_ar is None  # AEAD: no integrity keys
    assert (sa.local_host, sa.local_id, sa.remote_host, sa.remote_id) == (
        "2001:db8:1::1", "v6@mip6lab.example", "2001:db8:1::2", "ha.mip6lab.example")
    assert len(sa.ike_sa_init_request) == 232 and len(sa.ike_sa_init_response) == 240

    v4 = initiator_keys.ike_sa(name="v4psk")
    assert v4.proposal == "IKE:AES_CBC_256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048"
    assert v4.sk_ai == h("dffe94479c92b2ef3ff462ed04b5f93880c38d7b82a2dab5fa8e4295fa711cc3")
    assert v4.sk_ar == h("a4b67fa5f1991cff113ac5ded89f652856566708a192990cd19010de2727de9d")
    assert len(v4.shared_secret) == 256  # MODP-2048 g^ir


def test_fixture_child_sa_keys_exact(initiator_keys, responder_keys):
    child = initiator_keys.child_sa("v6child", unique_id=1)  # later ones: a timing loop
    assert (child.ike_sa, child.unique_id, child.initiator) == (1, 1, True)
    assert child.proposal == "ESP:AES_GCM_16_256/NO_EXT_SEQ"
    assert (child.spi_in, child.spi_out) == (0x9E55B82B, 0xD4F3FB71)
    assert child.encr_i == h("E917E6CC58915667048E4B8ABB682059A12F7CB764353D424AFBCCEAC8AEDB50"
                             "BF96D941")
    assert child.encr_r == h("323407C30949171FDA3D37BF1DBEC8E9A2A8C969616E0C6A8110DEA82281BFF9"
                             "21782122")
    out = child.outbound
    assert (out.spi, out.src, out.dst, out.encryption_key) == (
        0xD4F3FB71, "2001:db8:1::1", "2001:db8:1::2", child.encr_i)
    assert child.inbound.encryption_key == child.encr_r
    assert (child.local_ts, child.remote_ts) == (["2001:db8:f1::1/128"], ["2001:db8:f2::1/128"])

    v4 = responder_keys.child_sa("v4child")
    assert v4.initiator is False
    assert v4.proposal == "ESP:AES_CBC_256/HMAC_SHA2_256_128/NO_EXT_SEQ"
    # The responder receives with the initiator's keys.
    assert (v4.inbound.spi, v4.inbound.src) == (0xFE7C3DFA, "192.0.2.1")
    assert v4.inbound.encryption_key == h(
        "9b38d0174a71dca4d6eba20bfaf14d1c224ff22725c770dc698eebd0180133e2")
    assert v4.inbound.integrity_key == h(
        "c42c0063ff856290577df968e132e8aaba041146ba0260295d9da9b4678273a2")
    assert v4.outbound.integrity_key == h(
        "b2303c9e78abbcbaf37aeced83a2817229db0294defd94194b89fdd6110ae866")

    hoa = initiator_keys.child_sa("hoachild")
    assert hoa.local_ts == ["2001:db8:aaaa::100/128"]  # the HoA from the pool


def test_both_logs_agree(initiator_keys, responder_keys):
    assert len(initiator_keys.ike_sas) == len(responder_keys.ike_sas) == 13
    assert len(initiator_keys.child_sas) == len(responder_keys.child_sas) == 13
    fields = ("spi_i", "spi_r", "nonce_i", "nonce_r", "shared_secret", "skeyseed", "sk_d",
              "sk_ai", "sk_ar", "sk_ei", "sk_er", "sk_pi", "sk_pr", "proposal",
              "ike_sa_init_request", "ike_sa_init_response")
    for mine, theirs in zip(initiator_keys.ike_sas, responder_keys.ike_sas):
        assert mine.initiator is True and theirs.initiator is False
        for name in fields:
            assert getattr(mine, name) == getattr(theirs, name), (mine.unique_id, name)
    for mine, theirs in zip(initiator_keys.child_sas, responder_keys.child_sas):
        assert (mine.initiator, theirs.initiator) == (True, False)
        assert (mine.spi_in, mine.spi_out) == (theirs.spi_out, theirs.spi_in)
        assert mine.esp_sas() == theirs.esp_sas()


def _prf_plus(key: bytes, seed: bytes, length: int) -> bytes:
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(key, block + seed + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def test_parsed_values_rederive_the_keys(initiator_keys):
    """RFC 7296 §2.14 and §2.17 from the parsed nonces, SPIs and g^ir give charon's keys."""
    for sa in initiator_keys.ike_sas:
        nonces = sa.nonce_i + sa.nonce_r
        skeyseed = hmac.new(nonces, sa.shared_secret, hashlib.sha256).digest()
        assert skeyseed == sa.skeyseed
        parts = [sa.sk_d, sa.sk_ai or b"", sa.sk_ar or b"", sa.sk_ei, sa.sk_er, sa.sk_pi,
                 sa.sk_pr]
        stream = _prf_plus(skeyseed, nonces + sa.spi_i + sa.spi_r, sum(map(len, parts)))
        assert stream == b"".join(parts), sa.unique_id
    for child in initiator_keys.child_sas:
        sa = initiator_keys.ike_sa(child.ike_sa)
        assert child.seed == sa.nonce_i + sa.nonce_r
        parts = [child.encr_i, child.integ_i, child.encr_r, child.integ_r]
        assert _prf_plus(sa.sk_d, child.seed, sum(map(len, parts))) == b"".join(parts)


def test_tables_equal_the_fixture_files(initiator_keys, responder_keys):
    esp_expected = _fixture("esp_sa").read_text()
    ike_expected = _fixture("ikev2_decryption_table").read_text()
    for keys in (initiator_keys, responder_keys):
        recorded = [c for c in keys.child_sas if c.ike_sa <= 3]  # the later ones are
        assert esp_sa_table(recorded) == esp_expected           # not in the capture
        assert ikev2_decryption_table([s for s in keys.ike_sas if s.unique_id <= 3]) == \
            ike_expected
    # Both ends at once: every SA written once.
    both = esp_sa_table([initiator_keys, responder_keys])
    assert both == esp_sa_table(initiator_keys) and both.count("\n") == 26


def test_wireshark_algorithm_names():
    assert wireshark_esp_algorithms("ESP:AES_GCM_16_256/NO_EXT_SEQ") == (
        "AES-GCM with 16 octet ICV [RFC4106]", "NULL")
    assert wireshark_esp_algorithms("ESP:AES_CBC_128/HMAC_SHA1_96/NO_EXT_SEQ") == (
        "AES-CBC [RFC3602]", "HMAC-SHA-1-96 [RFC2404]")
    assert wireshark_esp_algorithms("ESP:AES_CTR_256/HMAC_SHA2_512_256/EXT_SEQ") == (
        "AES-CTR [RFC3686]", "HMAC-SHA-512-256 [RFC4868]")
    assert wireshark_esp_algorithms("ESP:3DES_CBC/HMAC_MD5_96/NO_EXT_SEQ") == (
        "TripleDES-CBC [RFC2451]", "HMAC-MD5-96 [RFC2403]")
    assert wireshark_ike_algorithms("IKE:AES_GCM_16_128/PRF_HMAC_SHA2_256/ECP_256") == (
        "AES-GCM-128 with 16 octet ICV [RFC5282]", "NONE [RFC4306]")
    assert wireshark_ike_algorithms(
        "IKE:AES_CBC_192/HMAC_SHA2_384_192/PRF_HMAC_SHA2_384/MODP_3072") == (
        "AES-CBC-192 [RFC3602]", "HMAC_SHA2_384_192 [RFC4868]")
    with pytest.raises(sw.UnsupportedAlgorithm):
        wireshark_esp_algorithms("ESP:CHACHA20_POLY1305_256/NO_EXT_SEQ")
    with pytest.raises(sw.UnsupportedAlgorithm):
        wireshark_ike_algorithms("IKE:AES_CBC_128/AES_XCBC_96/PRF_AES128_XCBC/MODP_2048")


def test_parse_proposal():
    p = parse_proposal("IKE:AES_CBC_256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048")
    assert (p.protocol, p.encryption, p.key_size, p.integrity, p.prf, p.dh_group, p.aead) == (
        "IKE", "AES_CBC", 256, "HMAC_SHA2_256_128", "PRF_HMAC_SHA2_256", "MODP_2048", False)
    g = parse_proposal("ESP:AES_GCM_16_256/CURVE_25519/EXT_SEQ")
    assert (g.encryption, g.key_size, g.integrity, g.dh_group, g.esn, g.aead) == (
        "AES_GCM_16", 256, None, "CURVE_25519", True, True)


def test_tshark_decrypts_the_fixture_capture_with_our_tables(tmp_path, initiator_keys):
    from mip6lab.testing.prereq import require_tool
    from mip6lab.testing.tshark import tshark_fields

    require_tool("tshark", "to check the key tables against a real dissector")
    keys_dir = write_wireshark_keys(tmp_path / "keys", initiator_keys)
    pcap = _fixture("pair.pcapng")
    echoes = tshark_fields(pcap, ["esp.spi", "icmpv6.type", "icmp.type"], "esp",
                           keys_dir=keys_dir)
    assert echoes and all(f["icmpv6.type"] or f["icmp.type"] for f in echoes)
    ids = tshark_fields(pcap, ["isakmp.id.data.user_fqdn"],
                        "isakmp.exchangetype == 35 && isakmp.flags == 0x08", keys_dir=keys_dir)
    assert [f["isakmp.id.data.user_fqdn"][0] for f in ids] == [
        "v6@mip6lab.example", "v4@mip6lab.example", "mn@mip6lab.example"]


# =========================================================================== swanctl side
def test_swanctl_config_renders():
    config = SwanctlConfig(
        connections=[Connection(
            "hoa", local_addrs="2001:db8:1::1", remote_addrs="2001:db8:1::2",
            local_id="mn@mip6lab.example", remote_id="ha.mip6lab.example", vips=["::"],
            mobike=False, children=[Child("hoachild", remote_ts="2001:db8:f2::1/128",
                                          start_action="none")])],
        pools=[Pool("hoa6", "2001:db8:aaaa::100-2001:db8:aaaa::1ff")],
        secrets=[SharedKey('lab "psk" #1', ids=["mn@mip6lab.example", "ha.mip6lab.example"])])
    assert config.render() == """\
connections {
  hoa {
    version = 2
    local_addrs = 2001:db8:1::1
    remote_addrs = 2001:db8:1::2
    proposals = aes256gcm16-prfsha256-curve25519
    vips = ::
    mobike = no
    local {
      auth = psk
      id = mn@mip6lab.example
    }
    remote {
      auth = psk
      id = ha.mip6lab.example
    }
    children {
      hoachild {
        esp_proposals = aes256gcm16
        local_ts = dynamic
        remote_ts = 2001:db8:f2::1/128
        start_action = none
      }
    }
  }
}
pools {
  hoa6 {
    addrs = 2001:db8:aaaa::100-2001:db8:aaaa::1ff
  }
}
secrets {
  ike-psk {
    id-0 = mn@mip6lab.example
    id-1 = ha.mip6lab.example
    secret = "lab \\"psk\\" #1"
  }
}
"""


LIST_SAS_PRETTY = """\
list-sa event {
  hoa {
    uniqueid = 1
    version = 2
    state = ESTABLISHED
    local-host = 2001:db8:1::2
    local-port = 4500
    local-id = C=CH, O=mip6lab, CN=ha = home agent {1}
    remote-host = 2001:db8:1::1
    remote-port = 4500
    remote-id = mn@mip6lab.example
    initiator-spi = 3204b9a900073c06
    responder-spi = c2c4cb4e2be55cf6
    nat-remote = yes
    nat-any = yes
    encr-alg = AES_GCM_16
    encr-keysize = 256
    prf-alg = PRF_HMAC_SHA2_256
    dh-group = CURVE_25519
    established = 0
    rekey-time = 13932
    remote-vips = [
      2001:db8:aaaa::100
    ]
    child-sas {
      hoachild-1 {
        name = hoachild
        uniqueid = 1
        reqid = 1
        state = INSTALLED
        mode = TUNNEL
        protocol = ESP
        encap = yes
        spi-in = 87684eb3
        spi-out = d57dc37f
        encr-alg = AES_GCM_16
        encr-keysize = 256
        bytes-in = 0
        packets-in = 3
        bytes-out = 0
        packets-out = 3
        rekey-time = 3354
        life-time = 3960
        install-time = 0
        local-ts = [
          2001:db8:f2::1/128
        ]
        remote-ts = [
          2001:db8:aaaa::100/128
        ]
      }
    }
  }
}
list-sas reply {
}
"""


def test_parse_list_sas_pretty():
    (sa,) = parse_list_sas(LIST_SAS_PRETTY)
    assert (sa.name, sa.unique_id, sa.state, sa.initiator, sa.nat) == (
        "hoa", 1, "ESTABLISHED", False, True)
    assert (sa.spi_i, sa.spi_r) == ("3204b9a900073c06", "c2c4cb4e2be55cf6")
    assert sa.local_id == "C=CH, O=mip6lab, CN=ha = home agent {1}"  # spaces, '=', '{'
    assert sa.proposal == "IKE:AES_GCM_16_256/PRF_HMAC_SHA2_256/CURVE_25519"
    assert (sa.remote_vips, sa.local_vips) == (["2001:db8:aaaa::100"], [])
    child = sa.child("hoachild")
    assert (child.unique_id, child.state, child.mode, child.encap) == (
        1, "INSTALLED", "TUNNEL", True)
    assert (child.spi_in, child.spi_out) == (0x87684EB3, 0xD57DC37F)
    assert child.proposal == "ESP:AES_GCM_16_256/NO_EXT_SEQ"
    assert (child.local_ts, child.remote_ts) == (["2001:db8:f2::1/128"],
                                                 ["2001:db8:aaaa::100/128"])
    assert (child.packets_in, child.packets_out) == (3, 3)
    assert parse_list_sas("list-sas reply {\n}\n") == []


# =========================================================================== live pair
POOL_FIRST, POOL_LAST = "2001:db8:aaaa::100", "2001:db8:aaaa::1ff"
HA_SERVICE = "2001:db8:f2::1"  # an address behind the responder, reached through the tunnel
PSK = "mip6lab psk #0123456789"  # a space and a '#': the quoting must hold


def _live_prereqs() -> None:
    from mip6lab.testing.prereq import missing, require_netns, require_tool

    require_netns("two charons in two namespaces")
    require_tool(sw.find_charon() or "charon", "the strongSwan IKE daemon")
    require_tool("swanctl", "to drive charon over vici")
    require_tool("tcpdump", "to capture the veth")
    require_tool("tshark", "to decrypt the capture")
    if lacking := sw.missing_plugins():
        missing("strongSwan plugins missing: " + ", ".join(
            f"{p} (Debian package {pkg})" for p, pkg in sorted(lacking.items())))


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _start_capture(netns, ns, path: Path) -> subprocess.Popen:
    log = path.with_suffix(".tcpdump.log")
    with open(log, "w") as err:
        proc = netns.spawn(ns, ["tcpdump", "-i", "eth0", "-n", "-U", "--immediate-mode", "-w",
                                str(path), "udp"], stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + 10
    while "listening on" not in log.read_text():
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "tcpdump did not start"
        time.sleep(0.02)
    return proc


@pytest.mark.netns
@pytest.mark.tshark
def test_live_pair_assigns_hoa_pings_and_tshark_decrypts(tmp_path):
    from mip6lab.net.netns import NetnsSet, list_namespaces
    from mip6lab.testing.tshark import check_capture, tshark_fields

    _live_prereqs()
    started = time.monotonic()
    mn_conf = SwanctlConfig(
        connections=[Connection(
            "hoa", local_addrs="2001:db8:1::1", remote_addrs="2001:db8:1::2",
            proposals="aes256gcm16-prfsha256-curve25519", local_id="mn@mip6lab.example",
            remote_id="ha.mip6lab.example", vips=["::"], mobike=False,
            children=[Child("hoachild", esp_proposals="aes256gcm16", local_ts="dynamic",
                            remote_ts=f"{HA_SERVICE}/128")])],
        secrets=[SharedKey(PSK, ids=["mn@mip6lab.example", "ha.mip6lab.example"])])
    ha_conf = SwanctlConfig(
        connections=[Connection(
            "hoa", local_addrs="2001:db8:1::2", proposals="aes256gcm16-prfsha256-curve25519",
            local_id="ha.mip6lab.example", remote_id="mn@mip6lab.example", pools=["hoa6"],
            mobike=False,
            children=[Child("hoachild", esp_proposals="aes256gcm16",
                            local_ts=f"{HA_SERVICE}/128", remote_ts="dynamic")])],
        pools=[Pool("hoa6", f"{POOL_FIRST}-{POOL_LAST}")],
        secrets=[SharedKey(PSK, ids=["mn@mip6lab.example", "ha.mip6lab.example"])])

    with NetnsSet() as s:
        mn, ha = s.add_namespace("mn"), s.add_namespace("ha")
        s.add_veth(mn, "eth0", ha, "eth0")
        s.add_address(mn, "eth0", "2001:db8:1::1/64")
        s.add_address(ha, "eth0", "2001:db8:1::2/64")
        s.add_address(mn, "eth0", "192.0.2.1/24")
        s.add_address(ha, "eth0", "192.0.2.2/24")
        s.add_address(ha, "lo", f"{HA_SERVICE}/128")
        names = s.names

        responder = Charon(s, ha, tmp_path / "ha", swanctl=ha_conf).start()
        initiator = Charon(s, mn, tmp_path / "mn", swanctl=mn_conf).start()
        loaded = responder.load()
        assert "loaded connection 'hoa'" in loaded and "loaded pool 'hoa6'" in loaded
        initiator.load()

        pcap = tmp_path / "veth.pcap"
        capture = _start_capture(s, mn, pcap)
        initiator.initiate("hoachild", timeout=10)
        mine = initiator.wait_established(5, ike="hoa", child="hoachild")
        theirs = responder.wait_established(5, ike="hoa", child="hoachild")

        # The HoA: INTERNAL_IP6_ADDRESS from the responder's pool, on our TUN device.
        (hoa,) = mine.local_vips
        assert ipaddress.ip_address(POOL_FIRST) <= ipaddress.ip_address(hoa) \
            <= ipaddress.ip_address(POOL_LAST)
        assert theirs.remote_vips == [hoa]
        assert hoa in s.run(mn, "ip", "-6", "addr", "show", "dev", "ipsec0").stdout
        assert (mine.spi_i, mine.spi_r) == (theirs.spi_i, theirs.spi_r)
        assert mine.child("hoachild").encap  # kernel-libipsec: ESP in UDP 4500

        ping = s.run(mn, "ping", "-6", "-n", "-c", "3", "-i", "0.2", "-W", "2", HA_SERVICE,
                     check=False)
        assert ping.returncode == 0 and " 0% packet loss" in ping.stdout, ping.stdout
        counted = initiator.wait_established(1, ike="hoa").child("hoachild")
        assert counted.packets_out >= 3 and counted.packets_in >= 3

        capture.terminate()
        capture.wait(timeout=5)

        # Keys from both logs agree with each other and with list-sas.
        keys_mn, keys_ha = initiator.keys(), responder.keys()
        ike_mn, ike_ha = keys_mn.ike_sa(mine.unique_id), keys_ha.ike_sa(theirs.unique_id)
        assert ike_mn.spis == (mine.spi_i, mine.spi_r) == ike_ha.spis
        assert (ike_mn.sk_ei, ike_mn.sk_er, ike_mn.sk_d) == (ike_ha.sk_ei, ike_ha.sk_er,
                                                             ike_ha.sk_d)
        assert ike_mn.proposal == mine.proposal
        child_mn = keys_mn.child_sa("hoachild")
        assert (child_mn.spi_in, child_mn.spi_out) == (mine.child("hoachild").spi_in,
                                                       mine.child("hoachild").spi_out)
        assert child_mn.esp_sas() == keys_ha.child_sa("hoachild").esp_sas()
        assert child_mn.local_ts == [f"{hoa}/128"]

        # tshark, given only the tables written from the logs, sees inside.
        keys_dir = write_wireshark_keys(tmp_path / "keys", keys_mn, keys_ha)
        assert (keys_dir / "esp_sa").read_text().count("\n") == 2
        assert (keys_dir / "ikev2_decryption_table").read_text().count("\n") == 1
        # veth offloads the UDP checksum (CHECKSUM_PARTIAL): the capture holds the packets
        # before anyone fills it in, so tshark's UDP checksum check must stay off here.
        check_capture(pcap, keys_dir=keys_dir, options=["udp.check_checksum:FALSE"])
        inner = tshark_fields(pcap, ["esp.spi", "ipv6.src", "ipv6.dst", "icmpv6.type"],
                              "esp && icmpv6", keys_dir=keys_dir)
        requests = [f for f in inner if f["icmpv6.type"] == ["128"]]
        replies = [f for f in inner if f["icmpv6.type"] == ["129"]]
        assert len(requests) == 3 and len(replies) == 3
        assert requests[0]["ipv6.src"] == ["2001:db8:1::1", hoa]  # outer, inner
        assert requests[0]["ipv6.dst"] == ["2001:db8:1::2", HA_SERVICE]
        assert requests[0]["esp.spi"] == [f"0x{child_mn.spi_out:08x}"]
        auth = tshark_fields(pcap, ["isakmp.flags", "isakmp.id.type", "isakmp.id.data.user_fqdn",
                                    "isakmp.cfg.attr.internal_ip6_address"],
                             "isakmp.exchangetype == 35", keys_dir=keys_dir)
        request = next(f for f in auth if f["isakmp.flags"] == ["0x08"])
        reply = next(f for f in auth if f["isakmp.flags"] == ["0x20"])
        assert request["isakmp.id.type"][0] == "3"  # IDi: ID_RFC822_ADDR
        assert request["isakmp.id.data.user_fqdn"] == ["mn@mip6lab.example"]
        assert reply["isakmp.cfg.attr.internal_ip6_address"] == [hoa]  # CFG_REPLY: the HoA

        # Terminate, then both daemons end (by PID) and nothing is left.
        initiator.terminate(ike="hoa")
        assert initiator.list_sas() == []
        deadline = time.monotonic() + 5
        while responder.list_sas():
            assert time.monotonic() < deadline, "responder kept the IKE SA"
            time.sleep(0.05)
        pids = (initiator.pid, responder.pid)
        assert initiator.stop() == 0 and responder.stop() == 0
        assert all(_gone(pid) for pid in pids)
        assert not initiator.running and not responder.running
    assert not set(names) & set(list_namespaces())
    assert time.monotonic() - started < 60


@pytest.mark.netns
def test_live_wrong_psk_fails_fast_with_charon_output(tmp_path):
    """A failed initiate raises CharonError carrying swanctl's and charon's words; a raw
    swanctl.conf text works like a SwanctlConfig."""
    from mip6lab.net.netns import NetnsSet

    _live_prereqs()
    raw_responder = """\
connections {
  v6 {
    local_addrs = 2001:db8:1::2
    proposals = aes256gcm16-prfsha256-curve25519
    local { auth = psk
            id = ha.mip6lab.example }
    remote { auth = psk
             id = mn@mip6lab.example }
    children { c { esp_proposals = aes256gcm16
                   local_ts = 2001:db8:f2::1/128 } }
  }
}
secrets { ike-x { id-a = mn@mip6lab.example
                  secret = "the responder's key" } }
"""
    initiator_conf = SwanctlConfig(
        connections=[Connection("v6", local_addrs="2001:db8:1::1", remote_addrs="2001:db8:1::2",
                                local_id="mn@mip6lab.example", remote_id="ha.mip6lab.example",
                                children=[Child("c", remote_ts="2001:db8:f2::1/128")])],
        secrets=[SharedKey("not the same key", ids=["mn@mip6lab.example"])])
    with NetnsSet() as s:
        mn, ha = s.add_namespace("mn"), s.add_namespace("ha")
        s.add_veth(mn, "eth0", ha, "eth0")
        s.add_address(mn, "eth0", "2001:db8:1::1/64")
        s.add_address(ha, "eth0", "2001:db8:1::2/64")
        with Charon(s, ha, tmp_path / "ha", swanctl=raw_responder) as responder, \
                Charon(s, mn, tmp_path / "mn", swanctl=initiator_conf) as initiator:
            responder.load()
            initiator.load()
            started = time.monotonic()
            with pytest.raises(sw.CharonError) as failure:
                initiator.initiate("c", timeout=10)
            assert time.monotonic() - started < 5
            assert "AUTHENTICATION_FAILED" in str(failure.value)
            assert initiator.list_sas() == []
            # The keys were derived (IKE_SA_INIT succeeded) even though AUTH failed.
            assert initiator.keys().ike_sas[0].sk_ei is not None
        assert not initiator.running and not responder.running
