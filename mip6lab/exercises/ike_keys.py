"""Exercise 2: SKEYSEED and the seven SK_* keys from one run's values, and the IKE_AUTH
request's SK payload opened with SK_ei (RFC 7296 §2.13, §2.14, §3.14; RFC 5282 for
AES-GCM).

The student is given what an IKE SA's keys are made from (the nonces, g^ir, the SPIs, the
PRF and each key's length) and writes ``derive_keys(...)`` and ``open_sk(message, sk_e)``;
the checks compare with what the stack derived (:meth:`mip6lab.ikev2.sa.IkeSa.secrets`)
and decrypted, and name the usual slip when an answer matches one.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field

from ..crypto.ike.sk import decrypt_message
from ..crypto.ike.transforms import TransformType
from ..scenarios import create
from . import Feedback, as_bytes, attempt, first_difference
from .capture import IKE_AUTH, ike_datagrams

NAMES = ("SK_d", "SK_ai", "SK_ar", "SK_ei", "SK_er", "SK_pi", "SK_pr")
HASHES = {"PRF_HMAC_SHA2_256": "sha256", "PRF_HMAC_SHA2_384": "sha384",
          "PRF_HMAC_SHA2_512": "sha512", "PRF_HMAC_SHA1": "sha1"}


@dataclass(frozen=True)
class Run:
    """One IKE SA's inputs (what the student is given) and results (for the checks)."""

    prf_hash: str                 # the PRF is HMAC with this hashlib name
    nonce_i: bytes
    nonce_r: bytes
    shared_secret: bytes          # g^ir
    spi_i: bytes
    spi_r: bytes
    lengths: dict                 # SK_* name -> bytes, in the order prf+ cuts them
    auth_request: bytes           # the IKE_AUTH request as sent (SK payload inside)
    auth_response: bytes
    keys: dict = field(repr=False)        # SKEYSEED and SK_*, as the stack derived them
    plain_request: bytes = field(repr=False, default=b"")    # the SK payloads' contents
    plain_response: bytes = field(repr=False, default=b"")


def run(seed: int, hoa_mode: str = "address") -> Run:
    scenario = create("home-registration", seed=seed, hoa_mode=hoa_mode)
    scenario.lab.run(until=1.5)
    auth = [d for d in ike_datagrams(scenario.lab, "mn", "tx") if d.exchange == IKE_AUTH]
    auth_r = [d for d in ike_datagrams(scenario.lab, "ha", "tx") if d.exchange == IKE_AUTH]
    sa = scenario.lab.nodes["mn"].ike.sas[auth[0].spi_i]
    s = sa.secrets()
    k = s.keys
    keys = {"SKEYSEED": k.skeyseed, "SK_d": k.sk_d, "SK_ai": k.sk_ai, "SK_ar": k.sk_ar,
            "SK_ei": k.sk_ei, "SK_er": k.sk_er, "SK_pi": k.sk_pi, "SK_pr": k.sk_pr}
    _first, plain_request = decrypt_message(k.cipher(from_initiator=True), auth[0].message)
    _first, plain_response = decrypt_message(k.cipher(from_initiator=False), auth_r[0].message)
    return Run(HASHES[s.proposal.one(TransformType.PRF).name], s.nonce_i, s.nonce_r,
               s.shared_secret, s.spi_i, s.spi_r, {n: len(keys[n]) for n in NAMES},
               auth[0].message, auth_r[0].message, keys, plain_request, plain_response)


@dataclass(frozen=True)
class Exercise:
    seed: int
    run: Run


def prepare(seed: int) -> Exercise:
    return Exercise(seed, run(seed))


def _prf(hash_name: str, key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hash_name).digest()


def _stream(hash_name: str, key: bytes, seed: bytes, length: int, start: int = 1) -> bytes:
    out, t, n = b"", b"", start
    while len(out) < length:
        t = _prf(hash_name, key, t + seed + bytes([n]))
        out, n = out + t, n + 1
    return out[:length]


def _cut(stream: bytes, lengths: dict) -> dict:
    keys, at = {}, 0
    for name in NAMES:
        keys[name], at = stream[at:at + lengths[name]], at + lengths[name]
    return keys


def _slips(r: Run) -> dict[str, dict]:
    """The keys the usual slips give, by what to say about each."""
    h, total = r.prf_hash, sum(r.lengths.values())
    ni, nr, g, si, sr = r.nonce_i, r.nonce_r, r.shared_secret, r.spi_i, r.spi_r
    good = _prf(h, ni + nr, g)
    slips = {
        "did you swap Ni and Nr in SKEYSEED? It is prf(Ni | Nr, g^ir)": (
            _prf(h, nr + ni, g), ni + nr + si + sr, 1),
        "did you swap prf's key and data? SKEYSEED = prf(Ni | Nr, g^ir): the nonces are "
        "the key": (_prf(h, g, ni + nr), ni + nr + si + sr, 1),
        "did you swap Ni and Nr in prf+'s seed? It is Ni | Nr | SPIi | SPIr": (
            good, nr + ni + si + sr, 1),
        "did you leave the SPIs out of prf+'s seed? It is Ni | Nr | SPIi | SPIr": (
            good, ni + nr, 1),
        "did you swap SPIi and SPIr in prf+'s seed?": (good, ni + nr + sr + si, 1),
        "prf+'s counter starts at 0x01, not 0x00 (RFC 7296 §2.13)": (
            good, ni + nr + si + sr, 0),
    }
    return {slip: {"SKEYSEED": key, **_cut(_stream(h, key, seed, total, start), r.lengths)}
            for slip, (key, seed, start) in slips.items()}


