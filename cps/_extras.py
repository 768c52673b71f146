"""The one guard in front of optional dependencies (pip "extras").

``pip install cps-middleware`` is the light install: certificate validation
(:mod:`cps.trust`), login verification (:mod:`cps.auth`), signature checks
(:mod:`cps.sign`) and the ``cps`` command, on pure-Python packages and
cryptography's wheels -- no C compiler, no PC/SC library. The rest comes with
extras, and every import of theirs goes through :func:`require`, which turns a
missing package into :class:`~cps.errors.MissingExtra` naming what to install::

    scard = require("smartcard.scard")     # MissingExtra: pip install 'cps-middleware[card]'

=================  ==================  =========  ===============================
top-level module   distribution        extra      needed by
=================  ==================  =========  ===============================
``smartcard``      pyscard             card       :mod:`cps.pcsc` (readers, cards)
``pkcs11``         python-pkcs11       card       :mod:`cps.pkcs11` (PKCS#11 backend)
``redis``          redis               redis      ``RedisNonceStore``
``tlslite``        tlslite-ng          tls        :mod:`cps.tls` (TLS with the card)
``requests``       requests            tls        ``cps.tls.CardHTTPAdapter``
``signxml``        signxml             xml        :mod:`cps.xades` (XML signatures)
``lxml``           lxml                xml        :mod:`cps.xades`
``pyhanko``        pyHanko             pdf        :mod:`cps.pades` (PDF signatures)
=================  ==================  =========  ===============================

Nothing here is imported by ``import cps``; the guard itself imports nothing
heavy.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingExtra

__all__ = ["DISTRIBUTION", "EXTRAS", "install_hint", "require"]

#: The project's distribution name, as ``pip install`` spells it.
DISTRIBUTION = "cps-middleware"

#: top-level module -> (distribution that provides it, extra that installs it)
EXTRAS: dict[str, tuple[str, str]] = {
    "smartcard": ("pyscard", "card"),
    "pkcs11": ("python-pkcs11", "card"),
    "redis": ("redis", "redis"),
    "tlslite": ("tlslite-ng", "tls"),
    "requests": ("requests", "tls"),
    "signxml": ("signxml", "xml"),
    "lxml": ("lxml", "xml"),
    "pyhanko": ("pyHanko", "pdf"),
}


def install_hint(extra: str) -> str:
    """The command that installs ``extra``: ``pip install 'cps-middleware[card]'``."""
    return f"pip install '{DISTRIBUTION}[{extra}]'"


def require(module: str, extra: str | None = None,
            package: str | None = None) -> ModuleType:
    """Import ``module`` (an optional dependency), or raise :class:`MissingExtra`.

    :param module: the module to import, e.g. ``"smartcard.scard"``.
    :param extra: the extra that installs it; default from :data:`EXTRAS`.
    :param package: the distribution that provides it; default from :data:`EXTRAS`.
    :raises MissingExtra: the package is not installed, or is installed but
        cannot be loaded (a missing shared library, a wheel for another Python);
        ``extra`` and ``package`` say what to (re)install.
    """
    top = module.partition(".")[0]
    known_package, known_extra = EXTRAS.get(top, (top, top))
    package = package or known_package
    extra = extra or known_extra
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        missing = getattr(exc, "name", None)
        if isinstance(exc, ModuleNotFoundError) and missing is not None and (
                module == missing or module.startswith(missing + ".")):
            message = (f"{package} is not installed (it comes with the [{extra}] extra): "
                       f"{install_hint(extra)}")
        else:  # installed, but broken: a missing shared library, an incompatible build...
            message = (f"{package} is installed but cannot be loaded ({exc}): "
                       f"reinstall it with {install_hint(extra)}")
            if extra == "card" and top == "smartcard":
                message += " (pyscard needs the PC/SC library: libpcsclite1 on Debian)"
        raise MissingExtra(message, extra=extra, package=package, module=module) from exc
