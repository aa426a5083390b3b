#!/bin/sh
# Replay every fuzz target's corpus, then fuzz each for SECONDS seconds.
# usage: scripts/fuzz.sh BUILD_DIR SECONDS   (FUZZ_SEED=N: a fixed seed, so a
# run can be repeated; make test uses one so that CI is reproducible)
# New inputs that found new coverage go to a scratch dir, not the committed
# corpus; a crash stops the run with libFuzzer's report and the input file.
set -eu
BUILD=$1
SECS=$2
HERE=$(cd "$(dirname "$0")/.." && pwd)
total=0
for bin in "$BUILD"/fuzz/fuzz-*; do
	[ -x "$bin" ] || continue
	name=$(basename "$bin" | sed 's/^fuzz-//')
	corpus="$HERE/fuzz/corpus/$name"
	mkdir -p "$corpus"
	scratch=$(mktemp -d)
	echo "fuzz: $name: replaying $(ls "$corpus" | wc -l) corpus inputs, then fuzzing ${SECS}s"
	"$bin" -runs=0 "$corpus" >"$scratch/replay.log" 2>&1 || { cat "$scratch/replay.log"; exit 1; }
	if ! "$bin" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 ${FUZZ_SEED:+-seed=$FUZZ_SEED} \
		-artifact_prefix="$HERE/fuzz/" "$scratch" "$corpus" >"$scratch/fuzz.log" 2>&1; then
		tail -50 "$scratch/fuzz.log"
		echo "fuzz: $name: FAILED (input saved under fuzz/)" >&2
		exit 1
	fi
	execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$scratch/fuzz.log" | grep -o '[0-9]*$' || true)
	[ -n "$execs" ] || execs=$(grep -Eo '^#[0-9]+' "$scratch/fuzz.log" | tail -1 | tr -d '#')
	echo "fuzz: $name: ok, ${execs:-?} executions"
	total=$((total + 1))
	rm -rf "$scratch"
done
echo "fuzz: $total targets passed"
