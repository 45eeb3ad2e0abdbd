"""Proposals in strongSwan's notation, charon's log notation, and the responder's choice."""

from __future__ import annotations

import pytest

from mip6lab.crypto import ike
from mip6lab.crypto.ike import (NoProposalChosen, Proposal, ProposalError, Protocol,
                                Transform, TransformType, parse_charon_proposal,
                                parse_proposal, parse_proposals, select_proposal)

T = TransformType


def ids(proposal: Proposal) -> list[tuple[int, int, int | None]]:
    return [(int(t.type), t.id, t.key_length) for t in proposal.transforms]


def test_iana_numbers():
    assert (ike.ENCR_AES_CBC, ike.ENCR_AES_GCM_16) == (12, 20)
    assert (ike.PRF_HMAC_SHA2_256, ike.PRF_HMAC_SHA2_384, ike.PRF_HMAC_SHA2_512) == (5, 6, 7)
    assert (ike.AUTH_HMAC_SHA2_256_128, ike.AUTH_HMAC_SHA2_384_192,
            ike.AUTH_HMAC_SHA2_512_256) == (12, 13, 14)
    assert (ike.MODP_2048, ike.ECP_256, ike.ECP_384, ike.CURVE25519) == (14, 19, 20, 31)
    assert (ike.NO_ESN, ike.ESN) == (0, 1)
    assert [int(t) for t in T] == [1, 2, 3, 4, 5]
    assert (Protocol.IKE, Protocol.AH, Protocol.ESP) == (1, 2, 3)
    assert ike.ATTR_KEY_LENGTH == 14


@pytest.mark.parametrize("text, expected, charon", [
    ("aes256gcm16-prfsha384-ecp384", [(1, 20, 256), (2, 6, None), (4, 20, None)],
     "IKE:AES_GCM_16_256/PRF_HMAC_SHA2_384/ECP_384"),
    ("aes128-sha256-modp2048", [(1, 12, 128), (2, 5, None), (3, 12, None), (4, 14, None)],
     "IKE:AES_CBC_128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048"),
    ("aes256-sha256-curve25519", [(1, 12, 256), (2, 5, None), (3, 12, None), (4, 31, None)],
     "IKE:AES_CBC_256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/CURVE_25519"),
    ("aes256gcm16-prfsha256-curve25519", [(1, 20, 256), (2, 5, None), (4, 31, None)],
     "IKE:AES_GCM_16_256/PRF_HMAC_SHA2_256/CURVE_25519"),
])
def test_ike_proposals(text, expected, charon):
    proposal = parse_proposal(text)
    assert proposal.protocol == Protocol.IKE
    assert ids(proposal) == expected
    assert proposal.charon == charon
    assert proposal.keyword == text == str(proposal)
    assert proposal.negotiated
    assert proposal.aead == ("gcm" in text)
    assert parse_charon_proposal(charon) == proposal


@pytest.mark.parametrize("text, expected, charon", [
    ("aes256gcm16", [(1, 20, 256), (5, 0, None)], "ESP:AES_GCM_16_256/NO_EXT_SEQ"),
    ("aes128gcm16-ecp256", [(1, 20, 128), (4, 19, None), (5, 0, None)],
     "ESP:AES_GCM_16_128/ECP_256/NO_EXT_SEQ"),
    ("aes256-sha256", [(1, 12, 256), (3, 12, None), (5, 0, None)],
     "ESP:AES_CBC_256/HMAC_SHA2_256_128/NO_EXT_SEQ"),
    ("aes128-sha512-esn", [(1, 12, 128), (3, 14, None), (5, 1, None)],
     "ESP:AES_CBC_128/HMAC_SHA2_512_256/EXT_SEQ"),
])
def test_esp_proposals(text, expected, charon):
    proposal = parse_proposal(text, "esp")
    assert proposal.protocol == Protocol.ESP
    assert ids(proposal) == expected
    assert proposal.charon == charon
    assert proposal.keyword == text
    assert parse_charon_proposal(charon) == proposal


