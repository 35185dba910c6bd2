#!/usr/bin/env bash
# Runs natagent's tests and counts them. Every test program speaks TAP
# ("ok N - name", "not ok N - name", "ok N - name # SKIP why"); this runner
# prints each result and ends with one line: "N passed, N failed".
#
#   tests/run.sh unit  BUILD   unit binaries only
#   tests/run.sh all   BUILD   unit, config golden files, bpf, namespace tests
# ONLY=regex restricts to test programs whose path matches.
set -uo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
B=${2:-build}

passed=0 failed=0 skipped=0
failures=()

run_tap() {  # name, command...
	local name=$1; shift
	if [ -n "${ONLY:-}" ] && ! [[ $name =~ $ONLY ]]; then return; fi
	echo "# --- $name"
	local out rc line
	out=$(mktemp)
	"$@" > "$out" 2>&1
	rc=$?
	local seen=0
	while IFS= read -r line; do
		case "$line" in
		"ok "*"# SKIP"*) skipped=$((skipped + 1)); seen=1; echo "  $line" ;;
		"ok "*) passed=$((passed + 1)); seen=1; echo "  $line" ;;
		"not ok "*) failed=$((failed + 1)); seen=1; failures+=("$name: ${line#not ok }"); echo "  $line" ;;
		"#"*|"1.."*) echo "  $line" ;;
		*) [ -n "${VERBOSE:-}" ] && echo "    | $line" ;;
		esac
	done < "$out"
	if [ $rc -ne 0 ] && { [ $seen -eq 0 ] || ! grep -q '^not ok' "$out"; }; then
		# A crash or an error outside any check must not pass silently.
		failed=$((failed + 1)); failures+=("$name: exited with status $rc")
		echo "  not ok - $name exited with status $rc"; tail -n 20 "$out" | sed 's/^/    | /'
	elif [ $rc -ne 0 ] && [ -z "${VERBOSE:-}" ]; then
		tail -n 30 "$out" | grep -v '^ok ' | sed 's/^/    | /'
	fi
	rm -f "$out"
}

for t in "$B"/tests/test_*; do
	[ -x "$t" ] && run_tap "unit/${t##*/}" "$t"
done

if [ "$what" = all ]; then
	run_tap config tests/config/run.sh
	for t in "$B"/bpftests/* tests/bpf/*.sh tests/netns/*.sh; do
		[ -x "$t" ] || continue
		if [ "$(id -u)" -ne 0 ]; then
			[ -n "${ONLY:-}" ] && ! [[ $t =~ $ONLY ]] && continue
			echo "# --- $t"; echo "  ok - ${t##*/} # SKIP needs root"
			skipped=$((skipped + 1)); continue
		fi
		run_tap "$t" "$t"
	done
fi

if [ ${#failures[@]} -gt 0 ]; then
	echo "# failures:"
	printf '#   %s\n' "${failures[@]}"
fi
[ $skipped -gt 0 ] && echo "# $skipped skipped"
echo "$passed passed, $failed failed"
[ $failed -eq 0 ] && [ $((passed + skipped)) -gt 0 ]
