#!/usr/bin/env bash
# npm run demo [-- --boards N --exit-when-done --data-dir DIR]
# Installs what is missing, then runs a demo line: the board simulator on pseudo-terminals,
# a SoftHSM2 token with the station CA, and the station provisioning every board it sees.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec npx tsx scripts/demo.ts "$@"
