#!/usr/bin/env bash
# One-time machine set-up (idempotent): Debian packages and npm dependencies.
# Used by .ci/run, `npm run demo` and documented in the README.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
for cmd in softhsm2-util:softhsm2 pkcs11-tool:opensc socat:socat openssl:openssl chromium:chromium xvfb-run:xvfb \
  swtpm:swtpm swtpm_setup:swtpm-tools tpm2_nvread:tpm2-tools sqlite3:sqlite3 python3:python3 \
  qpdf:qpdf pdftoppm:poppler-utils strace:strace; do
  command -v "${cmd%%:*}" >/dev/null 2>&1 || need+=("${cmd##*:}")
done
# qpdf and poppler-utils (pdfinfo, pdftoppm): the label PDF checked by independent readers (native/printers).
# strace: test/integration/idle-watch.test.ts counts the programs an idle `station watch` starts; the durability
# tests (test/integration/durability.test.ts, native/store/durability.test.ts) trace fsyncs and writes.
# sqlite3 and python3: the independent verifier (test/verifier/lsverify.py) and the read-only station.db commands of
# docs/formats.md "Independent verification".
# CUPS: test/integration/labels-cups.test.ts prints a label with the real `lp` (cups-client) through a private
# `cupsd` (cups-daemon) to a raw queue whose device is `socket://` (the socket backend: package cups, whose postinst
# links it into /usr/lib/cups/backend/; docs/operations.md "Label printer").
{ [ -x /usr/sbin/cupsd ] && command -v lp >/dev/null 2>&1 && [ -x /usr/lib/cups/backend/socket ]; } ||
  need+=(cups-daemon cups-client cups)
# PostgreSQL server binaries: the registry's production backend, exercised by the tests.
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
# NSS softoken (libsoftokn3.so, package libnss3): the second PKCS#11 implementation of the HSM tests (docs/hsm.md).
ls /usr/lib/*/libsoftokn3.so >/dev/null 2>&1 || ls /usr/lib/libsoftokn3.so >/dev/null 2>&1 || need+=(libnss3)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "[setup] installing Debian packages: ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
# Electron's postinstall downloads its binary: skip it where there is no internet (the app's
# engine, CLI and UI bridge do not need it). Native addons build against the local Node headers.
export ELECTRON_SKIP_BINARY_DOWNLOAD=1
if [ -d /usr/include/node ]; then export npm_config_nodedir=/usr; fi
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "[setup] installing npm packages (npm ci)"
  npm ci --no-audit --no-fund
fi
