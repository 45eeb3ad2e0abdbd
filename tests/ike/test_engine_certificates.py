"""IKE_AUTH with certificates (RFC 7296 §2.15, §3.6-3.8; RFC 7427; RFC 4945 §3.1), two
IkeSa engines pumped in memory as in test_engine: a test CA from mip6lab.testing.pki,
RSA-2048 and ECDSA P-256 end entities, validated at the lab's fixed time (the engine
clock starts at 0, i.e. 1970)."""

from __future__ import annotations

import datetime as dt

import pytest

from mip6lab.crypto.ike import auth
from mip6lab.ikev2 import sa as sa_module
from mip6lab.ikev2.certs import spki_sha1
from mip6lab.ikev2.config import IkeConfig
from mip6lab.ikev2.sa import ChildSaEstablished, IkeSaEstablished, IkeSaFailed
from mip6lab.testing.pki import LAB_VALIDATION_TIME, TestCA
from mip6lab.wire import ikev2 as w

from .test_engine import I_ID, R_ID, Pair, exchange_of, notify_types

SIGNATURE_HASH_ALGORITHMS = 16431
IKE_AUTH = 35


@pytest.fixture(scope="module")
def pki():
    ca = TestCA.create("mip6lab engine CA", "ecdsa")
    other = TestCA.create("someone else's CA", "rsa")
    return {
        "ca": ca, "other": other,
        ("mn", "rsa"): ca.issue(I_ID, "rsa"), ("mn", "ecdsa"): ca.issue(I_ID, "ecdsa"),
        ("ha", "rsa"): ca.issue(R_ID, "rsa"), ("ha", "ecdsa"): ca.issue(R_ID, "ecdsa"),
        "mn-foreign": other.issue(I_ID, "ecdsa"), "ha-foreign": other.issue(R_ID, "ecdsa"),
        "mn-expired": ca.issue(I_ID, "ecdsa",
                               not_before=LAB_VALIDATION_TIME - dt.timedelta(days=400),
                               not_after=LAB_VALIDATION_TIME - dt.timedelta(days=35)),
    }


def config(own, local_id, remote_id, anchors, **options) -> IkeConfig:
    options.setdefault("validation_time", LAB_VALIDATION_TIME)
    return IkeConfig.make(local_id, None, remote_id, certificate=own.certificate,
                          private_key=own.key, trust_anchors=list(anchors), **options)


def configs(pki, i_key="ecdsa", r_key="ecdsa", i_method=None, r_method=None, **kw):
    ci = config(kw.pop("i_own", None) or pki[("mn", i_key)], kw.pop("i_id", I_ID),
                kw.pop("i_remote", R_ID), kw.pop("i_anchors", [pki["ca"].certificate]),
                auth_method=i_method)
    cr = config(kw.pop("r_own", None) or pki[("ha", r_key)], kw.pop("r_id", R_ID),
                kw.pop("r_remote", I_ID), kw.pop("r_anchors", [pki["ca"].certificate]),
                auth_method=r_method)
    return ci, cr


@pytest.fixture
def methods(monkeypatch):
    """The AUTH methods each verification saw, in order (initiator's first)."""
    seen = []
    real = auth.verify_auth

    def recording(key, octets, method, data):
        seen.append(int(method))
        return real(key, octets, method, data)

    monkeypatch.setattr(sa_module.auth, "verify_auth", recording)
    return seen


def handshake(ci, cr, seed=1) -> Pair:
    pair = Pair(ci, cr, seed)
    pair.start()
    pair.run()
    return pair


def assert_established(pair: Pair) -> None:
    assert pair.i.state == pair.r.state == "ESTABLISHED", (pair.events)
    (ei,), (er,) = pair.of("I", IkeSaEstablished), pair.of("R", IkeSaEstablished)
    assert (ei.spi_i, ei.spi_r) == (er.spi_i, er.spi_r)
    assert ei.peer_id == ("fqdn", R_ID) and er.peer_id == ("rfc822", I_ID)
    (ci,), (cr,) = pair.of("I", ChildSaEstablished), pair.of("R", ChildSaEstablished)
    assert ci.inbound_spi == cr.outbound_spi and ci.outbound_spi == cr.inbound_spi
    assert (ci.encr_out, ci.integ_out) == (cr.encr_in, cr.integ_in)


