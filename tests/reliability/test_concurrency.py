"""Concurrent users of one card: threads, PC/SC handles, processes, a reader unplugged.

Every multi-APDU operation (reading a file, the PIN counters, a signature,
an authentication) must be atomic: whatever runs beside it, each result is
the right one -- the signature verifies over *this* thread's document, the
certificate is the one asked for, the counters are the card's.
"""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import time
from collections import Counter
from typing import Callable, List

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.serialization import Encoding
from reliability_helpers import open_mine, open_when_ready, vpcd_port, wait_reader_free

import cps
from cps import errors
from cps.card import KeyRole
from cps.cps3 import Cps3Card

PIN, PUK = "7391", "58204613"
THREADS = 16
DONE: List[str] = []   # operations completed and checked (list.append is atomic)


def _check(cert, signature: bytes, data: bytes) -> None:
    cert.public_key().verify(signature, data, padding.PKCS1v15(), hashes.SHA256())


def _worker_ops(card_of: Callable[[], object], emu, rounds: int, seed: int,
                errors_out: List[str]) -> Callable[[], None]:
    """A thread's job: a random mix of every operation, each result checked."""
    creds = emu.credentials
    der = {KeyRole.AUTH: creds.auth_cert.public_bytes(Encoding.DER),
           KeyRole.SIGN: creds.sign_cert.public_bytes(Encoding.DER)}

    def run() -> None:
        rng = random.Random(seed)
        try:
            card = card_of()
        except Exception as exc:  # noqa: BLE001
            errors_out.append(f"thread {seed}: cannot open the card: {type(exc).__name__}: {exc}")
            return
        try:
            for i in range(rounds):
                op = rng.choice(("sign", "authenticate", "pin_status", "certificate",
                                 "card_number"))
                tag = f"thread {seed} round {i} {op}".encode()
                try:
                    if op == "sign":
                        _check(creds.sign_cert, card.sign(tag), tag)
                    elif op == "authenticate":
                        _check(creds.auth_cert, card.authenticate(tag, hash="sha256"), tag)
                    elif op == "pin_status":
                        status = card.pin_status()
                        assert (status.tries_left, status.max_tries) == (3, 3), status
                    elif op == "certificate":
                        role = rng.choice((KeyRole.AUTH, KeyRole.SIGN))
                        got = card.certificate_der(role)
                        assert got == der[role], f"{role.value} certificate mixed up"
                    else:
                        assert card.card_number == emu.profile.card_number
                    DONE.append(op)
                except Exception as exc:  # noqa: BLE001 - collected, reported at the end
                    errors_out.append(f"{tag.decode()}: {type(exc).__name__}: {exc}"[:300])
        finally:
            closer = getattr(card, "_owned_by_worker", False)
            if closer:
                card.close()

    return run


def _run_threads(jobs: List[Callable[[], None]], timeout: float = 60.0) -> None:
    # Switch threads as often as the interpreter can: a race that needs a switch
    # inside a 10-APDU file read shows up at once instead of once in a blue moon.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=job, daemon=True) for job in jobs]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout)
            assert not t.is_alive(), "a thread hung"
    finally:
        sys.setswitchinterval(interval)


# An open bug these tests meet (reported; the deterministic reproduction below is a strict
# xfail, the randomised run a non-strict one so that a lucky run is not red):
BUG9 = ("BUG-9 (fixed): Cps3Card reads files (certificates, PKCS#15 directories) without its "
        "session lock; on a connection without real transactions (in process) threads "
        "interleave SELECT and READ BINARY and get each other's files")


# --------------------------------------------------------------------------- in process
@pytest.mark.parametrize("warm", [
    False, True],
    ids=["cold-session", "warm-session"])
def test_sixteen_threads_share_one_session_in_process(cps_card_factory, warm):
    emu = cps_card_factory("cps3-medecin", pin=PIN, puk=PUK)
    card = Cps3Card(emu.connection())
    card.verify_pin(PIN)
    if warm:  # certificates, directories and serial already read
        card.certificate_der(KeyRole.AUTH), card.certificate_der(KeyRole.SIGN)  # noqa: B018
        card.card_number  # noqa: B018
    problems: List[str] = []
    DONE.clear()
    _run_threads([_worker_ops(lambda: card, emu, 8, seed, problems) for seed in range(THREADS)])
    assert len(DONE) + len(problems) == THREADS * 8
    assert not problems, f"{len(problems)} bad results:\n" + "\n".join(problems[:20])


