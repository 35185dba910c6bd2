# shellcheck shell=bash
# TAP helpers for namespace tests, sourced. Each check prints one line that
# tests/run.sh counts: "ok N - name", "not ok N - name", "ok N - name # SKIP why";
# details go out as "# " comment lines. tap_done prints the plan "1..N" and
# exits non-zero if anything failed.
#
#   . tests/netns/lib.sh
#   tap_check "server answers ping" lab_exec a ping -c1 -W2 198.18.0.10
#   tap_done

[[ -n ${_TAP_SOURCED:-} ]] && return 0
_TAP_SOURCED=1
TAP_N=0
TAP_FAILED=0
TAP_RC=0

# tap_diag TEXT...: a comment line per line of TEXT.
tap_diag() {
	local line
	while IFS= read -r line; do echo "# $line"; done <<<"$*"
}

tap_ok() {
	TAP_N=$((TAP_N + 1))
	echo "ok $TAP_N - $1"
}

# tap_fail NAME [DETAIL]: a failure; DETAIL (may be several lines) follows as
# comments.
tap_fail() {
	TAP_N=$((TAP_N + 1))
	TAP_FAILED=$((TAP_FAILED + 1))
	echo "not ok $TAP_N - $1"
	[[ -z ${2:-} ]] || tap_diag "$2"
}

tap_skip() {
	TAP_N=$((TAP_N + 1))
	echo "ok $TAP_N - $1 # SKIP ${2:-}"
}

# tap_check NAME CMD...: ok if CMD succeeds; else not ok with the tail of its
# output. Always returns 0 (a failed check must not stop a `set -e` test);
# TAP_RC holds CMD's status for a test that wants to react.
tap_check() {
	local name=$1 out rc=0
	shift
	out=$("$@" 2>&1) || rc=$?
	if ((rc == 0)); then
		tap_ok "$name"
	else
		tap_fail "$name" "$(printf 'exit %d: %s\n' "$rc" "$*"; tail -n 15 <<<"$out")"
	fi
	TAP_RC=$rc
}

# tap_is NAME GOT WANT: ok if the two strings are equal (TAP_RC 0 or 1).
tap_is() {
	TAP_RC=0
	[[ $2 == "$3" ]] || TAP_RC=1
	if ((TAP_RC == 0)); then tap_ok "$1"; else tap_fail "$1" "got:  $2"$'\n'"want: $3"; fi
}

# tap_skip_all WHY: the whole program cannot run here (no root, a tool
# missing): one skipped test, a plan, success.
tap_skip_all() {
	tap_skip "${0##*/}" "$1"
	echo "1..$TAP_N"
	exit 0
}

# tap_needs [TOOL...]: skip the whole test unless it runs as root, each TOOL
# is installed (on PATH or in /usr/sbin) and natagent and natctl are built;
# sets natagent and natctl (NATAGENT and NATCTL override where they are).
# The test sets top (the checkout) first.
tap_needs() {
	local t
	[[ $(id -u) == 0 ]] || tap_skip_all "needs root"
	for t in "$@"; do
		command -v "$t" >/dev/null || [[ -x /usr/sbin/$t ]] || tap_skip_all "$t not installed"
	done
	natagent=${NATAGENT:-$top/natagent}
	natctl=${NATCTL:-$top/natctl}
	for t in "$natagent" "$natctl"; do [[ -x $t ]] || tap_skip_all "$t not built"; done
}

# tap_done: the plan, then exit 1 if any check failed.
tap_done() {
	echo "1..$TAP_N"
	((TAP_FAILED == 0)) || { echo "# $TAP_FAILED of $TAP_N failed"; exit 1; }
	exit 0
}

# tap_bail WHY: the rest cannot run (the lab could not be built): TAP's
# "Bail out!", the plan so far, failure.
tap_bail() {
	tap_fail "${0##*/}: $1"
	echo "Bail out! $1"
	echo "1..$TAP_N"
	exit 1
}
