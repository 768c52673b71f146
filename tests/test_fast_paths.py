"""The hot-path DER readers agree with the general ones they short-cut.

Identity extraction and certificate parsing have inline fast paths for the
short-form DER every card certificate uses (a login server runs them for each
token). Each is checked here against the general reader it bypasses, on the
real shapes and on many mutations of them: same result, or the same error.
"""

from __future__ import annotations

import random

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from cps import identity
from cps.errors import CertificateParseError
from cps.trust import certs


def _outcome(fn, *args):
    try:
        return ("ok", fn(*args))
    except (identity._Malformed, CertificateParseError) as exc:  # noqa: SLF001
        return ("error", type(exc).__name__, str(exc))


def _mutations(data: bytes, rng: random.Random, count: int):
    yield data
    for _ in range(count):
        raw = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            action = rng.randrange(4)
            i = rng.randrange(len(raw)) if raw else 0
            if action == 0 and raw:
                raw[i] = rng.randrange(256)
            elif action == 1 and raw:
                raw[i] = rng.choice([0x30, 0x31, 0x06, 0x0C, 0x13, 0xA0, 0x7F, 0x80,
                                     0x81, 0x82, 0x1F, 0x00])
            elif action == 2:
                del raw[i:i + rng.randint(1, 4)]
            else:
                raw[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 3)))
        yield bytes(raw)


@pytest.fixture(scope="module")
def card_certificates(cps_pki):
    out = []
    for name in ("cps3-medecin", "cps3-cpe", "cps3-adeli", "cps3-contactless"):
        creds = cps_pki.issue_card(name)
        out += [creds.auth_cert.public_bytes(Encoding.DER),
                creds.sign_cert.public_bytes(Encoding.DER)]
    return out


def test_subject_fast_path_matches_the_general_reader(card_certificates):
    rng = random.Random(11)
    checked = fast_used = 0
    for der in card_certificates:
        subject = certs.parse_cert(der).subject
        for data in _mutations(subject, rng, 1500):
            try:
                tlv = identity._read(data, 0, len(data))  # noqa: SLF001
            except identity._Malformed:  # noqa: SLF001
                continue
            fast = _outcome(identity._parse_short_name, data, tlv.start, tlv.end)  # noqa: SLF001
            general = _outcome(identity._parse_any_name, data, tlv)  # noqa: SLF001
            if fast == ("ok", None):
                continue  # not the short form: the general reader takes it
            fast_used += 1
            assert fast == general, data.hex()
            checked += 1
    assert checked > 1000 and fast_used > 1000


def test_upn_fast_path_matches_the_general_reader(card_certificates):
    rng = random.Random(12)
    fast_used = 0
    sans = [certs.parse_cert(der).ext(certs.OID.SUBJECT_ALT_NAME) for der in card_certificates]
    # authentication certificates have a SAN with the UPN, signature certificates none
    assert [san is not None for san in sans] == [True, False] * (len(sans) // 2)
    for san in filter(None, sans):
        assert identity._upns(san)[0]  # noqa: SLF001 - the real SAN has its UPN
        for data in _mutations(san, rng, 1500):
            if not data:
                continue
            assert identity._upns(data) == identity._upns_any(data), data.hex()  # noqa: SLF001
            fast_used += 1
    assert fast_used > 1000


def test_single_text_fast_path_matches_the_general_reader():
    rng = random.Random(13)
    seeds = [b"\x13\x0a8025000001", b"\x0c\x06\xc3\x89LO", b"\x1e\x04\x00A\x00B", b"\x16\x00"]
    for seed in seeds:
        for data in _mutations(seed, rng, 2000):
            assert _outcome(identity._single_text, data) == \
                _outcome(identity._single_text_any, data), data.hex()  # noqa: SLF001


def _children_reference(data: bytes, start: int, end: int):
    out = []
    pos = start
    while pos < end:
        tag, vs, ve = certs.header(data, pos, end)
        out.append((tag, pos, vs, ve))
        pos = ve
        if len(out) > 4096:
            raise CertificateParseError("too many DER elements")
    return out


def test_children_matches_header_by_header(card_certificates):
    rng = random.Random(14)
    for der in card_certificates[:2]:
        for data in _mutations(der[4:400], rng, 3000):
            start = rng.randint(0, len(data))
            end = rng.randint(start, len(data))
            assert _outcome(certs.children, data, start, end) == \
                _outcome(_children_reference, data, start, end)


def test_extension_fast_path_keeps_every_extension(card_certificates):
    from cryptography import x509

    for der in card_certificates:
        parsed = certs.parse_cert(der)
        reference = x509.load_der_x509_certificate(der)
        assert len(parsed.extensions) == len(reference.extensions)
        for ext in reference.extensions:
            critical, value = parsed.extensions[certs.oid_from_str(ext.oid.dotted_string)]
            assert critical == ext.critical
            assert value == ext.value.public_bytes()


def test_token_base64_is_exactly_the_strict_base64():
    """Token fields are decoded with binascii's strict mode: the same inputs pass and
    fail as with ``base64.b64decode(validate=True)``, the documented rule."""
    import base64
    import binascii

    from cps.auth.token import _b64
    from cps.errors import MalformedToken

    def reference(value: str):
        try:
            return base64.b64decode(value.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError, ValueError):
            return "malformed"

    def ours(value: str):
        try:
            return _b64(value, "certificate")
        except MalformedToken:
            return "malformed"

    rng = random.Random(15)
    alphabet = "ABCab01+/=-_ \n\té"
    for _ in range(20000):
        value = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 10)))
        assert ours(value) == reference(value), repr(value)
    for size in range(0, 40):
        good = base64.b64encode(bytes(range(size))).decode()
        assert ours(good) == bytes(range(size))


