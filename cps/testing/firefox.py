"""Firefox ESR headless doing TLS client authentication with a key on a PKCS#11 token.

.. warning::
   TEST-ONLY: a throw-away profile, 127.0.0.1 services, the PIN handed to a
   browser by script.

A browser is the client most practitioners meet a card-authenticated service
with. This drives Debian's ``firefox-esr`` the way a person would use it, with
the card's keys behind a PKCS#11 module (SoftHSM2, OpenSC...), and no
geckodriver: the Marionette protocol (Firefox's own remote protocol, JSON over
a TCP socket of 127.0.0.1) is spoken directly::

    with HeadlessFirefox(module, trust=[root], pin=pin, token_label=label,
                         env=token.env()) as firefox:
        text = firefox.get("https://localhost:8443/", timeout=30)
        firefox.pin_prompts        # [PinPrompt(token=..., answered=True)]

How:

* the profile is a new directory (``user.js``: the client certificate chosen
  automatically, Marionette on a port the system picks, no JSON viewer, no
  proxy, no update or telemetry traffic); Firefox creates its NSS databases
  there at start;
* ``firefox-esr --headless --marionette -remote-allow-system-access
  --no-remote --profile DIR about:blank`` in a process group of its own;
  Marionette writes the port it listens on into ``MarionetteActivePort``;
* through Marionette, in chrome (privileged) context: the ``trust`` CAs are
  added to the profile's NSS database (trusted for servers, ``C,,``), the
  PKCS#11 module is loaded (``nsIPKCS11ModuleDB.addModule``), and
  ``@mozilla.org/prompter;1`` is replaced by a prompter whose
  ``promptPassword`` answers the token's PIN prompt **once**: a second prompt
  (NSS asks again after a wrong PIN) and a prompt for another token are
  cancelled, so a wrong PIN costs one try of the card's counter, never three.
  The PIN travels as an argument of that one script over the socket: it is in
  no file, command line, environment variable, log, exception or ``repr``;
* :meth:`HeadlessFirefox.get` navigates the content tab and returns the
  page's text (an error page's text too: :attr:`HeadlessFirefox.last_error`
  says which).

Every wait has a timeout; a failure raises :class:`FirefoxError` with the tail
of Firefox's output. :meth:`HeadlessFirefox.stop` kills the process group.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence, Union

if TYPE_CHECKING:
    from types import TracebackType

    from cryptography import x509

__all__ = ["FirefoxError", "HeadlessFirefox", "PinPrompt", "find_firefox"]

#: where Debian (firefox-esr) and others put the browser, tried in order after PATH
FIREFOX_NAMES = ("firefox-esr", "firefox")


class FirefoxError(RuntimeError):
    """Firefox is missing, did not start, or a Marionette command failed or timed out.

    The message ends with the tail of Firefox's output; it never holds the PIN.
    """


@dataclass(frozen=True)
class PinPrompt:
    """One PIN prompt Firefox's NSS raised (a password callback)."""

    #: the prompt's text, as Firefox wrote it (names the token)
    text: str
    #: true when the PIN was given; false when the prompt was cancelled
    answered: bool


def find_firefox(path: Optional[str] = None) -> str:
    """The Firefox executable: ``path``, else ``firefox-esr`` or ``firefox`` on PATH.

    :raises FirefoxError: none found.
    """
    if path is not None:
        return path
    for name in FIREFOX_NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise FirefoxError("firefox-esr is missing (Debian package firefox-esr)")


