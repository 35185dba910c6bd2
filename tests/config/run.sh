#!/usr/bin/env bash
# Golden-file tests of the config parser, as OpenBSD's regress tests do for
# bgpd -nv: good-*.conf must be accepted and print exactly good-*.ok; bad-*.conf
# must be refused (exit 1) with exactly the messages in bad-*.err.
# UPDATE=1 rewrites the expected files from the current output (review the diff).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
natagent=${NATAGENT:-$here/../../natagent}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
n=0 failed=0

result() {  # ok?, name, detail-file
	n=$((n + 1))
	if [ "$1" = 0 ]; then echo "ok $n - $2"; else
		failed=$((failed + 1)); echo "not ok $n - $2"
		[ -n "${3:-}" ] && sed 's/^/#   /' "$3"
	fi
}

# Runs natagent -n -v on a private copy (mode 0600, so no permission warning)
# from inside the work dir, so messages name the file as a user would.
check() {  # conf, expected-file, expected-status
	local conf=$1 want=$2 want_rc=$3 name rc
	name=${conf##*/}
	cp "$conf" "$work/$name"; chmod 600 "$work/$name"
	(cd "$work" && "$natagent" -n -v -c "$name") > "$work/out" 2>&1
	rc=$?
	if [ -n "${UPDATE:-}" ]; then cp "$work/out" "$want"; fi
	if [ $rc -ne "$want_rc" ]; then
		echo "exit status $rc, want $want_rc" > "$work/diff"; cat "$work/out" >> "$work/diff"
		result 1 "$name" "$work/diff"; return
	fi
	diff -u "$want" "$work/out" > "$work/diff"
	result $? "$name" "$work/diff"
}

for f in "$here"/good-*.conf; do check "$f" "${f%.conf}.ok" 0; done
for f in "$here"/bad-*.conf; do check "$f" "${f%.conf}.err" 1; done

# A normalised config parses again to the same normal form.
cp "$here/good-many.conf" "$work/again.conf"; chmod 600 "$work/again.conf"
"$natagent" -n -v -c "$work/again.conf" | sed 's/^PrivateKey = (hidden)/PrivateKey = HKgiG2EHiPtAmYgF6VgysW2imZBOcKrfKyzzIl65Izo=/' > "$work/norm.conf"
chmod 600 "$work/norm.conf"
"$natagent" -n -v -c "$work/norm.conf" > "$work/norm2" 2>&1
"$natagent" -n -v -c "$work/again.conf" | sed 's/^# Name = again$/# Name = norm/' | diff -u - "$work/norm2" > "$work/diff"
result $? "normalised output parses to itself" "$work/diff"

# A private key readable by others draws a warning, as wg does, and still loads.
cp "$here/good-tun.conf" "$work/open.conf"; chmod 644 "$work/open.conf"
out=$( (cd "$work" && "$natagent" -n -c open.conf) 2>&1); rc=$?
[ $rc -eq 0 ] && [[ $out == "open.conf: warning: readable by group or others (mode 0644) but holds a private key; chmod 600 it" ]]
result $? "world-readable private key warns" <(echo "rc=$rc out=$out")

# The file name is the interface name.
cp "$here/good-tun.conf" "$work/this-name-is-far-too-long.conf"; chmod 600 "$work"/*.conf
out=$( (cd "$work" && "$natagent" -n -c this-name-is-far-too-long.conf) 2>&1); rc=$?
[ $rc -eq 1 ] && [[ $out == *"file name must be an interface name"* ]]
result $? "over-long file name refused" <(echo "rc=$rc out=$out")

out=$("$natagent" -n -c "$work/missing.conf" 2>&1); rc=$?
[ $rc -eq 1 ] && [[ $out == "$work/missing.conf: cannot open: No such file or directory" ]]
result $? "missing file named with the reason" <(echo "rc=$rc out=$out")

echo "1..$n"
[ $failed -eq 0 ]
