#!/bin/sh
# Replay each fuzz target's seed corpus, then fuzz it for SECONDS.
# usage: scripts/fuzz.sh BUILD_DIR SECONDS   (new inputs go to a temp dir,
# the committed corpus is not modified; crashes are written to fuzz/)
set -eu
BUILD=$1
SECS=${2:-10}
SRC=$(cd "$(dirname "$0")/.." && pwd)
found=0
for bin in "$BUILD"/fuzz/fuzz-*; do
	[ -x "$bin" ] || continue
	found=1
	name=$(basename "$bin")
	seeds="$SRC/fuzz/corpus/${name#fuzz-}"
	work=$(mktemp -d)
	trap 'rm -rf "$work"' EXIT
	echo "fuzz: $name: ${SECS}s from $seeds"
	[ -d "$seeds" ] || seeds=
	rc=0
	"$bin" -max_total_time="$SECS" -rss_limit_mb=4096 -artifact_prefix="$SRC/fuzz/" \
	       "$work" $seeds > "$work.log" 2>&1 || rc=$?
	tail -n 3 "$work.log"
	rm -rf "$work" "$work.log"
	if [ "$rc" != 0 ]; then
		echo "fuzz: $name failed (exit $rc); reproducer in $SRC/fuzz/" >&2
		exit 1
	fi
done
[ "$found" = 1 ] || echo "fuzz: no targets in $BUILD/fuzz"
