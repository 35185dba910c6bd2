#!/usr/bin/env bash
# Runs every benchmark (bench/*.sh but this runner), or only those named:
#
#   bench/run.sh [BUILD_DIR [NAME...]]     e.g. bench/run.sh build rendezvous
#
# Each prints its figures as ratios against a peer measured in the same run:
# these machines are shared and noisy.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
B=${1:-build}
(($#)) && shift
shopt -s nullglob
benches=()
if (($#)); then
	for name in "$@"; do
		name=${name%.sh}
		[[ $name != run && -f bench/$name.sh ]] || { echo "bench: no benchmark bench/$name.sh"; exit 1; }
		benches+=("bench/$name.sh")
	done
else
	for b in bench/*.sh; do
		[[ $b == bench/run.sh ]] || benches+=("$b")   # not this runner: it would recurse
	done
fi
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