_PREFS: dict[str, Union[str, int, bool]] = {
    # the TLS client certificate: no chooser dialog
    "security.default_personal_cert": "Select Automatically",
    "security.osclientcerts.autoload": False,
    # Marionette on a port the system chooses, written to MarionetteActivePort
    "marionette.port": 0,
    "marionette.log.level": "Info",      # Trace would log commands, arguments included
    "remote.log.level": "Info",
    # a page's text as the server sent it (JSON too)
    "devtools.jsonview.enabled": False,
    # a quiet, self-contained browser: no proxy from the environment, no traffic of its own
    "network.proxy.type": 0,
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "browser.startup.page": 0,
    "browser.aboutwelcome.enabled": False,
    "startup.homepage_welcome_url": "about:blank",
    "app.update.disabledForTesting": True,
    "app.update.auto": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "datareporting.healthreport.uploadEnabled": False,
    "toolkit.telemetry.reportingpolicy.firstRun": False,
    "toolkit.telemetry.enabled": False,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "services.settings.server": "http://127.0.0.1:9/",
    "extensions.update.enabled": False,
    "extensions.getAddons.cache.enabled": False,
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "browser.safebrowsing.downloads.enabled": False,
    "browser.safebrowsing.update.enabled": False,
    "browser.region.network.url": "",
    "browser.search.update": False,
    "browser.newtabpage.enabled": False,
    "network.dns.disablePrefetch": True,
    "network.prefetch-next": False,
    "security.OCSP.enabled": 0,          # the test PKI's OCSP is not where the browser would ask
    "security.certerrors.mitm.priming.enabled": False,
    "dom.disable_open_during_load": False,
}

# Chrome-context script: the CAs, the module, the one-time PIN prompter.
# arguments: [module name, module path, [base64 DER...], pin, token label or null]
_SETUP = r"""
const [moduleName, modulePath, cas, pin, label] = arguments;
const win = Services.wm.getMostRecentWindow("navigator:browser");
const state = win.__cpsPin = {prompts: [], answered: 0};
const certdb = Cc["@mozilla.org/security/x509certdb;1"].getService(Ci.nsIX509CertDB);
for (const der of cas) certdb.addCertFromBase64(der, "C,,");
const prompt = {
  QueryInterface: ChromeUtils.generateQI(["nsIPrompt"]),
  promptPassword(title, text, password, checkMsg, checkState) {
    const ours = label === null || String(text).includes("(" + label + ")");
    const answer = ours && state.answered === 0;     // once: never a second PIN try
    state.prompts.push({text: String(text), answered: answer});
    if (!answer) return false;
    state.answered += 1;
    password.value = pin;
    return true;
  },
  alert() {}, alertCheck() {}, confirm() { return false; }, confirmCheck() { return false; },
  confirmEx() { return 1; }, prompt() { return false; },
  promptUsernameAndPassword() { return false; }, select() { return false; },
};
const factory = {
  QueryInterface: ChromeUtils.generateQI(["nsIFactory", "nsIPromptFactory"]),
  createInstance(iid) { return this.QueryInterface(iid); },
  getPrompt(parent, iid) { return prompt.QueryInterface(iid); },
};
Components.manager.QueryInterface(Ci.nsIComponentRegistrar).registerFactory(
  Services.uuid.generateUUID(), "cps one-time PIN prompter", "@mozilla.org/prompter;1", factory);
const modules = Cc["@mozilla.org/security/pkcs11moduledb;1"].getService(Ci.nsIPKCS11ModuleDB);
return (async () => {          // listModules() is a promise in Firefox ESR 153
  try { await modules.addModule(moduleName, modulePath, 0, 0); }
  catch (e) { throw new Error("the PKCS#11 module " + modulePath + " did not load: " + e); }
  const tokens = [];
  for (const mod of await modules.listModules()) {
    if (mod.name !== moduleName) continue;
    for (const slot of mod.slots) if (slot.tokenName) tokens.push(slot.tokenName);
  }
  return tokens;
})();
"""

_PROMPTS = r"""
const win = Services.wm.getMostRecentWindow("navigator:browser");
return win && win.__cpsPin ? win.__cpsPin.prompts : null;
"""

