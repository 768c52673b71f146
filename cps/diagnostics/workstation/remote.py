"""The ``remote`` check: a remote desktop session (RDP, Citrix, xrdp, SSH) and whether
the smart card is redirected to it.

In a remote session the card is the client machine's: it reaches the session only
through smart-card redirection. Windows' policy "Do not allow smart card device
redirection" is ``fEnableSmartCard = 0`` under
``HKLM\\SOFTWARE\\Policies\\Microsoft\\Windows NT\\Terminal Services``. The ANS lists
a Cryptolib bug where winscard stops in RDP sessions (1075).
"""

from __future__ import annotations

from typing import Any, Dict

from ..machine import Machine
from ..report import Check, _fail, _ok, _warn

NAME = "remote"
_TS_POLICY = r"HKLM\SOFTWARE\Policies\Microsoft\Windows NT\Terminal Services"


def check_remote(m: Machine) -> Check:
    session = m.env("SESSIONNAME")
    data: Dict[str, Any] = {"session": session or None, "kind": None, "redirection": None}
    if m.windows:
        upper = session.upper()
        if upper.startswith("RDP-"):
            data["kind"] = "rdp"
            policy = m.registry.value(_TS_POLICY, "fEnableSmartCard")
            data["redirection"] = policy != 0
            client = m.env("CLIENTNAME")
            if policy == 0:
                return _fail(NAME, f"Remote Desktop session {session} with smart-card "
                             "redirection disabled by policy (fEnableSmartCard=0): the "
                             "client's card cannot reach this session",
                             "Allow smart-card redirection: gpedit.msc → Remote Desktop "
                             "Services → Device and Resource Redirection → \"Do not allow smart "
                             "card device redirection\" = Not configured, then reconnect with "
                             "Smart cards ticked in the client's Local Resources.", **data)
            return _warn(NAME, f"Remote Desktop session {session}"
                         + (f" from {client}" if client else "")
                         + ": the card is the client's, redirected",
                         "Tick Smart cards in the RDP client's Local Resources, install the "
                         "Cryptolib CPS on this server, and keep it current (ANS bug 1075: "
                         "winscard stopping in RDP sessions); if the card vanishes, reconnect.",
                         **data)
        if upper.startswith("ICA-") or m.env("CITRIX_SESSION_ID"):
            data["kind"] = "citrix"
            return _warn(NAME, f"Citrix session {session}: the card is the client's",
                         "The Citrix policy \"Smart card redirection\" must be Allowed and the "
                         "Cryptolib CPS installed on the server (ANS guide TSE/Citrix); the "
                         "client needs Citrix Workspace with its PC/SC support.", **data)
        return _ok(NAME, "local session" + (f" ({session})" if session else ""), **data)
    if m.env("XRDP_SESSION"):
        data["kind"] = "xrdp"
        redirected = bool(m.env("PCSCLITE_CSOCK_NAME"))
        data["redirection"] = redirected
        if redirected:
            return _warn(NAME, "xrdp session: the card is the client's, redirected through "
                         f"{m.env('PCSCLITE_CSOCK_NAME')}",
                         "Keep the client's smart-card redirection on; the server's own "
                         "readers are not seen in this session.", **data)
        return _warn(NAME, "xrdp session without smart-card redirection: only the server's "
                     "readers are seen",
                     "Enable smart-card redirection in xrdp (xrdp built with --enable-pcsc, "
                     "which sets PCSCLITE_CSOCK_NAME in the session), or read the card at the "
                     "server.", **data)
    if m.exists("/opt/Citrix/VDA") and m.env("CTX_SESSION_ID"):
        data["kind"] = "citrix"
        return _warn(NAME, "Citrix Linux VDA session: the card is the client's",
                     "Allow smart-card redirection in the Citrix policies and install the "
                     "Cryptolib CPS on the VDA.", **data)
    if m.env("SSH_CONNECTION"):
        data["kind"] = "ssh"
        return _warn(NAME, "SSH session: the readers checked are this server's, not the "
                     "client's", "Run cps doctor on the computer the reader is plugged into.",
                     **data)
    return _ok(NAME, "local session", **data)
