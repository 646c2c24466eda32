#!/usr/bin/env bash
# bench-verity.sh: dm-verity format throughput of image/verity against
# `veritysetup format` on the same pseudo-random file (1 GiB by default).
#
# Both tools run N times (alternating, each writing a fresh hash file, after a
# warm-up read that puts the data in the page cache); the median wall time of
# each gives the throughput in MB/s (10^6 bytes/s). The two hash files are
# compared byte for byte once. Temporary files live in a mktemp directory
# outside the repository and are removed on exit.
#
# usage: scripts/bench-verity.sh            (N=5 SIZE=1G by default)
#        N=9 SIZE=256M scripts/bench-verity.sh
set -euo pipefail

N=${N:-5}
SIZE=${SIZE:-1G}
SALT=$(printf 'cocoon bench salt' | sha256sum | cut -c1-64)
UUID=7d2c1f4e-0b9a-4e5f-8c3d-2a1b0c9d8e7f

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
command -v veritysetup >/dev/null || { echo "bench-verity: veritysetup not found (Debian: cryptsetup-bin)" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench-verity.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

(cd "$repo" && go build -o "$tmp/benchverity" ./image/verity/internal/benchverity)
head -c "$SIZE" /dev/urandom >"$tmp/data"
bytes=$(stat -c %s "$tmp/data")
cat "$tmp/data" >/dev/null # warm-up: both runs read from the page cache

now() { date +%s%N; }
root_of() { sed -n 's/^Root hash:[[:space:]]*\([0-9a-f]*\).*/\1/p' "$1"; }

ours=() theirs=()
for ((i = 0; i < N; i++)); do
	rm -f "$tmp/vs.hash" "$tmp/ours.hash"
	t0=$(now)
	veritysetup format --salt="$SALT" --uuid="$UUID" "$tmp/data" "$tmp/vs.hash" >"$tmp/vs.out"
	t1=$(now)
	"$tmp/benchverity" -salt "$SALT" -uuid "$UUID" "$tmp/data" "$tmp/ours.hash" >"$tmp/ours.out"
	t2=$(now)
	theirs+=($((t1 - t0)))
	ours+=($((t2 - t1)))
done

if [[ $(root_of "$tmp/vs.out") != $(root_of "$tmp/ours.out") ]]; then
	echo "bench-verity: root hashes differ: veritysetup $(root_of "$tmp/vs.out"), ours $(root_of "$tmp/ours.out")" >&2
	exit 1
fi
cmp "$tmp/vs.hash" "$tmp/ours.hash" || { echo "bench-verity: hash files differ" >&2; exit 1; }

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
m_ours=$(median "${ours[@]}")
m_theirs=$(median "${theirs[@]}")
echo "bench-verity: $bytes bytes, N=$N, wall ns ours: ${ours[*]}; veritysetup: ${theirs[*]}" >&2
awk -v b="$bytes" -v o="$m_ours" -v t="$m_theirs" 'BEGIN {
	mo = b / (o / 1e9) / 1e6; mt = b / (t / 1e9) / 1e6
	printf "verity: ours %.0f MB/s, veritysetup %.0f MB/s, ratio %.2fx\n", mo, mt, mo / mt
}'