def assert_failed_both(pair: Pair) -> None:
    (fi,), (fr,) = pair.of("I", IkeSaFailed), pair.of("R", IkeSaFailed)
    assert fi.notify == fr.notify == "AUTHENTICATION_FAILED"
    assert not pair.of("I", ChildSaEstablished) and not pair.of("R", ChildSaEstablished)
    assert not pair.of("I", IkeSaEstablished) and not pair.of("R", IkeSaEstablished)
    assert pair.i.state == pair.r.state == "CLOSED"
    assert len(pair.sent("R>I")) == 2 and exchange_of(pair.sent("R>I")[1]) == IKE_AUTH
    assert pair.i.timer_us is None


# -- success -------------------------------------------------------------------------------


@pytest.mark.parametrize("i_key, r_key, i_method, r_method, expected", [
    ("rsa", "rsa", None, None, [14, 14]),              # RFC 7427, the default
    ("ecdsa", "ecdsa", None, None, [14, 14]),
    ("rsa", "ecdsa", "signature", "signature", [14, 14]),
    ("rsa", "rsa", "rsa", "rsa", [1, 1]),              # method 1: RSA PKCS#1 v1.5 SHA-1
    ("ecdsa", "ecdsa", "ecdsa", "ecdsa", [9, 9]),      # method 9: ECDSA P-256 SHA-256
    ("ecdsa", "rsa", "ecdsa", "rsa", [9, 1]),
])
def test_certificate_handshake(pki, methods, i_key, r_key, i_method, r_method, expected):
    pair = handshake(*configs(pki, i_key, r_key, i_method, r_method))
    assert_established(pair)
    assert methods == expected     # responder verified the initiator first
    assert pair.r.peer_certificate == pki[("mn", i_key)].certificate
    assert pair.i.peer_certificate == pki[("ha", r_key)].certificate


def test_ike_sa_init_announces_hashes_and_requests_certificates(pki):
    pair = handshake(*configs(pki))
    request, response = pair.sent("I>R")[0], pair.sent("R>I")[0]
    assert SIGNATURE_HASH_ALGORITHMS in notify_types(request)
    assert SIGNATURE_HASH_ALGORITHMS in notify_types(response)
    payloads = w.message_payloads(w.decode_message(response))
    (hashes,) = [n for n in payloads if isinstance(n, w.IKEv2_Notify)
                 and n.type == SIGNATURE_HASH_ALGORITHMS]
    assert [int(h) for h in hashes.hash_algorithms] == [2, 3, 4]
    (certreq,) = [p for p in payloads if isinstance(p, w.IKEv2_CERTREQ)]
    assert certreq.cert_encoding == 4
    assert bytes(certreq.cert_authority) == spki_sha1(pki["ca"].certificate)
    assert pair.i.peer_certreq == [spki_sha1(pki["ca"].certificate)]
    assert pair.i.peer_hash_algorithms == (2, 3, 4)


def test_psk_ike_sa_init_is_unchanged():
    from .test_engine import handshake as psk_handshake

    pair = psk_handshake()
    assert SIGNATURE_HASH_ALGORITHMS not in notify_types(pair.sent("I>R")[0])
    assert not [p for p in w.message_payloads(w.decode_message(pair.sent("R>I")[0]))
                if isinstance(p, w.IKEv2_CERTREQ)]