def judge_keys(derive_keys, r: Run, where: str) -> Feedback:
    result, failed = attempt("derive_keys", derive_keys, r.nonce_i, r.nonce_r,
                             r.shared_secret, r.spi_i, r.spi_r, r.prf_hash, dict(r.lengths))
    if failed:
        return failed
    if not isinstance(result, dict):
        return Feedback(False, f"derive_keys should return a dict of SKEYSEED and the SK_* "
                               f"keys, not {type(result).__name__}.")
    missing = [n for n in ("SKEYSEED", *NAMES) if n not in result]
    if missing:
        return Feedback(False, f"derive_keys's dict has no {', '.join(missing)}.")
    given = {n: as_bytes(result[n]) for n in ("SKEYSEED", *NAMES)}
    wrong = [n for n in ("SKEYSEED", *NAMES) if given[n] != r.keys[n]]
    if not wrong:
        return Feedback(True, f"SKEYSEED and the seven SK_* keys of {where} are the stack's.")
    name = wrong[0]
    value, expected = given[name], r.keys[name]
    if value is None:
        return Feedback(False, f"your {name} should be bytes, not {result[name]!r}.")
    if len(value) != len(expected):
        return Feedback(False, f"your {name} is {len(value)} bytes long; in this run it is "
                               f"{len(expected)} (lengths[{name!r}]).")
    for slip, keys in _slips(r).items():
        if keys.get(name) == value:
            return Feedback(False, f"your {name} differs from the stack's from byte "
                                   f"{first_difference(value, expected)}: {slip}.")
    swapped = {"SK_ei": "SK_er", "SK_er": "SK_ei", "SK_pi": "SK_pr", "SK_pr": "SK_pi"}
    if name in swapped and value == r.keys[swapped[name]]:
        return Feedback(False, f"your {name} is the stack's {swapped[name]}: prf+ cuts the "
                               "keys in the order SK_d, SK_ai, SK_ar, SK_ei, SK_er, SK_pi, SK_pr.")
    return Feedback(False, f"your {name} differs from the stack's from byte "
                           f"{first_difference(value, expected)} ({len(wrong)} of the 8 values "
                           "differ): SKEYSEED = prf(Ni | Nr, g^ir), then prf+(SKEYSEED, "
                           "Ni | Nr | SPIi | SPIr) cut in order (RFC 7296 §2.14).")


def judge_open(open_sk, message: bytes, sk_e: bytes, expected: bytes, where: str) -> Feedback:
    result, failed = attempt("open_sk", open_sk, message, sk_e)
    if failed:
        if "InvalidTag" in failed.message:
            return Feedback(False, f"open_sk on {where}: the GCM tag did not verify "
                                   "(InvalidTag): the key is SK_e without its last 4 bytes, the "
                                   "nonce those 4 bytes of salt | the 8-byte IV, the associated "
                                   "data the IKE header and the SK payload's header (RFC 5282 "
                                   "§5.1).")
        return failed
    given = as_bytes(result)
    if given == expected:
        return Feedback(True, f"open_sk opened {where}: {len(expected)} bytes of payloads, the "
                              "stack's.")
    if given is None:
        return Feedback(False, f"open_sk should return bytes, not {result!r}.")
    if given.startswith(expected) and len(given) > len(expected):
        return Feedback(False, f"open_sk on {where} kept {len(given) - len(expected)} bytes "
                               "too many at the end: drop the padding and the Pad Length "
                               "octet (RFC 7296 §3.14).")
    return Feedback(False, f"open_sk on {where} differs from the stack's plaintext from byte "
                           f"{first_difference(given, expected)}.")


def check_keys(exercise: Exercise, derive_keys) -> Feedback:
    return judge_keys(derive_keys, exercise.run, "your run")


def check_open(exercise: Exercise, open_sk) -> Feedback:
    r = exercise.run
    return judge_open(open_sk, r.auth_request, r.keys["SK_ei"], r.plain_request,
                      "your run's IKE_AUTH request with SK_ei")


def hidden_checks(exercise: Exercise, derive_keys, open_sk) -> list[Feedback]:
    """Hidden: another run's keys (the home prefix variant, another seed), and the IKE_AUTH
    response opened with SK_er."""
    other = run(exercise.seed + 1, hoa_mode="prefix")
    r = exercise.run
    return [judge_keys(derive_keys, other, "another run"),
            judge_open(open_sk, r.auth_response, r.keys["SK_er"], r.plain_response,
                       "the IKE_AUTH response with SK_er")]
