#!/usr/bin/env bash
# Runs each libFuzzer harness for a bounded time, starting from its seed corpus
# in tests/fuzz/corpus/<name>/ when there is one. New inputs go to a scratch
# corpus, so the checked-in seeds stay as they are.
set -uo pipefail
seconds=$1; shift
failed=0
for bin in "$@"; do
	name=${bin##*/}
	work=$(mktemp -d)
	seeds=tests/fuzz/corpus/$name
	echo "fuzz: $name for ${seconds}s"
	if ! "$bin" -max_total_time="$seconds" -print_final_stats=1 -artifact_prefix="$work/" \
		"$work" $( [ -d "$seeds" ] && echo "$seeds") > "$work/log" 2>&1; then
		failed=1
		echo "fuzz: $name FAILED; crash input and log kept in $work"
		tail -n 40 "$work/log"
		continue
	fi
	grep -E 'stat::number_of_executed_units|stat::peak_rss_mb' "$work/log" | sed "s/^/fuzz: $name: /"
	rm -rf "$work"
done
exit $failed
