"""The ``cps`` pytest plugin (entry point ``pytest11``).

Fixtures for emulated cards, the test PKI and a SoftHSM2 token arrive with the
emulator; see docs/emulator.md.
"""