def test_several_algorithms_per_type_keep_their_order():
    a = parse_proposal("aes256gcm16-aes128gcm16-prfsha384-prfsha256-ecp384-curve25519")
    assert [t.key_length for t in a.encryption] == [256, 128]
    assert [t.id for t in a.prf] == [6, 5]
    assert [t.id for t in a.ke] == [20, 31]
    assert a.ke_group == 20
    assert not a.negotiated
    # strongSwan: "the order of algorithms of different kinds doesn't matter"
    b = parse_proposal("aes256gcm16-prfsha384-ecp384-aes128gcm16-prfsha256-curve25519")
    assert a == b and a.keyword == b.keyword
    assert a.keyword == "aes256gcm16-aes128gcm16-prfsha384-prfsha256-ecp384-curve25519"
    with pytest.raises(ProposalError):
        a.one(T.ENCR)


def test_integrity_implies_the_prf_of_the_same_hash():
    p = parse_proposal("aes256-sha384-sha256-ecp256")
    assert [t.id for t in p.prf] == [ike.PRF_HMAC_SHA2_384, ike.PRF_HMAC_SHA2_256]
    assert p.keyword == "aes256-sha384-sha256-ecp256"  # implied PRFs are not written
    explicit = parse_proposal("aes256-sha256-prfsha512-ecp256")
    assert [t.id for t in explicit.prf] == [ike.PRF_HMAC_SHA2_512]
    assert explicit.keyword == "aes256-sha256-prfsha512-ecp256"


def test_aead_ike_proposal_takes_its_prf_from_an_integrity_keyword():
    p = parse_proposal("aes256gcm16-sha256-ecp256")  # strongSwan maps, then drops integ
    assert p.integrity == ()
    assert [t.id for t in p.prf] == [ike.PRF_HMAC_SHA2_256]
    assert p == parse_proposal("aes256gcm16-prfsha256-ecp256")


def test_esp_drops_prfs_and_defaults_to_no_esn():
    assert parse_proposal("aes256-sha256-prfsha256", "esp") == parse_proposal(
        "aes256-sha256", "esp")
    assert [t.id for t in parse_proposal("aes256gcm16", "esp").esn] == [ike.NO_ESN]
    assert parse_proposal("aes256gcm16-sha256", "esp").integrity == ()


def test_aliases():
    assert parse_proposal("aes128gcm128-prfsha256-x25519") == parse_proposal(
        "aes128gcm16-prfsha256-curve25519")
    assert parse_proposal("aes-sha2_256-modp2048") == parse_proposal("aes128-sha256-modp2048")
    assert parse_proposal("AES256-SHA256-MODP2048") == parse_proposal("aes256-sha256-modp2048")


@pytest.mark.parametrize("text, protocol, message", [
    ("aes256gcm16-ecp256", "ike", "PRF algorithm is mandatory"),
    ("aes256-sha256", "ike", "DH group is mandatory"),
    ("aes256-prfsha256-ecp256", "ike", "integrity algorithm is mandatory"),
    ("aes256-aes256gcm16-sha256-ecp256", "ike", "can't be contained"),
    ("aes256-aes256gcm16-sha256", "esp", "can't be contained"),
    ("sha256-ecp256", "ike", "encryption algorithm is mandatory"),
    ("sha256", "esp", "encryption algorithm is mandatory"),
    ("aes256-sha256-modp1024", "ike", "not recognized"),
    ("aes512-sha256-ecp256", "ike", "not recognized"),
    ("aes256--sha256-ecp256", "ike", "empty"),
    ("", "esp", "empty"),
    ("aes256-sha256-ecp256-esn", "ike", "ESN"),
    ("aes256-sha256", "ah", "AH"),
    ("aes256-sha256", "gre", "unknown protocol"),
])
def test_bad_proposals(text, protocol, message):
    with pytest.raises(ProposalError, match=message):
        parse_proposal(text, protocol)


