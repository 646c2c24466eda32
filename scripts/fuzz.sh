#!/usr/bin/env bash
# Runs every Go fuzz target of the repository for the given time each
# (default 30s). Seed corpora live in the tests (f.Add) and testdata/fuzz.
# A failing target prints its whole output (the failing input is written to
# the package's testdata/fuzz/ by go test); the script fails at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
t="${1:-30s}"
failed=()
while read -r dir pkg; do
  for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    echo "== $pkg $f ($t)"
    run() { go test -run '^$' -fuzz "^${f}\$" -fuzztime "$t" -fuzzminimizetime 2s "$pkg" 2>&1; }
    ok=0
    out=$(run) && ok=1
    # Go's fuzzing coordinator (before Go 1.27) can end a run with a bare
    # "context deadline exceeded" and no failing input when -fuzztime
    # expires under CPU contention (golang/go#75804). A real failure
    # always writes "Failing input written to"; retry the other kind once.
    if [ "$ok" = 0 ] && ! grep -q 'Failing input written to' <<<"$out" && grep -q 'context deadline exceeded' <<<"$out"; then
      echo "   (fuzzing deadline hit mid-input, no failing input: retrying once)"
      out=$(run) && ok=1
    fi
    if [ "$ok" = 1 ]; then
      printf '%s\n' "$out" | tail -n 1
    else
      printf '%s\n' "$out" | tail -n 40
      failed+=("$pkg $f")
    fi
  done
done < <(go list -f '{{.Dir}} {{.ImportPath}}' ./...)
if [ "${#failed[@]}" -gt 0 ]; then
  printf 'fuzz: FAILED: %s\n' "${failed[@]}"
  exit 1
fi
