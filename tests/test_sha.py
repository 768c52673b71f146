"""Our SHA-1/SHA-256 with exportable state agree with hashlib at every boundary."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cps import errors
from cps.sha import digest, finish, split


@pytest.mark.parametrize("alg", ["sha1", "sha256"])
@pytest.mark.parametrize("n", [0, 1, 55, 56, 63, 64, 65, 119, 127, 128, 129, 1000])
def test_split_then_finish_matches_hashlib(alg, n):
    msg = bytes((i * 7) & 0xFF for i in range(n))
    part, value = digest(alg, msg)
    assert value == hashlib.new(alg, msg).digest()
    if n:
        assert 1 <= len(part.tail) <= 64
    assert part.bit_count == (n - len(part.tail)) * 8
    assert len(part.state_and_count) == {"sha1": 28, "sha256": 40}[alg]


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=400), st.sampled_from(["sha1", "sha256"]))
def test_property_matches_hashlib(msg, alg):
    assert digest(alg, msg)[1] == hashlib.new(alg, msg).digest()


def test_empty_state_starts_from_the_initial_value():
    assert finish("sha256", b"", 0, b"abc") == hashlib.sha256(b"abc").digest()


def test_bad_inputs_raise_typed_errors():
    with pytest.raises(errors.NotSupported):
        split("md5", b"x")
    with pytest.raises(errors.CardProtocolError):
        finish("sha1", b"\x00" * 19, 0, b"")
    with pytest.raises(errors.CardProtocolError):
        finish("sha1", b"\x00" * 20, 7, b"")