def test_chain_through_an_intermediate(pki):
    ca = pki["ca"]
    # an intermediate CA issued by the root, issuing the initiator's certificate
    sub = TestCA.create("mip6lab sub CA", "ecdsa")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    cert = (x509.CertificateBuilder().subject_name(sub.certificate.subject)
            .issuer_name(ca.certificate.subject).public_key(sub.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(sub.certificate.not_valid_before_utc)
            .not_valid_after(sub.certificate.not_valid_after_utc)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(ca.key, hashes.SHA256()))
    sub.certificate = cert
    mn = sub.issue(I_ID, "rsa")
    ci, cr = configs(pki, i_own=mn)
    ci.intermediates = [cert]
    assert_established(handshake(ci, cr))
    ci.intermediates = []          # without it the chain breaks
    assert_failed_both(handshake(ci, cr))


def test_validation_time_defaults_to_now(pki):
    ci, cr = configs(pki)
    ci.validation_time = cr.validation_time = None
    assert_established(handshake(ci, cr))


def test_config_make_reads_pem_files(pki, tmp_path):
    mn, ca = pki[("mn", "rsa")], pki["ca"]
    cert, key = mn.write(tmp_path / "mn")
    ca_path = ca.write(tmp_path / "ca.pem")
    c = IkeConfig.make(I_ID, remote_id=R_ID, cert=str(cert), key=str(key), ca=str(ca_path))
    assert c.auth_method == "signature" and c.psk is None
    assert c.certificate == mn.certificate and c.trust_anchors == [ca.certificate]
    assert c.private_key.public_key().public_numbers() == \
        mn.key.public_key().public_numbers()
    ci, cr = configs(pki, i_key="rsa")
    c.validation_time = LAB_VALIDATION_TIME
    assert_established(handshake(c, cr))


def test_config_refuses_a_key_not_of_the_certificate(pki):
    with pytest.raises(ValueError, match="does not belong"):
        IkeConfig.make(I_ID, certificate=pki[("mn", "rsa")].certificate,
                       private_key=pki[("ha", "rsa")].key,
                       trust_anchors=[pki["ca"].certificate])
    with pytest.raises(ValueError, match="needs an RSA key"):
        IkeConfig.make(I_ID, certificate=pki[("mn", "ecdsa")].certificate,
                       private_key=pki[("mn", "ecdsa")].key, auth_method="rsa",
                       trust_anchors=[pki["ca"].certificate])
    with pytest.raises(ValueError, match="trust_anchors"):
        IkeConfig.make(I_ID, certificate=pki[("mn", "ecdsa")].certificate,
                       private_key=pki[("mn", "ecdsa")].key)


def test_subject_dn_identity(pki):
    ca = pki["ca"]
    mn = ca.issue(I_ID, "ecdsa", subject_cn="mn", san=False)
    dn = mn.certificate.subject.rfc4514_string()
    ci, cr = configs(pki, i_own=mn, i_id=f"dn:{dn}", r_remote=f"dn:{dn}")
    pair = handshake(ci, cr)
    assert pair.i.state == pair.r.state == "ESTABLISHED"
    (er,) = pair.of("R", IkeSaEstablished)
    assert er.peer_id == ("der_asn1_dn", dn)


# -- failures ------------------------------------------------------------------------------


def test_untrusted_ca_initiator_certificate_fails_on_both_sides(pki):
    assert_failed_both(handshake(*configs(pki, i_own=pki["mn-foreign"])))


def test_untrusted_ca_responder_certificate_fails_at_the_initiator(pki):
    pair = handshake(*configs(pki, r_own=pki["ha-foreign"]))
    (fi,) = pair.of("I", IkeSaFailed)
    assert fi.notify == "AUTHENTICATION_FAILED" and "trusted CA" in fi.reason
    assert pair.i.state == "CLOSED"
    assert not pair.of("I", ChildSaEstablished) and not pair.of("I", IkeSaEstablished)


def test_anchors_of_another_ca_only(pki):
    pair = handshake(*configs(pki, r_anchors=[pki["other"].certificate]))
    assert_failed_both(pair)


def test_identity_not_in_the_certificate_fails(pki):
    # the initiator claims another identity than its certificate's rfc822Name
    pair = handshake(*configs(pki, i_id="eve@mip6lab.example", r_remote=None))
    assert_failed_both(pair)
    (fr,) = pair.of("R", IkeSaFailed)
    assert "not in the certificate" in fr.reason


def test_responder_identity_not_in_its_certificate_fails_at_the_initiator(pki):
    pair = handshake(*configs(pki, r_id="other.mip6lab.example", i_remote=None))
    (fi,) = pair.of("I", IkeSaFailed)
    assert fi.notify == "AUTHENTICATION_FAILED" and "not in the certificate" in fi.reason
    assert not pair.of("I", ChildSaEstablished)


def test_expired_certificate_fails(pki):
    pair = handshake(*configs(pki, i_own=pki["mn-expired"]))
    assert_failed_both(pair)
    (fr,) = pair.of("R", IkeSaFailed)
    assert "not valid at" in fr.reason


def test_not_yet_valid_at_the_validation_time(pki):
    ci, cr = configs(pki)
    cr.validation_time = dt.datetime(2001, 1, 1, tzinfo=dt.timezone.utc)
    assert_failed_both(handshake(ci, cr))


@pytest.mark.parametrize("method", [None, "rsa"])
def test_tampered_auth_fails(pki, method):
    ci, cr = configs(pki, "rsa", "rsa", method, method)
    pair = Pair(ci, cr)
    real = pair.i._auth_payload

    def tampered(id_payload, initiator_side):
        payload = real(id_payload, initiator_side)
        data = bytearray(payload.data)
        data[-1] ^= 0x01
        payload.data = bytes(data)
        return payload

    pair.i._auth_payload = tampered
    pair.start()
    pair.run()
    assert_failed_both(pair)
    (fr,) = pair.of("R", IkeSaFailed)
    assert "does not verify" in fr.reason


def test_tampered_certificate_fails(pki):
    ci, cr = configs(pki)
    pair = Pair(ci, cr)
    real = pair.i._cert_payloads

    def swapped():   # the responder's own certificate instead of ours: AUTH won't verify
        (payload,) = real()
        payload.data = pki[("ha", "ecdsa")].certificate.public_bytes(
            __import__("cryptography.hazmat.primitives.serialization",
                       fromlist=["Encoding"]).Encoding.DER)
        return [payload]

    pair.i._cert_payloads = swapped
    pair.start()
    pair.run()
    assert_failed_both(pair)


def test_signature_auth_against_a_psk_only_responder_fails(pki):
    from .test_engine import responder_config

    ci, _ = configs(pki)
    assert_failed_both(handshake(ci, responder_config()))


def test_psk_initiator_against_a_certificate_only_responder_fails(pki):
    from .test_engine import initiator_config

    _, cr = configs(pki)
    assert_failed_both(handshake(initiator_config(), cr))


# -- the CLI options -----------------------------------------------------------------------


def _cli_config(argv):
    from mip6lab import cli

    return cli._ike_config(cli._parser().parse_args(argv))


def test_cli_cert_key_ca_make_a_certificate_config(pki, tmp_path):
    cert, key = pki[("ha", "ecdsa")].write(tmp_path)
    ca = pki["ca"].write(tmp_path / "ca.pem")
    base = ["ike", "respond", "--listen", "2001:db8::1", "--id", R_ID]
    c = _cli_config(base + ["--cert", str(cert), "--key", str(key), "--ca", str(ca)])
    assert c.auth_method == "signature" and c.trust_anchors == [pki["ca"].certificate]
    c = _cli_config(base + ["--cert", str(cert), "--key", str(key), "--ca", str(ca),
                            "--auth", "ecdsa"])
    assert c.auth_method == "ecdsa" and c.validation_time is None


@pytest.mark.parametrize("extra", [
    ["--cert", "c.pem"],                                  # no --key/--ca
    ["--psk-file", "p", "--ca", "ca.pem"],                # --ca without --cert
])
def test_cli_certificate_usage_errors(extra):
    from mip6lab import cli

    with pytest.raises(cli._Usage):
        _cli_config(["ike", "initiate", "--remote", "2001:db8::1", "--id", I_ID,
                     "--remote-id", R_ID, *extra])


def test_cli_psk_file_and_cert_are_mutually_exclusive(capsys):
    from mip6lab import cli

    with pytest.raises(SystemExit) as exit_:
        cli._parser().parse_args(["ike", "initiate", "--remote", "2001:db8::1", "--id", I_ID,
                                  "--remote-id", R_ID, "--psk-file", "p", "--cert", "c"])
    assert exit_.value.code == 2
    assert "not allowed with" in capsys.readouterr().err


def test_without_the_peers_hash_announcement_falls_back_to_methods_1_and_9(pki, methods):
    # RFC 7427 §4: method 14 only towards a peer that sent SIGNATURE_HASH_ALGORITHMS
    ci, cr = configs(pki, "ecdsa", "rsa")
    pair = Pair(ci, cr)
    pair.r._signature_hash_notify = lambda: []
    pair.start()
    pair.run()
    assert_established(pair)
    assert methods == [9, 14]     # initiator fell back to ECDSA method 9; responder used 14


def test_p384_key_signs_with_sha384(pki, methods):
    ca = pki["ca"]
    ci, cr = configs(pki, i_own=ca.issue(I_ID, "ecdsa384"))
    pair = handshake(ci, cr)
    assert_established(pair)
    assert pair.i._signature_method() == (auth.AuthMethod.DIGITAL_SIGNATURE,
                                          "ecdsa-with-SHA384")
