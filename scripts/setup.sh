#!/usr/bin/env bash
# Idempotent set-up shared by `make demo`, `make test` and `make bench`.
# On a brand-new Debian 12 machine (as root) it installs the system packages,
# creates .venv, installs the project editable with its extras (card, redis,
# test, bench) and starts pcscd. When everything is in place it does nothing and
# returns in well under a second, so it can run before every command.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the project needs at run and test time:
#   pcscd + vsmartcard-vpcd   the PC/SC daemon and the virtual reader the emulator plugs into
#   libpcsclite-dev + swig    to build pyscard
#   softhsm2                  a PKCS#11 software token
#   opensc                    a real peer middleware (opensc-tool, pkcs15-tool, pkcs11-tool)
#   redis-server              the shared nonce store used by the auth tests
#   slapd                     an LDAP directory like IGC-Santé's (delta CRLs), for the trust tests
#   openssl                   `openssl cms -verify` in the signing tests, `openssl s_server`
#                             (a TLS peer for cps.tls)
#   xmlsec1                   an XML signature verifier we did not write (XAdES tests)
#   nginx                     a reverse proxy verifying client certificates (cps.tls tests)
#   curl + libengine-pkcs11-openssl   a TLS client we did not write, driving the card
#                             through OpenSC's PKCS#11 module (cps.tls tests)
#   firefox-esr               a headless browser doing TLS client auth through OpenSC (cps.tls tests)
#   python3-venv, gcc, python3-dev   to create the venv and build wheels
#   rpm                       rpmbuild and an RPM database: `cps doctor` reads the Cryptolib's version
#                             from a real rpmdb.sqlite (tests/test_doctor_workstation.py)
DEBS="pcscd libpcsclite-dev swig vsmartcard-vpcd softhsm2 opensc opensc-pkcs11 redis-server slapd openssl
      nginx curl libengine-pkcs11-openssl firefox-esr xmlsec1
      python3-venv python3-dev gcc make pkg-config procps rpm"

missing=""
for p in $DEBS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "setup: missing Debian packages:$missing (run as root, or install them)" >&2
        exit 1
    fi
    echo "setup: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv"
    "$PY" -m venv .venv
fi
# The project with every extra the test suite and the benchmarks use: card access
# (pyscard, python-pkcs11), the Redis nonce store, the test and bench tools. A
# plain `pip install cps-middleware` is lighter (README "Install").
EXTRAS="card,redis,tls,xml,pdf,test,bench"
# The editable install is a plain path (setuptools' "compat" mode: a .pth naming
# the checkout), not an import hook: mypy, run from anywhere against this .venv,
# then resolves `cps` and `cps_cli` like any installed package.
EDITABLE="compat"
# Reinstall only when the project metadata, the extras or the mode changed.
stamp=.venv/.cps-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] \
        || [ "$(cat "$stamp")" != "$EXTRAS $EDITABLE" ]; then
    echo "setup: installing the project into .venv (extras: $EXTRAS)"
    # (this machine's pip config prints one warning per missing mirror: hide those)
    .venv/bin/python -m pip install -q --upgrade pip 2>&1 | { grep -v "^WARNING: Location" || true; }
    .venv/bin/python -m pip install -q -e ".[$EXTRAS]" --config-settings "editable_mode=$EDITABLE" \
        2>&1 | { grep -v "^WARNING: Location" || true; }
    echo "$EXTRAS $EDITABLE" > "$stamp"
fi

# pcscd: one per machine, shared by every user of the socket. Start it when it
# is not running; never restart a daemon somebody else started -- except right
# after installing vsmartcard-vpcd, which pcscd only loads when it starts.
start_pcscd() {
    mkdir -p /run/pcscd
    # A dead daemon leaves its socket and pid file behind; pcscd would refuse them.
    rm -f /run/pcscd/pcscd.comm /run/pcscd/pcscd.pid
    pcscd
    for _ in $(seq 1 50); do [ -S /run/pcscd/pcscd.comm ] && break; sleep 0.1; done
}
if pgrep -x pcscd >/dev/null 2>&1; then
    if [[ " $missing " == *" vsmartcard-vpcd "* ]] && [ "$(id -u)" = 0 ]; then
        echo "setup: restarting pcscd to load the new vpcd driver"
        if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet pcscd 2>/dev/null; then
            systemctl restart pcscd
        else
            pkill -x pcscd || true
            for _ in $(seq 1 50); do pgrep -x pcscd >/dev/null || break; sleep 0.1; done
            start_pcscd
        fi
    fi
elif command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet pcscd.socket 2>/dev/null; then
    :  # systemd starts pcscd on the first connection (socket activation)
elif [ "$(id -u)" = 0 ]; then
    echo "setup: starting pcscd"
    start_pcscd
else
    echo "setup: pcscd is not running and we are not root; PC/SC tests will fail" >&2
fi