def test_parse_proposals_numbers_them():
    proposals = parse_proposals("aes256gcm16-prfsha256-ecp256, aes256-sha256-modp2048")
    assert [p.number for p in proposals] == [1, 2]
    assert [p.keyword for p in proposals] == ["aes256gcm16-prfsha256-ecp256",
                                              "aes256-sha256-modp2048"]
    assert parse_proposals(["aes256gcm16", "aes256-sha256"], "esp")[1].number == 2


def test_transform_names():
    t = Transform(T.ENCR, ike.ENCR_AES_GCM_16, 256)
    assert (t.name, t.keyword, t.charon) == ("ENCR_AES_GCM_16 (256)", "aes256gcm16",
                                             "AES_GCM_16_256")
    assert Transform(T.KE, 31).name == "Curve25519"
    assert Transform(T.INTEG, 13).charon == "HMAC_SHA2_384_192"
    unknown = Transform(T.ENCR, 3)  # 3DES: we do not implement it
    assert not unknown.supported and unknown.name == "UNKNOWN_1_3"
    assert not Transform(T.ENCR, ike.ENCR_AES_CBC).supported  # no Key Length attribute
    assert not Transform(T.ENCR, ike.ENCR_AES_CBC, 512).supported


# ---------------------------------------------------------------------------- selection
def test_first_acceptable_offered_proposal_wins_and_keeps_its_number():
    offered = parse_proposals(["aes256gcm16-prfsha256-curve25519", "aes256-sha256-modp2048"])
    chosen = select_proposal(offered, [parse_proposal("aes256-sha256-modp2048")])
    assert chosen == parse_proposal("aes256-sha256-modp2048") and chosen.number == 2
    both = [parse_proposal("aes256-sha256-modp2048"),
            parse_proposal("aes256gcm16-prfsha256-curve25519")]
    assert select_proposal(offered, both).number == 1
    assert select_proposal(offered, both, prefer="configured").number == 2


def test_one_transform_of_each_type_in_the_preferred_order():
    offered = [parse_proposal("aes128gcm16-aes256gcm16-prfsha256-prfsha384-ecp256-ecp384")]
    ours = [parse_proposal("aes256gcm16-aes128gcm16-prfsha384-prfsha256-ecp384-ecp256")]
    by_peer = select_proposal(offered, ours)
    assert by_peer.negotiated
    assert by_peer.keyword == "aes128gcm16-prfsha256-ecp256"
    by_us = select_proposal(offered, ours, prefer="configured")
    assert by_us.keyword == "aes256gcm16-prfsha384-ecp384"
    # our acceptable set restricts the choice
    assert select_proposal(offered, [parse_proposal("aes256gcm16-prfsha384-ecp256")]
                           ).keyword == "aes256gcm16-prfsha384-ecp256"


def test_key_length_is_part_of_the_transform():
    offered = [parse_proposal("aes128-sha256-modp2048")]
    with pytest.raises(NoProposalChosen) as caught:
        select_proposal(offered, [parse_proposal("aes256-sha256-modp2048")])
    assert caught.value.notify == 14


def test_types_must_match_and_ignore_ke_for_ike_auth():
    offered = [parse_proposal("aes128gcm16-ecp256", "esp").with_(spi=b"\x01\x02\x03\x04")]
    ours = [parse_proposal("aes128gcm16", "esp")]
    with pytest.raises(NoProposalChosen):
        select_proposal(offered, ours)  # the peer wants PFS, we do not
    chosen = select_proposal(offered, ours, ignore_ke=True)
    assert chosen.ke == () and chosen.spi == b"\x01\x02\x03\x04"
    with pytest.raises(NoProposalChosen):
        select_proposal([parse_proposal("aes128gcm16", "esp")],
                        [parse_proposal("aes128gcm16-ecp256", "esp")])


