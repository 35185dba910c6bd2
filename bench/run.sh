#!/usr/bin/env bash
# Runs every benchmark (bench/*.sh). Each prints its figures as ratios against
# a peer measured in the same run: these machines are shared and noisy.
set -uo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}
shopt -s nullglob
benches=(bench/*.sh)
if [ ${#benches[@]} -eq 0 ]; then
	echo "bench: no benchmarks in this build yet"
	exit 0
fi
rc=0
for b in "${benches[@]}"; do
	echo "=== ${b##*/}"
	B=$B "$b" || rc=1
done
exit $rc
