"""The emulated CPS3 card: card OS, test PKI, profiles, vpcd and SoftHSM2 attachments.

``import cps`` never imports this package; it needs cryptography.
See docs/emulator.md.
"""

from .card import EmulatedCard, EmulatedConnection, default_pki
from .faults import Faults
from .pki import CardCredentials, TestPKI
from .profiles import CardProfile, load_profile, profile_names

__all__ = ["EmulatedCard", "EmulatedConnection", "default_pki", "Faults", "TestPKI",
           "CardCredentials", "CardProfile", "load_profile", "profile_names"]