_LOGGED_IN = r"""
const [moduleName] = arguments;
const modules = Cc["@mozilla.org/security/pkcs11moduledb;1"].getService(Ci.nsIPKCS11ModuleDB);
return (async () => {
  const out = {};
  for (const mod of await modules.listModules()) {
    if (mod.name !== moduleName) continue;
    for (const slot of mod.slots) {
      if (!slot.tokenName) continue;
      const token = await slot.getToken();
      out[slot.tokenName] = Boolean(typeof token.isLoggedIn === "function"
                                    ? await token.isLoggedIn() : token.isLoggedIn);
    }
  }
  return out;
})();
"""


class _Marionette:
    """The Marionette protocol: ``length:json`` frames, ``[0, id, name, params]``
    commands, ``[1, id, error, result]`` answers."""

    def __init__(self, port: int, timeout: float) -> None:
        self._socket = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self._buffer = b""
        self._id = 0
        self.hello = self._receive(timeout)

    def _receive(self, timeout: float) -> Any:
        self._socket.settimeout(timeout)
        while b":" not in self._buffer:
            self._read()
        size, _, rest = self._buffer.partition(b":")
        length = int(size)
        self._buffer = rest
        while len(self._buffer) < length:
            self._read()
        frame, self._buffer = self._buffer[:length], self._buffer[length:]
        return json.loads(frame)

    def _read(self) -> None:
        data = self._socket.recv(1 << 16)
        if not data:
            raise ConnectionError("Marionette closed the connection")
        self._buffer += data

    def command(self, name: str, params: Optional[Mapping[str, Any]] = None,
                timeout: float = 30.0) -> Any:
        """Send ``name`` and return its result.

        :raises FirefoxError: Marionette answered an error (its ``error`` and
            ``message``: never the parameters, which may hold the PIN).
        :raises TimeoutError: no answer in ``timeout`` seconds.
        """
        self._id += 1
        message = json.dumps([0, self._id, name, dict(params or {})]).encode()
        self._socket.sendall(str(len(message)).encode() + b":" + message)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{name}: no answer in {timeout:g} s")
            try:
                answer = self._receive(left)
            except socket.timeout:
                raise TimeoutError(f"{name}: no answer in {timeout:g} s") from None
            if answer[0] == 1 and answer[1] == self._id:
                if answer[2]:
                    error = answer[2]
                    raise _CommandError(name, str(error.get("error", "")),
                                        str(error.get("message", "")))
                return answer[3]

    def close(self) -> None:
        self._socket.close()


class _CommandError(FirefoxError):
    def __init__(self, command: str, error: str, message: str) -> None:
        super().__init__(f"{command}: {error}: {message}")
        self.command = command
        self.error = error
        self.message = message


