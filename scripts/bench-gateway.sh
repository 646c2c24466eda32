#!/usr/bin/env bash
# The inference gateway's proxy cost (guest/gateway): the same fake
# OpenAI upstream on loopback, called directly and through the gateway
# (BenchmarkUpstreamDirect, BenchmarkUpstreamViaGateway). Prints
#   - the p50 latency the gateway adds (one client, an upstream that
#     answers at once: nothing hides the gateway's own time);
#   - the throughput ratio via/direct against a GPU-bound upstream (16
#     sequences decoding at once, 1 ms per token, 32 clients);
#   - for the record, the ratio against the instant upstream, which on a
#     small machine only says that client, gateway and upstream share CPUs.
# Direct and via runs alternate, one pair per round, and each figure is the
# median over COUNT rounds of the pair's difference or ratio, so load from
# other work on the machine hits both sides of a pair alike.
# Targets: added p50 < 0.5 ms, ratio >= 0.98.
set -euo pipefail
cd "$(dirname "$0")/.."
count="${COUNT:-5}"
benchtime="${BENCHTIME:-2000x}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go test -c -o "$tmp/gateway.test" ./guest/gateway/

# metric MODE UNIT: runs one direct/via pair of MODE, prints "direct via".
metric() {
  "$tmp/gateway.test" -test.run '^$' -test.bench "^BenchmarkUpstream(Direct|ViaGateway)\$/^$1\$" -test.benchtime "$benchtime" |
    awk -v unit="$2" '/^BenchmarkUpstream/ { for (i = 2; i <= NF; i++) if ($(i) == unit) v[$1 ~ /ViaGateway/] = $(i-1) }
      END { if (!(0 in v) || !(1 in v)) { print "bench-gateway: no " unit " result" > "/dev/stderr"; exit 1 }; print v[0], v[1] }'
}

median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

declare -A pairs
for ((i = 0; i < count; i++)); do
  for m in nonstream stream; do
    pairs[$m]+="$(metric "$m" p50-us)"$'\n'
  done
  for m in stream-gpu-parallel nonstream-parallel; do
    pairs[$m]+="$(metric "$m" req/s)"$'\n'
  done
done

ok=1
for m in nonstream stream; do
  d=$(awk 'NF { print $1 }' <<<"${pairs[$m]}" | median)
  v=$(awk 'NF { print $2 }' <<<"${pairs[$m]}" | median)
  added=$(awk 'NF { print ($2 - $1) / 1000 }' <<<"${pairs[$m]}" | median)
  printf 'gateway %-9s p50: direct %.3f ms, via gateway %.3f ms, added %.3f ms (target < 0.5)\n' "$m" "$(awk -v x="$d" 'BEGIN { print x / 1000 }')" "$(awk -v x="$v" 'BEGIN { print x / 1000 }')" "$added"
  awk -v a="$added" 'BEGIN { exit !(a < 0.5) }' || ok=0
done
for m in stream-gpu-parallel nonstream-parallel; do
  d=$(awk 'NF { print $1 }' <<<"${pairs[$m]}" | median)
  v=$(awk 'NF { print $2 }' <<<"${pairs[$m]}" | median)
  ratio=$(awk 'NF { print $2 / $1 }' <<<"${pairs[$m]}" | median)
  if [ "$m" = stream-gpu-parallel ]; then
    printf 'gateway throughput, GPU-bound upstream (streams): direct %.0f req/s, via gateway %.0f req/s, ratio %.3f (target >= 0.98)\n' "$d" "$v" "$ratio"
    awk -v r="$ratio" 'BEGIN { exit !(r >= 0.98) }' || ok=0
  else
    printf 'gateway throughput, instant upstream, CPU-bound here: direct %.0f req/s, via gateway %.0f req/s, ratio %.3f (not a target)\n' "$d" "$v" "$ratio"
  fi
done
if [ "$ok" = 1 ]; then verdict="targets met"; else verdict="TARGETS MISSED"; fi
echo "gateway bench: $verdict (medians of $count alternating rounds; $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg))"
