#!/usr/bin/env bash
# npm run deps:check — package-lock.json is in sync with package.json: every dependency package.json asks for is
# in the lock file at a version that satisfies it, so `npm ci` installs exactly what the lock file pins. Nothing is
# installed or changed (`npm ci --dry-run`); it works from the npm cache, and asks the registry only for metadata
# the cache lacks. Out of sync: exit 1 with npm's list of what differs; fix with `npm install` and commit the lock.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! out=$(npm ci --dry-run --prefer-offline --ignore-scripts --no-audit --no-fund --loglevel=error 2>&1); then
  printf '%s\n' "$out" | grep -v '^npm error *$' | grep -v 'npm help ci\|Clean install a project\|aliases:\|complete log' >&2
  echo "package-lock.json is NOT in sync with package.json: run npm install and commit package-lock.json" >&2
  exit 1
fi
echo "package-lock.json is in sync with package.json"