# --------------------------------------------------------------------------- through pcscd
@pytest.fixture
def served(cps_pcscd, cps_card_factory):
    emu = cps_card_factory("cps3-medecin", pin=PIN, puk=PUK)
    wait_reader_free()
    with emu.serve_vpcd(port=vpcd_port()) as attachment:
        yield emu, attachment


@pytest.mark.pcsc
def test_sixteen_threads_share_one_session_over_pcsc(served):
    emu, attachment = served
    with open_when_ready(attachment.reader_name, emu) as card:
        card.verify_pin(PIN)
        problems: List[str] = []
        DONE.clear()
        _run_threads([_worker_ops(lambda: card, emu, 5, seed, problems)
                      for seed in range(THREADS)])
    assert len(DONE) + len(problems) == THREADS * 5
    assert not problems, f"{len(problems)} bad results:\n" + "\n".join(problems[:20])


@pytest.mark.pcsc
def test_sixteen_threads_each_with_its_own_pcsc_connection(served):
    """16 PC/SC handles on one card: transactions keep every operation whole."""
    emu, attachment = served
    with open_when_ready(attachment.reader_name, emu) as first:
        first.verify_pin(PIN)   # the card's security state is shared by every handle
        problems: List[str] = []

        def own_card():
            card = cps.open_card(reader=attachment.reader_name)
            card._owned_by_worker = True  # closed by the worker
            return card

        DONE.clear()
        _run_threads([_worker_ops(own_card, emu, 5, seed, problems)
                      for seed in range(THREADS)])
    assert not problems, f"{len(problems)} bad results:\n" + "\n".join(problems[:20])
    assert len(DONE) == THREADS * 5


_PROCESS_SCRIPT = r"""
import sys, random
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
import cps
from cps.card import KeyRole

reader, pin, seed, rounds, auth_path, sign_path = sys.argv[1:7]
auth = x509.load_der_x509_certificate(open(auth_path, "rb").read())
sign = x509.load_der_x509_certificate(open(sign_path, "rb").read())
rng = random.Random(int(seed))
bad = 0
with cps.open_card(reader=reader) as card:
    # Two programs sharing the card on purpose: the first to finish must not reset
    # it under the other (docs/card-api.md, "When the session ends").
    card.logout_on_close = False
    card.verify_pin(pin)
    for i in range(int(rounds)):
        tag = f"process {seed} round {i}".encode()
        try:
            op = rng.choice(("sign", "auth", "status", "cert"))
            if op == "sign":
                sign.public_key().verify(card.sign(tag), tag, padding.PKCS1v15(), hashes.SHA256())
            elif op == "auth":
                auth.public_key().verify(card.authenticate(tag, hash="sha256"), tag,
                                         padding.PKCS1v15(), hashes.SHA256())
            elif op == "status":
                assert card.pin_status().tries_left == 3
            else:
                role = rng.choice((KeyRole.AUTH, KeyRole.SIGN))
                want = (auth if role is KeyRole.AUTH else sign).public_bytes(
                    __import__("cryptography.hazmat.primitives.serialization",
                               fromlist=["Encoding"]).Encoding.DER)
                card._cert_der.pop(role, None)   # read it again each time
                assert card.certificate_der(role) == want, "certificate mixed up"
        except Exception as exc:
            bad += 1
            print(f"{tag.decode()} {op}: {type(exc).__name__}: {exc}", flush=True)
print(f"done {rounds} rounds, {bad} bad", flush=True)
sys.exit(1 if bad else 0)
"""


