"""Known answers from two real strongSwan 5.9.8 daemons (tests/data/strongswan-5.9.8-pair).

charon logged every secret (``ike = 4``, ``chd = 4``); the capture holds the messages. From
the logged nonces, SPIs and g^ir we recompute SKEYSEED, every SK_*, the child SA keys and
the AUTH values, and decrypt (and re-encrypt, byte for byte) the captured IKE_AUTH and
INFORMATIONAL messages. Two proposals are covered: aes256gcm16-prfsha256-curve25519 (AEAD,
no SK_a) and aes256-sha256-modp2048 (AES-CBC + HMAC).
"""

from __future__ import annotations

import csv
import ipaddress

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mip6lab.crypto.ike import (KEY_PAD, AuthenticationFailed, IntegrityError, IkeKeys,
                                Protocol, derive_child_keys, derive_ike_keys, decrypt_message,
                                encrypt_message, find_encrypted_payload, nat_detection_data,
                                nat_detection_hash, parse_charon_proposal, parse_proposal,
                                psk_auth, select_proposal, signed_octets, verify_psk_auth)
from mip6lab.testing.strongswan import IkeSaKeys

from ._fixture import (AUTH, DATA, IDI, IDR, IKE_AUTH, IKE_SA_INIT, INFORMATIONAL, NONCE,
                       NOTIFY, PSK, SA, charon_keys, hexdumps, ike_messages,
                       message_payloads, payload_chain, sa_proposals)

SIDES = ("initiator", "responder")
CONFIGURED = {"v6psk": ("aes256gcm16-prfsha256-curve25519", "aes256gcm16"),
              "v4psk": ("aes256-sha256-modp2048", "aes256-sha256"),
              "hoa": ("aes256gcm16-prfsha256-curve25519", "aes256gcm16")}


def complete_sas(side: str) -> list[IkeSaKeys]:
    """The IKE SAs of a log with everything needed to recompute their keys."""
    return [sa for sa in charon_keys(side).ike_sas
            if sa.spi_i and sa.spi_r and sa.nonce_i and sa.nonce_r and sa.shared_secret]


def derived(sa: IkeSaKeys) -> IkeKeys:
    return derive_ike_keys(parse_charon_proposal(sa.proposal), sa.nonce_i, sa.nonce_r,
                           sa.shared_secret, sa.spi_i, sa.spi_r)


def keys_by_spi() -> dict[bytes, IkeKeys]:
    return {sa.spi_i: derived(sa) for sa in complete_sas("initiator")}


# ---------------------------------------------------------------------- IKE SA keys
@pytest.mark.parametrize("side", SIDES)
def test_every_logged_ike_sa_key_is_recomputed(side):
    sas = complete_sas(side)
    assert len(sas) >= 13  # v6psk x 11, v4psk, hoa
    proposals = set()
    for sa in sas:
        keys = derived(sa)
        proposals.add(keys.proposal.keyword)
        assert keys.skeyseed == sa.skeyseed
        assert keys.sk_d == sa.sk_d
        assert keys.sk_ei == sa.sk_ei and keys.sk_er == sa.sk_er
        assert keys.sk_pi == sa.sk_pi and keys.sk_pr == sa.sk_pr
        if keys.proposal.aead:  # RFC 5282 §7.1: no SK_a, SK_e = 32-byte key + 4-byte salt
            assert sa.sk_ai is None and keys.sk_ai == keys.sk_ar == b""
            assert len(keys.sk_ei) == 36
        else:
            assert keys.sk_ai == sa.sk_ai and keys.sk_ar == sa.sk_ar
            assert len(keys.sk_ai) == 32 and len(keys.sk_ei) == 32
    assert proposals == {"aes256gcm16-prfsha256-curve25519", "aes256-sha256-modp2048"}


def test_modp_shared_secret_is_full_length_and_keys_depend_on_it():
    sa = next(sa for sa in complete_sas("initiator") if "MODP_2048" in sa.proposal)
    assert len(sa.shared_secret) == 256
    keys = derived(sa)
    other = derive_ike_keys(keys.proposal, sa.nonce_i, sa.nonce_r,
                            sa.shared_secret[:-1] + bytes((sa.shared_secret[-1] ^ 1,)),
                            sa.spi_i, sa.spi_r)
    assert other.skeyseed != sa.skeyseed and other.sk_d != sa.sk_d