def test_certificate_times_accept_exactly_the_real_dates():
    """The month-length table of certs._time agrees with the calendar."""
    import datetime as dt

    rng = random.Random(16)
    for _ in range(20000):
        year, month, day = rng.randint(1, 9999), rng.randint(1, 12), rng.randint(1, 31)
        raw = f"{year:04d}{month:02d}{day:02d}120000Z".encode()
        try:
            dt.date(year, month, day)
            real = True
        except ValueError:
            real = False
        ours = _outcome(certs._time, raw, 0x18, 0, len(raw))  # noqa: SLF001
        assert (ours[0] == "ok") == real, raw
        if real:
            assert ours[1] == raw[:14]


def test_rpps_fast_path_matches_the_general_reader():
    rng = random.Random(17)
    values = ["8" + "".join(rng.choice("0123456789") for _ in range(11)) for _ in range(5000)]
    values += ["810002813839", "810003461033", "8" + "١" * 11, "8" + "1" * 10, "8" + "1" * 12]
    for value in values:
        general = identity._parse_any_idnat(value)  # noqa: SLF001
        assert identity.parse_idnat(value) == general, value


def test_card_type_fast_path_matches_the_general_reader(card_certificates):
    """``02 01 nn`` is read inline; the same number in two content bytes (``02 02 00 nn``,
    ``02 02 ff nn``) goes through the general reader: same card type, same warnings."""
    parsed = certs.parse_cert(card_certificates[0])
    tlv = identity._read(parsed.subject, 0, len(parsed.subject))  # noqa: SLF001
    subject = identity._parse_name(parsed.subject, tlv)  # noqa: SLF001

    def read(raw: bytes):
        who = identity.Practitioner._from_parsed(  # noqa: SLF001
            identity._Parsed(subject, {identity.OID_CARD_TYPE: raw}, []))  # noqa: SLF001
        return who.card_type, who.card_type_inferred, who.warnings

    for number in range(-128, 128):
        short = bytes([0x02, 0x01, number & 0xFF])
        long = bytes([0x02, 0x02, 0xFF if number < 0 else 0x00, number & 0xFF])
        assert read(short) == read(long), number


def test_time_key_remembered_per_second_is_exact():
    """certs.time_key keeps the digits of the last second: the same digits as formatting
    every time, across zones, microseconds, second boundaries and 1969."""
    import datetime as dt

    def reference(moment):
        return moment.astimezone(dt.timezone.utc).strftime("%Y%m%d%H%M%S").encode()

    rng = random.Random(18)
    zones = [dt.timezone.utc, dt.timezone(dt.timedelta(hours=1)),
             dt.timezone(dt.timedelta(hours=-5, minutes=-30))]
    base = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.timezone.utc)
    moments = [dt.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=dt.timezone.utc),
               dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)]
    for _ in range(5000):
        moment = base + dt.timedelta(microseconds=rng.randrange(-10**13, 10**13))
        moments += [moment.astimezone(rng.choice(zones)),
                    moment + dt.timedelta(microseconds=rng.randrange(0, 2_000_000))]
    for moment in moments:
        assert certs.time_key(moment) == reference(moment), moment
    with pytest.raises(TypeError, match="naive"):
        certs.time_key(dt.datetime(2026, 1, 1))  # naive: a caller's mistake


def test_rsa_encryption_key_fast_path_matches_the_general_reader():
    """The Verifier's key-padding fast path says "rsaEncryption" only where the
    general SubjectPublicKeyInfo reader says so (then both paddings are allowed)."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.serialization import PublicFormat

    from cps.auth.server import _rsa_encryption_key
    from cps.trust.algorithms import RSA_ENCRYPTION, key_algorithm

    def spki(key):
        return key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)

    shapes = [spki(rsa.generate_private_key(65537, bits)) for bits in (1024, 2048, 4096)]
    shapes.append(spki(ec.generate_private_key(ec.SECP256R1())))
    # id-RSASSA-PSS keys (RFC 4055), without and with parameters: PSS only
    rsa_2048 = shapes[1]
    for algorithm in (bytes.fromhex("300b06092a864886f70d01010a"),
                      bytes.fromhex("303e06092a864886f70d01010a3031a00d300b0609608648016503"
                                    "040201a11a301806092a864886f70d010108300b06096086480165"
                                    "03040201a203020120")):
        body = algorithm + rsa_2048[19:]
        shapes.append(b"\x30\x82" + len(body).to_bytes(2, "big") + body)
    rng = random.Random(7)
    checked = 0
    for shape in shapes:
        for candidate in _mutations(shape, rng, 60):
            try:
                general = key_algorithm(candidate)[0] == RSA_ENCRYPTION
            except ValueError:
                general = False
            if _rsa_encryption_key(candidate):
                assert general, candidate.hex()
                checked += 1
    assert checked >= 3          # the real RSA shapes took the fast path