@pytest.mark.pcsc
def test_two_processes_use_one_card_at_once(served, tmp_path):
    emu, attachment = served
    open_when_ready(attachment.reader_name, emu).close()
    script = tmp_path / "worker.py"
    script.write_text(_PROCESS_SCRIPT)
    auth = tmp_path / "auth.der"
    sign = tmp_path / "sign.der"
    auth.write_bytes(emu.credentials.auth_cert.public_bytes(Encoding.DER))
    sign.write_bytes(emu.credentials.sign_cert.public_bytes(Encoding.DER))
    procs = [subprocess.Popen([sys.executable, str(script), attachment.reader_name, PIN,
                               str(seed), "25", str(auth), str(sign)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for seed in (1, 2)]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    for proc, out in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, out[-3000:]
        assert "done 25 rounds, 0 bad" in out, out[-3000:]
        print(out.strip().splitlines()[-1])
    assert emu.os.chvs[1].tries_left == 3


# --------------------------------------------------------------------------- reader unplugged
@pytest.mark.pcsc
def test_reader_unplugged_during_use_then_recovered(served, cps_card_factory):
    """The virtual reader's card goes away (vpcd link stopped) while a thread works:
    typed errors meanwhile, then a new session works once it is served again."""
    emu, attachment = served
    seen: Counter = Counter()
    stop = threading.Event()

    def work() -> None:
        card = None
        while not stop.is_set():
            try:
                if card is None:
                    card = open_mine(attachment.reader_name, emu)
                    card.verify_pin(PIN)
                _check(emu.credentials.sign_cert, card.sign(b"doc"), b"doc")
                seen["ok"] += 1
            except errors.CpsError as exc:
                seen[type(exc).__name__] += 1
                if card is not None:
                    card.close()
                card = None
                time.sleep(0.05)
            except Exception as exc:  # noqa: BLE001 - must not happen
                seen[f"UNTYPED {type(exc).__name__}: {exc}"] += 1
        if card is not None:
            card.close()

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    deadline = time.monotonic() + 20
    while seen["ok"] < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    attachment.stop()                      # unplugged
    unplugged_at = sum(seen.values())
    time.sleep(1.0)
    errors_meanwhile = sum(seen.values()) - unplugged_at
    with emu.serve_vpcd(port=vpcd_port()):  # plugged back
        ok_before = seen["ok"]
        deadline = time.monotonic() + 20
        while seen["ok"] < ok_before + 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()
        worker.join(30)
    untyped = [k for k in seen if k.startswith("UNTYPED")]
    assert not untyped, seen
    assert errors_meanwhile > 0, f"no error while unplugged: {seen}"
    assert seen["ok"] >= ok_before + 3, f"never recovered: {seen}"
    assert emu.os.chvs[1].tries_left == 3
    print(dict(seen))


# --------------------------------------------------------------------------- deterministic
def test_bug9_a_file_read_is_atomic_against_another_thread(cps_card_factory):
    """Thread A has selected its certificate file when thread B reads the other one."""
    from reliability_helpers import TappedConnection

    emu = cps_card_factory("cps3-medecin", pin=PIN, puk=PUK)
    conn = TappedConnection(emu)
    card = Cps3Card(conn)
    card.certificate_objects()                   # directories read: only the files remain
    other: List[bytes] = []

    def meanwhile(_emu) -> None:                 # before A's first READ BINARY
        b = threading.Thread(target=lambda: other.append(card.certificate_der(KeyRole.SIGN)))
        b.start()
        b.join(1.0)                              # a correct session makes B wait for A

    original = conn.send_and_receive

    def send(apdu: bytes):
        if apdu[1] == 0xA4 and apdu.endswith(b"\xc0\x02") and meanwhile not in done:
            done.append(meanwhile)
            response = original(apdu)
            meanwhile(emu)
            return response
        return original(apdu)

    done: List[object] = []
    conn.send_and_receive = send
    got = card.certificate_der(KeyRole.AUTH)
    for _ in range(50):
        if other:
            break
        time.sleep(0.02)
    assert got == emu.credentials.auth_cert.public_bytes(Encoding.DER)
    assert other == [emu.credentials.sign_cert.public_bytes(Encoding.DER)]


@pytest.mark.pcsc
def test_another_handle_moves_the_card_between_two_operations(served):
    """Found by the 16-handle run (a relative SELECT after another handle had selected
    the MF: 6A82); fixed by forgetting the current DF between transactions."""
    emu, attachment = served
    with open_when_ready(attachment.reader_name, emu) as mine, \
            open_when_ready(attachment.reader_name, emu) as theirs:
        mine.certificate_der(KeyRole.AUTH)      # leaves the application DF current
        theirs.pin_status()                      # another handle: the MF is current now
        assert mine.certificate_der(KeyRole.SIGN) == \
            emu.credentials.sign_cert.public_bytes(Encoding.DER)