def test_wireshark_ikev2_decryption_table_matches_derived_keys():
    keys = keys_by_spi()
    rows = list(csv.reader((DATA / "ikev2_decryption_table").read_text().splitlines()))
    assert len(rows) == 3
    for spi_i, spi_r, sk_ei, sk_er, _enc, sk_ai, sk_ar, _integ in rows:
        k = keys[bytes.fromhex(spi_i)]
        assert (k.sk_ei.hex(), k.sk_er.hex(), k.sk_ai.hex(), k.sk_ar.hex()) == (
            sk_ei, sk_er, sk_ai, sk_ar)


# ---------------------------------------------------------------------- child SA keys
@pytest.mark.parametrize("side", SIDES)
def test_every_logged_child_sa_key_is_recomputed(side):
    logged = charon_keys(side)
    checked = set()
    for child in logged.child_sas:
        if child.encr_i is None:
            continue
        sa = logged.ike_sa(child.ike_sa)
        ike = derived(sa)
        proposal = parse_charon_proposal(child.proposal)
        assert child.seed == sa.nonce_i + sa.nonce_r  # IKE_AUTH child: IKE_SA_INIT nonces
        keys = derive_child_keys(ike.prf, ike.sk_d, proposal, sa.nonce_i, sa.nonce_r)
        assert (keys.encr_i, keys.encr_r) == (child.encr_i, child.encr_r)
        assert (keys.integ_i, keys.integ_r) == (child.integ_i, child.integ_r)
        checked.add(proposal.keyword)
    assert checked == {"aes256gcm16", "aes256-sha256"}


def test_esp_sa_table_matches_derived_child_keys():
    rows = {int(r[3], 16): (bytes.fromhex(r[5][2:]), bytes.fromhex(r[7][2:]))
            for r in csv.reader((DATA / "esp_sa").read_text().splitlines())}
    logged = charon_keys("initiator")
    seen = 0
    for uid, name in enumerate(("v6child", "v4child", "hoachild"), start=1):
        child = logged.child_sa(name, unique_id=uid)  # the three in the capture
        sa = logged.ike_sa(child.ike_sa)
        ike = derived(sa)
        esp = parse_proposal(CONFIGURED[sa.name][1], "esp")
        keys = derive_child_keys(ike.prf, ike.sk_d, esp, sa.nonce_i, sa.nonce_r)
        # this log is the initiator's: its outbound SA carries initiator->responder data
        assert rows[child.spi_out] == keys.outbound(initiator=True)
        assert rows[child.spi_in] == keys.inbound(initiator=True)
        seen += 2
    assert seen == len(rows) == 6


# ---------------------------------------------------------------------- AUTH
def _auth_computations(side: str):
    """(ike sa id, IDx', SK_p, octets, prf(secret, keypad), AUTH) as charon dumped them."""
    current: dict[int, dict[str, bytes]] = {}
    for dump in hexdumps(side):
        uid = dump.line.ike_sa
        label = dump.label
        if label == "IDx'":
            current[uid] = {"id": dump.data}
        elif uid in current and label == "SK_p":
            current[uid]["sk_p"] = dump.data
        elif uid in current and label.startswith("octets = message + nonce"):
            current[uid]["octets"] = dump.data
        elif uid in current and label == "prf(secret, keypad)":
            current[uid]["keypad"] = dump.data
        elif uid in current and label.startswith("AUTH = prf(prf(secret, keypad)"):
            c = current.pop(uid)
            yield uid, c["id"], c["sk_p"], c["octets"], c["keypad"], dump.data


@pytest.mark.parametrize("side", SIDES)
def test_auth_octets_and_psk_auth_match_the_logs(side):
    logged = charon_keys(side)
    init_messages = {(m.spi_i, m.response): m.data for m in ike_messages()
                     if m.exchange == IKE_SA_INIT}
    count = 0
    for uid, id_body, sk_p, octets, keypad, auth in _auth_computations(side):
        sa = logged.ike_sa(uid)
        keys = derived(sa)
        prf = keys.prf
        response = bool(octets[19] & 0x20)  # whose IKE_SA_INIT message is signed
        message = octets[:int.from_bytes(octets[24:28], "big")]
        if (sa.spi_i, response) in init_messages:  # the first three SAs are in the capture
            assert message == init_messages[sa.spi_i, response]
        if response:
            expected_sk_p, peer_nonce = keys.sk_pr, sa.nonce_i
        else:
            expected_sk_p, peer_nonce = keys.sk_pi, sa.nonce_r
        assert sk_p == expected_sk_p
        assert signed_octets(message, peer_nonce, prf, expected_sk_p, id_body) == octets
        assert prf(PSK, KEY_PAD) == keypad
        assert psk_auth(prf, PSK, octets) == auth
        count += 1
    assert count >= 2 * 13  # every IKE SA: our AUTH and the peer's