class HeadlessFirefox:
    """Firefox ESR headless with a PKCS#11 module and a one-time PIN answer.

    :param module: path of the PKCS#11 module (``opensc-pkcs11.so``, ``libsofthsm2.so``...).
    :param trust: CAs the server certificates chain to (trusted for TLS servers).
    :param pin: the token's PIN, given at most once, to the first prompt for
        ``token_label``. Kept out of ``repr``, logs and messages.
    :param token_label: answer only prompts naming this token (NSS names the
        token in the prompt's text); ``None``: the first PIN prompt of any token.
    :param env: Firefox's environment (default: this process's), e.g.
        ``SoftHsmToken.env()``; ``HOME`` is pointed into the directory and
        ``MOZ_HEADLESS`` set whatever it says.
    :param directory: where the profile and Firefox's output go (created when
        missing, kept); ``None``: a temporary directory removed at :meth:`stop`.
    :param firefox: the executable (default :func:`find_firefox`).
    :param module_name: the name the module gets in the profile.
    :param start_timeout: seconds for Firefox to start and Marionette to answer.
    """

    def __init__(self, module: str, *, trust: Sequence[x509.Certificate], pin: str,
                 token_label: Optional[str] = None, env: Optional[Mapping[str, str]] = None,
                 directory: Union[str, Path, None] = None, firefox: Optional[str] = None,
                 module_name: str = "cps-token", start_timeout: float = 60.0) -> None:
        self.module = module
        self.trust = list(trust)
        self.__pin = pin
        self.token_label = token_label
        self.env = dict(os.environ if env is None else env)
        self._own_directory = directory is None
        self.directory = Path(directory) if directory is not None else None
        self.firefox = firefox
        self.module_name = module_name
        self.start_timeout = start_timeout
        #: the token names the module's slots showed after loading
        self.tokens: list[str] = []
        #: the error of the last :meth:`get` that ended on an error page (else None)
        self.last_error: Optional[str] = None
        self._process: Optional[subprocess.Popen[bytes]] = None
        self._marionette: Optional[_Marionette] = None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return (f"HeadlessFirefox(module={self.module!r}, token_label={self.token_label!r}, "
                f"directory={str(self.directory)!r}, {state})")

    # -- paths -----------------------------------------------------------------------------
    @property
    def profile(self) -> Path:
        return self._dir / "profile"

    @property
    def output_path(self) -> Path:
        """Firefox's standard output and error."""
        return self._dir / "firefox.log"

    @property
    def _dir(self) -> Path:
        if self.directory is None:
            raise FirefoxError("not started")
        return self.directory

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def output_tail(self, size: int = 2000) -> str:
        """The end of Firefox's output ("" before it exists)."""
        try:
            return self.output_path.read_text(errors="replace")[-size:]
        except (FileNotFoundError, FirefoxError):
            return ""

    def _fail(self, message: str) -> FirefoxError:
        return FirefoxError(f"{message}\n--- Firefox output (tail) ---\n{self.output_tail()}")

    # -- life --------------------------------------------------------------------------------
    def start(self) -> HeadlessFirefox:
        """Write the profile, start Firefox, set up the CAs, the module and the prompter.

        :raises FirefoxError: Firefox missing, exited, Marionette silent after
            ``start_timeout``, or the set-up script failed.
        """
        if self._process is not None:
            raise FirefoxError("already started")
        executable = find_firefox(self.firefox)
        if self.directory is None:
            self.directory = Path(tempfile.mkdtemp(prefix="cps-firefox-"))
        try:
            self._launch(executable)
            self._set_up()
        except BaseException:
            self.stop()
            raise
        return self

    def _launch(self, executable: str) -> None:
        profile = self.profile
        profile.mkdir(parents=True, exist_ok=True)
        home = self._dir / "home"
        home.mkdir(exist_ok=True)
        (profile / "MarionetteActivePort").unlink(missing_ok=True)
        (profile / "user.js").write_text("".join(
            f"user_pref({json.dumps(name)}, {json.dumps(value)});\n"
            for name, value in _PREFS.items()))
        env = dict(self.env, HOME=str(home), MOZ_HEADLESS="1", MOZ_CRASHREPORTER_DISABLE="1")
        with self.output_path.open("ab") as out:
            self._process = subprocess.Popen(
                [executable, "--headless", "--marionette", "-remote-allow-system-access",
                 "--no-remote", "--profile", str(profile), "about:blank"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                start_new_session=True)    # its own process group: stop() ends all of it
        deadline = time.monotonic() + self.start_timeout
        port_file = profile / "MarionetteActivePort"
        while True:
            if self._process.poll() is not None:
                raise self._fail(f"Firefox exited ({self._process.returncode}) at start")
            if port_file.exists():
                text = port_file.read_text().strip()
                if text.isdigit():
                    try:
                        self._marionette = _Marionette(int(text), timeout=10)
                        break
                    except OSError:
                        pass
            if time.monotonic() >= deadline:
                raise self._fail(f"Marionette did not answer within {self.start_timeout:g} s")
            time.sleep(0.1)
        self._command("WebDriver:NewSession", {"capabilities": {"alwaysMatch": {
            "acceptInsecureCerts": False, "unhandledPromptBehavior": "dismiss"}}},
            timeout=self.start_timeout)

    def _set_up(self) -> None:
        from cryptography.hazmat.primitives.serialization import Encoding

        cas = [base64.b64encode(c.public_bytes(Encoding.DER)).decode() for c in self.trust]
        self._command("Marionette:SetContext", {"value": "chrome"})
        try:
            tokens = self._command("WebDriver:ExecuteScript", {
                "script": _SETUP,
                "args": [self.module_name, self.module, cas, self.__pin, self.token_label],
            }, timeout=self.start_timeout)["value"]
        except _CommandError as e:
            # the script's own error (a bad module path...): the message, never the arguments
            raise self._fail(f"setting up the profile failed: {e.error}: {e.message}") from None
        finally:
            self._command("Marionette:SetContext", {"value": "content"})
        self.tokens = [str(t) for t in tokens]

    def stop(self) -> None:
        """End the session and kill Firefox's process group (idempotent)."""
        marionette, self._marionette = self._marionette, None
        if marionette is not None:
            try:
                marionette.command("WebDriver:DeleteSession", timeout=5)
            except (OSError, FirefoxError, TimeoutError):
                pass
            marionette.close()
        process, self._process = self._process, None
        if process is not None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=10)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
            try:                            # children that outlived the leader
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self._own_directory and self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def __enter__(self) -> HeadlessFirefox:
        return self.start()

    def __exit__(self, exc_type: Optional[type[BaseException]],
                 exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        self.stop()

    # -- commands ----------------------------------------------------------------------------
    def _command(self, name: str, params: Optional[Mapping[str, Any]] = None,
                 timeout: float = 30.0) -> Any:
        if self._marionette is None:
            raise FirefoxError("not started")
        try:
            return self._marionette.command(name, params, timeout)
        except _CommandError:
            raise
        except (OSError, TimeoutError) as e:
            raise self._fail(f"Marionette {name}: {e}") from None

    def _chrome(self, script: str, *args: Any, timeout: float = 30.0) -> Any:
        self._command("Marionette:SetContext", {"value": "chrome"})
        try:
            return self._command("WebDriver:ExecuteScript",
                                 {"script": script, "args": list(args)}, timeout)["value"]
        finally:
            self._command("Marionette:SetContext", {"value": "content"})

    def get(self, url: str, timeout: float = 30.0) -> str:
        """Navigate to ``url`` and return the page's text (``document.body.textContent``).

        An error page (TLS failure...) is returned too, its text being Firefox's
        explanation; :attr:`last_error` then holds Marionette's message.

        :raises FirefoxError: the page did not load within ``timeout`` seconds,
            or Firefox stopped answering.
        """
        self.last_error = None
        ms = int(timeout * 1000)
        self._command("WebDriver:SetTimeouts", {"pageLoad": ms, "script": ms})
        try:
            self._command("WebDriver:Navigate", {"url": url}, timeout=timeout + 10)
        except _CommandError as e:
            if e.error == "timeout":
                raise self._fail(f"{url} did not load within {timeout:g} s") from None
            self.last_error = f"{e.error}: {e.message}"
        text = self._command("WebDriver:ExecuteScript", {
            "script": "return document.body ? document.body.textContent : "
                      "document.documentElement.textContent;", "args": []},
            timeout=timeout)["value"]
        return str(text)

    @property
    def pin_prompts(self) -> list[PinPrompt]:
        """The PIN prompts so far, in order (the PIN itself is not recorded)."""
        prompts = self._chrome(_PROMPTS) or []
        return [PinPrompt(str(p["text"]), bool(p["answered"])) for p in prompts]

    @property
    def pin_answered(self) -> bool:
        """Whether the PIN was given to a prompt (at most once, ever)."""
        return any(p.answered for p in self.pin_prompts)

    def logged_in(self) -> dict[str, bool]:
        """``{token name: logged in}`` for the module's tokens, as NSS sees them."""
        return {str(k): bool(v) for k, v in (self._chrome(_LOGGED_IN, self.module_name)
                                             or {}).items()}
