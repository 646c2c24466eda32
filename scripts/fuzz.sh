#!/usr/bin/env bash
# Runs every Go fuzz target of the repository for the given time each
# (default 30s). Seed corpora live in the tests (f.Add) and testdata/fuzz.
set -euo pipefail
cd "$(dirname "$0")/.."
t="${1:-30s}"
go list -f '{{.Dir}} {{.ImportPath}}' ./... | while read -r dir pkg; do
  for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    echo "== $pkg $f ($t)"
    go test -run '^$' -fuzz "^${f}\$" -fuzztime "$t" -fuzzminimizetime 2s "$pkg" 2>&1 | tail -n 3
  done
done