# ---------------------------------------------------------------------- the capture
def protected_messages():
    return [m for m in ike_messages() if m.exchange != IKE_SA_INIT]


def test_capture_holds_the_expected_exchanges():
    kinds = [(m.exchange, m.from_initiator, m.response) for m in protected_messages()]
    assert kinds.count((IKE_AUTH, True, False)) == 3
    assert kinds.count((IKE_AUTH, False, True)) == 3
    assert sum(1 for k in kinds if k[0] == INFORMATIONAL) == 6


def test_decrypt_every_protected_message_of_the_capture():
    keys = keys_by_spi()
    for m in protected_messages():
        k = keys[m.spi_i]
        first, inner = decrypt_message(k.cipher(from_initiator=m.from_initiator), m.data)
        chain = [t for t, _ in payload_chain(first, inner)]
        if m.exchange == IKE_AUTH:
            assert chain[0] == (IDR if m.response else IDI)
            assert AUTH in chain and SA in chain
        elif m.response:
            assert chain == []              # empty INFORMATIONAL responses
        else:
            assert chain == [NOTIFY]        # MOBIKE ADDITIONAL_IP*_ADDRESS
        # The other direction's keys do not open it: the ICV fails, typed.
        with pytest.raises(IntegrityError):
            decrypt_message(k.cipher(from_initiator=not m.from_initiator), m.data)


@pytest.mark.parametrize("where", ["header", "sk_header", "iv", "ciphertext", "icv"])
def test_any_modified_byte_fails_the_icv(where):
    keys = keys_by_spi()
    for m in protected_messages():
        if m.exchange != IKE_AUTH:
            continue
        cipher = keys[m.spi_i].cipher(m.from_initiator)
        sk = find_encrypted_payload(m.data)
        offset = {"header": 20, "sk_header": sk + 1, "iv": sk + 4 + 2,
                  "ciphertext": sk + 4 + cipher.iv_size + 3, "icv": len(m.data) - 1}[where]
        forged = bytearray(m.data)
        forged[offset] ^= 0x01
        with pytest.raises(IntegrityError):
            decrypt_message(cipher, bytes(forged))


def _raw_plaintext(keys: IkeKeys, m) -> bytes:
    """Independent decryption with `cryptography` directly, padding kept."""
    cipher = keys.cipher(m.from_initiator)
    sk = find_encrypted_payload(m.data)
    body, aad = m.data[sk + 4:], m.data[:sk + 4]
    sk_e = keys.sk_ei if m.from_initiator else keys.sk_er
    if cipher.aead:
        return AESGCM(sk_e[:-4]).decrypt(sk_e[-4:] + body[:8], body[8:], aad)
    decryptor = Cipher(algorithms.AES(sk_e), modes.CBC(body[:16])).decryptor()
    return decryptor.update(body[16:-cipher.icv_size]) + decryptor.finalize()


def test_reencrypting_reproduces_strongswans_messages_exactly():
    keys = keys_by_spi()
    for m in protected_messages():
        k = keys[m.spi_i]
        cipher = k.cipher(m.from_initiator)
        first, inner = decrypt_message(cipher, m.data)
        raw = _raw_plaintext(k, m)
        padding = raw[len(inner):-1]
        sk = find_encrypted_payload(m.data)
        iv = m.data[sk + 4:sk + 4 + cipher.iv_size]
        rebuilt = encrypt_message(cipher, m.data[:28], first, inner, iv, padding=padding)
        assert rebuilt == m.data
        if cipher.aead:
            assert padding == b""  # strongSwan pads nothing with GCM, as we do by default
            assert encrypt_message(cipher, m.data[:28], first, inner, iv) == m.data


def _ike_sa_init(spi_i: bytes, response: bool) -> bytes:
    return next(m.data for m in ike_messages() if m.exchange == IKE_SA_INIT
                and m.spi_i == spi_i and m.response == response)