def test_none_transforms_equal_absence():
    offered = Proposal.from_transforms(Protocol.ESP, [
        Transform(T.ENCR, ike.ENCR_AES_GCM_16, 256), Transform(T.INTEG, ike.AUTH_NONE),
        Transform(T.KE, ike.KE_NONE), Transform(T.ESN, ike.NO_ESN)], number=3)
    chosen = select_proposal([offered], [parse_proposal("aes256gcm16", "esp")])
    assert chosen == parse_proposal("aes256gcm16", "esp") and chosen.number == 3


def test_unknown_transforms_are_skipped_not_chosen():
    offered = Proposal.from_transforms(Protocol.IKE, [
        Transform(T.ENCR, 3), Transform(T.ENCR, ike.ENCR_AES_CBC, 128),
        Transform(T.INTEG, 2), Transform(T.INTEG, ike.AUTH_HMAC_SHA2_256_128),
        Transform(T.PRF, ike.PRF_HMAC_SHA2_256), Transform(T.KE, 2), Transform(T.KE, 14)])
    chosen = select_proposal([offered], [parse_proposal("aes128-sha256-modp2048")])
    assert chosen == parse_proposal("aes128-sha256-modp2048")


def test_proposals_with_unknown_transform_types_are_rejected():
    """RFC 7296 §3.3.6: a proposal with a transform type we do not understand is not
    acceptable; the next proposal may be."""
    odd = Proposal.from_transforms(Protocol.IKE, [*parse_proposal(
        "aes128-sha256-modp2048").transforms, Transform(241, 7)], number=1)
    assert odd.transforms[-1].type == 241 and "UNKNOWN_241_7" in odd.charon
    plain = parse_proposal("aes128-sha256-modp2048").with_(number=2)
    with pytest.raises(NoProposalChosen):
        select_proposal([odd], [parse_proposal("aes128-sha256-modp2048")])
    assert select_proposal([odd, plain], [plain]).number == 2


def test_protocol_must_match():
    with pytest.raises(NoProposalChosen, match="no acceptable proposal"):
        select_proposal([parse_proposal("aes256-sha256", "esp")],
                        [parse_proposal("aes256-sha256-modp2048")])
    with pytest.raises(ValueError):
        select_proposal([], [], prefer="mine")


# -- the keyword ``default`` (strongSwan's, with what this stack implements) ---------------


def test_default_is_an_aead_and_a_classic_proposal_of_everything_we_implement():
    ike_default = parse_proposals("default", "ike")
    assert [p.number for p in ike_default] == [1, 2]
    aead, classic = ike_default
    assert not aead.of_type(ike.TransformType.INTEG) and classic.of_type(ike.TransformType.INTEG)
    for proposal in ike_default:
        groups = {t.id for t in proposal.of_type(ike.TransformType.KE)}
        assert groups == {14, 19, 20, 31}        # MODP-2048, ECP-256, ECP-384, Curve25519
    assert [p.keyword for p in parse_proposals("DEFAULT", "esp")] == \
        ["aes256gcm16-aes128gcm16", "aes256-aes128-sha256-sha384-sha512"]
    # an item among others, expanded where it stands
    mixed = parse_proposals("aes128-sha256-modp2048,default", "ike")
    assert [p.number for p in mixed] == [1, 2, 3] and mixed[0].keyword == "aes128-sha256-modp2048"


@pytest.mark.parametrize("responder, number", [
    ("aes256-sha256-modp2048", 2),               # restricted to MODP-2048: the classic one
    ("aes256gcm16-prfsha384-ecp384", 1),         # restricted to ECP-384: the AEAD one
    ("aes128gcm16-prfsha256-curve25519", 1),
])
def test_a_restricted_responder_finds_its_proposal_in_the_default_offer(responder, number):
    chosen = select_proposal(parse_proposals("default", "ike"), [parse_proposal(responder)])
    assert chosen.number == number
    assert chosen.keyword == parse_proposal(responder).keyword
