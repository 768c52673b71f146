"""Challenge-response authentication of practitioners with their CPS card.

Client: ``card.auth_token(nonce, origin)``. Server: :class:`ChallengeIssuer`,
:class:`Verifier`, nonce stores. Token format: docs/auth-token.md.
"""

from .nonces import MemoryNonceStore, NonceStore, NonceStoreFull, RedisNonceStore, TakeResult
from .server import DEFAULT_PADDINGS, AuthResult, Challenge, ChallengeIssuer, RateLimited, Verifier
from .token import TOKEN_FORMAT, TOKEN_FORMAT_2, make_token, parse_token, signed_data

__all__ = ["ChallengeIssuer", "Challenge", "Verifier", "AuthResult", "NonceStore",
           "MemoryNonceStore", "RedisNonceStore", "TakeResult", "make_token", "parse_token",
           "signed_data", "TOKEN_FORMAT", "TOKEN_FORMAT_2", "DEFAULT_PADDINGS", "NonceStoreFull",
           "RateLimited"]