def test_auth_payloads_of_the_capture_verify_with_the_psk():
    keys = keys_by_spi()
    verified = 0
    for m in protected_messages():
        if m.exchange != IKE_AUTH:
            continue
        k = keys[m.spi_i]
        first, inner = decrypt_message(k.cipher(m.from_initiator), m.data)
        payloads = dict(payload_chain(first, inner))
        id_body = payloads[IDR if m.response else IDI]
        method, auth_data = payloads[AUTH][0], payloads[AUTH][4:]
        assert method == 2  # shared key message integrity code
        request, response = _ike_sa_init(m.spi_i, False), _ike_sa_init(m.spi_i, True)
        nonce_i = dict(message_payloads(request))[NONCE]
        nonce_r = dict(message_payloads(response))[NONCE]
        if m.response:
            octets = signed_octets(response, nonce_i, k.prf, k.sk_pr, id_body)
        else:
            octets = signed_octets(request, nonce_r, k.prf, k.sk_pi, id_body)
        assert psk_auth(k.prf, PSK, octets) == auth_data
        verify_psk_auth(k.prf, PSK, octets, auth_data)
        with pytest.raises(AuthenticationFailed):
            verify_psk_auth(k.prf, PSK + b"x", octets, auth_data)
        with pytest.raises(AuthenticationFailed):  # the peer's nonce is part of it
            verify_psk_auth(k.prf, PSK, octets.replace(nonce_r if not m.response else nonce_i,
                                                      bytes(32)), auth_data)
        verified += 1
    assert verified == 6


# ---------------------------------------------------------------------- proposals on the wire
def test_sa_payloads_of_the_capture_are_our_proposals():
    for m in ike_messages():
        if m.exchange != IKE_SA_INIT:
            continue
        name = {b"\xb5\xc7": "v6psk", b"\x0c\x24": "v4psk", b"\x97\x09": "hoa"}[m.spi_i[:2]]
        ike_config = parse_proposal(CONFIGURED[name][0])
        offered_or_chosen = sa_proposals(dict(message_payloads(m.data))[SA])
        assert offered_or_chosen == [ike_config]
        if m.response:  # the responder's choice is what select_proposal makes
            offered = sa_proposals(dict(message_payloads(_ike_sa_init(m.spi_i, False)))[SA])
            assert select_proposal(offered, [ike_config]) == offered_or_chosen[0]
            assert select_proposal(offered, [ike_config]).number == 1


def test_child_sa_proposals_in_ike_auth():
    keys = keys_by_spi()
    logged = charon_keys("initiator")
    for m in protected_messages():
        if m.exchange != IKE_AUTH:
            continue
        first, inner = decrypt_message(keys[m.spi_i].cipher(m.from_initiator), m.data)
        (proposal,) = sa_proposals(dict(payload_chain(first, inner))[SA])
        sa = next(sa for sa in logged.ike_sas if sa.spi_i == m.spi_i)
        assert proposal.protocol == Protocol.ESP
        assert proposal == parse_proposal(CONFIGURED[sa.name][1], "esp")
        child = next(c for c in logged.child_sas if c.ike_sa == sa.unique_id)
        # SAi2 carries the initiator's inbound SPI, SAr2 the responder's (= our outbound)
        expected_spi = child.spi_out if m.response else child.spi_in
        assert int.from_bytes(proposal.spi, "big") == expected_spi
        assert proposal.charon == child.proposal  # "ESP:AES_GCM_16_256/NO_EXT_SEQ"


def test_selected_proposals_in_the_logs_roundtrip():
    for side in SIDES:
        for sa in charon_keys(side).ike_sas:
            assert parse_charon_proposal(sa.proposal).charon == sa.proposal
            assert parse_proposal(parse_charon_proposal(sa.proposal).keyword) == \
                parse_charon_proposal(sa.proposal)


# ---------------------------------------------------------------------- NAT detection
def test_natd_chunks_and_hashes_of_the_logs():
    checked = 0
    for side in SIDES:
        dumps = hexdumps(side)
        for chunk, digest in zip(dumps, dumps[1:]):
            if chunk.label != "natd_chunk" or digest.label != "natd_hash":
                continue
            data = chunk.data
            address = ipaddress.ip_address(data[16:-2])
            port = int.from_bytes(data[-2:], "big")
            assert nat_detection_data(data[:8], data[8:16], address, port) == data
            assert nat_detection_hash(data[:8], data[8:16], str(address), port) == digest.data
            checked += 1
    assert checked >= 50


def test_natd_notifies_of_the_capture():
    """charon's kernel-libipsec fakes the *source* hash (so that it sees a NAT and uses
    UDP encapsulation); the destination hashes are honest and match ours."""
    for m in ike_messages():
        if m.exchange != IKE_SA_INIT:
            continue
        notifies = {int.from_bytes(body[2:4], "big"): body[4:]
                    for t, body in message_payloads(m.data) if t == NOTIFY}
        spi_r = m.spi_r if m.response else bytes(8)
        destination = nat_detection_hash(m.spi_i, spi_r, m.dst, m.dport)
        assert notifies[16389] == destination
        if not m.response:  # the initiator's faked source: a NAT would be "detected"
            assert notifies[16388] != nat_detection_hash(m.spi_i, spi_r, m.src, m.sport)
