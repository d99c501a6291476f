#!/usr/bin/env bash
# Runs each concurrency scenario (1 and 3 racing operators; 20 workers/10 builds and 10 workers/1 build)
# ROUNDS times in a row against one control plane and prints the pass count per scenario.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
rounds="${1:-100}"
report="$(mktemp)"
BUILDFARM_TEST_ROUNDS="$rounds" .venv/bin/pytest -q -p no:cacheprovider --timeout=600 \
  tests/integration/operator/test_concurrent_assignment.py -rA >"$report" 2>&1
status=$?
echo "scenario: passed/$rounds"
grep -E '^(PASSED|FAILED|ERROR) ' "$report" \
  | sed -E 's/^(PASSED|FAILED|ERROR) .*\[([^]]*)-round[0-9]+\].*/\1 \2/' \
  | sort | uniq -c \
  | awk '{ key=$3; if ($2 == "PASSED") pass[key]+=$1; else fail[key]+=$1; keys[key]=1 }
         END { for (k in keys) printf "  %-40s %d/%d\n", k, pass[k], pass[k]+fail[k] }'
tail -n 1 "$report"
exit $status
