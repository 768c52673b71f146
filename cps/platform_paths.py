"""Per-user directories in each platform's usual place (today: the cache).

::

    from cps.platform_paths import user_cache_dir

    user_cache_dir()            # Linux/BSD: $XDG_CACHE_HOME/cps or ~/.cache/cps
                                # macOS:     ~/Library/Caches/cps
                                # Windows:   %LOCALAPPDATA%\\cps\\Cache

Every function takes the platform facts as keyword arguments (``platform`` as
in :data:`sys.platform`, ``environ``, ``home``), defaulting to the running
process, so that tests can simulate Windows or macOS on Linux.

Why not platformdirs: these few lines are all cps needs, ``import cps`` stays
free of another dependency, and the results are platformdirs'
``user_cache_dir("cps", appauthor=False)`` for the usual settings.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

__all__ = ["APP", "getenv", "user_cache_dir"]

#: The directory name cps uses under the platform's per-user directories.
APP = "cps"


def getenv(name: str, *, platform: str | None = None,
           environ: Mapping[str, str] | None = None) -> str:
    """``environ[name]``, or ``""`` when unset. On Windows (``platform == "win32"``)
    names are case-insensitive, as there (``%windir%`` is ``%WINDIR%``)."""
    env = os.environ if environ is None else environ
    value = env.get(name)
    if value is None and (platform or sys.platform) == "win32":
        wanted = name.upper()
        value = next((v for k, v in env.items() if k.upper() == wanted), None)
    return value or ""


def user_cache_dir(*, platform: str | None = None, environ: Mapping[str, str] | None = None,
                   home: str | os.PathLike[str] | None = None) -> Path:
    """The per-user cache directory of cps, created by whoever writes into it.

    * Linux, BSD and other Unix: ``$XDG_CACHE_HOME/cps`` when that is an absolute
      path (the XDG specification ignores relative ones), else ``~/.cache/cps``;
    * macOS: ``~/Library/Caches/cps``;
    * Windows: ``%LOCALAPPDATA%\\cps\\Cache``, else ``~\\AppData\\Local\\cps\\Cache``
      (the local, not roaming, profile: caches must not travel with the user).

    :param platform: a :data:`sys.platform` value; default the running one.
    :param environ: the environment; default :data:`os.environ`.
    :param home: the user's home directory; default :meth:`pathlib.Path.home`.
    """
    system = platform or sys.platform
    base = Path(home) if home is not None else Path.home()
    if system == "win32":
        local = getenv("LOCALAPPDATA", platform=system, environ=environ)
        return (Path(local) if local else base / "AppData" / "Local") / APP / "Cache"
    if system == "darwin":
        return base / "Library" / "Caches" / APP
    xdg = getenv("XDG_CACHE_HOME", platform=system, environ=environ)
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / APP
    return base / ".cache" / APP
