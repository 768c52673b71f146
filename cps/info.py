"""Compatibility module: the ``cps`` command's view model is :mod:`cps_cli.view`.

It moved to the CLI side because only the CLI uses it (issue 15); the names
stay importable from here for scripts and harnesses written against earlier
versions. This is the one place the library imports the CLI package, and
nothing in :mod:`cps` imports this module. New code: :mod:`cps_cli.view` for
the commands' data, :mod:`cps.trust.files` for reading certificate, CRL and
anchor files.
"""

from __future__ import annotations

from cps_cli.view import *  # noqa: F403
from cps_cli.view import __all__  # noqa: F401
