#!/usr/bin/env bash
# The test command (npm test): static checks, then every test tier, then one closing line
# "N passed, N failed" computed from the runners' JSON reports. Exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p test-results
status=0

echo "== typecheck"
npx tsc -p tsconfig.json && npx tsc -p electron/tsconfig.json || status=1
echo "== lint"
npx eslint . || status=1
echo "== format"
npx prettier --check . >/dev/null || { echo "prettier: files need formatting (npm run format)"; npx prettier --list-different . ; status=1; }

echo "== build: dist/node, the compiled JavaScript bin/station.mjs and bin/registry.mjs run (npm run build)"
# Every test that starts bin/station.mjs or bin/registry.mjs runs this fresh output (bin/runtime.mjs), never the
# sources through tsx: a failed build fails those tests instead of passing on the sources.
npm run --silent build || status=1
export LINE_STATION_RUNTIME=dist

echo "== dependencies: package-lock.json in sync with package.json (npm run deps:check)"
bash scripts/deps-check.sh || status=1

echo "== PostgreSQL for the registry tests"
if url=$(bash scripts/pg-test.sh); then
  export LINE_STATION_TEST_PG_URL="$url"
  echo "registry tests run against SQLite and $url"
elif [ -n "${CI:-}" ]; then
  echo "PostgreSQL could not be started: required in CI"; status=1
else
  echo "PostgreSQL not available: the registry's PostgreSQL runs are skipped (run scripts/setup.sh)"
fi

echo "== renderer: typecheck and build (renderer/dist, used by the end-to-end tests in test/e2e)"
npm run --silent renderer:build >test-results/renderer-build.log 2>&1 || { cat test-results/renderer-build.log; status=1; }

echo "== unit and integration tests (vitest)"
npx vitest run --reporter=default --reporter=json --outputFile.json=test-results/vitest.json
[ $? -eq 0 ] || status=1

node scripts/summarise-results.mjs test-results/vitest.json $status
