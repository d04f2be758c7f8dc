#!/usr/bin/env bash
# npm run demo [-- --boards N --exit-when-done --data-dir DIR] [-- --ui]
# Installs what is missing, then runs a demo line: the board simulator on pseudo-terminals,
# a SoftHSM2 token with the station CA, and the station provisioning every board it sees
# (signed in as the demo operator op-1). With --ui: the browser UI instead; `station serve` prints the
# path of the 0600 file holding the URL with its access token (DIR/secrets/ui-url.html).
# Demo users: op-1 (PIN 1234), supervisor sup-1 (PIN 987654).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec npx tsx scripts/demo.ts "$@"
