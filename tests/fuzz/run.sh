#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# tests/fuzz/run.sh TARGET...: runs each built $FUZZ_O/fuzz-TARGET for
# $FUZZ_SECONDS over tests/fuzz/corpus/TARGET (read-only seeds) plus
# $FUZZ_O/corpus/TARGET (what the fuzzer finds; kept between runs).
# FUZZ_SECONDS=0 only replays the corpus. Any crash, leak, UB report or
# timeout fails the run; the input is saved as $FUZZ_O/crashes/TARGET-*.
# Ends with one line per target: executions, corpus size, status.
# Environment: FUZZ_O, FUZZ_SECONDS (default 20), FUZZ_JOBS (targets run at
# once, default 2), FUZZ_ARGS (more libFuzzer options).
set -uo pipefail
cd "$(dirname "$0")/../.."
: "${FUZZ_O:?FUZZ_O must be set (make fuzz sets it)}"
FUZZ_SECONDS=${FUZZ_SECONDS:-20}
FUZZ_JOBS=${FUZZ_JOBS:-2}
read -r -a extra <<<"${FUZZ_ARGS:-}"
[ $# -gt 0 ] || { echo "usage: $0 TARGET..." >&2; exit 2; }

# leaks fail the run; UB already aborts (-fno-sanitize-recover)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:suppressions=$PWD/tests/sanitize/asan.supp}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export TMPDIR=$FUZZ_O/tmp
mkdir -p "$FUZZ_O/crashes" "$FUZZ_O/log" "$TMPDIR"

run_target() { # target
	local t=$1 bin=$FUZZ_O/fuzz-$1 seeds=tests/fuzz/corpus/$1 work=$FUZZ_O/corpus/$1
	local args=(-timeout=10 -rss_limit_mb=2048 -print_final_stats=1
		-artifact_prefix="$FUZZ_O/crashes/$t-")
	mkdir -p "$work"
	if [ "$FUZZ_SECONDS" -eq 0 ]; then
		args+=(-runs=0)
	else
		args+=(-max_total_time="$FUZZ_SECONDS")
	fi
	"$bin" "${args[@]}" "${extra[@]}" "$work" "$seeds" >"$FUZZ_O/log/$t.log" 2>&1
}

summary() { # target rc
	local t=$1 rc=$2 log=$FUZZ_O/log/$1.log execs corpus status=ok
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	corpus=$(ls "$FUZZ_O/corpus/$t" 2>/dev/null | wc -l)
	if [ "$rc" -ne 0 ]; then
		status=FAILED
		echo "# fuzz-$t failed (exit $rc); the end of $log:"
		grep -E 'ERROR|SUMMARY|invariant|Test unit written|^    #[0-9]' "$log" | head -40 |
			sed 's/^/#   /'
	fi
	printf '%-12s %10s execs in %ss, corpus %s+%s inputs: %s\n' "$t" "${execs:-?}" \
		"$FUZZ_SECONDS" "$(ls tests/fuzz/corpus/$t | wc -l)" "$corpus" "$status"
}

failed=0 pids=() names=() lines=()
for t in "$@"; do
	[ -x "$FUZZ_O/fuzz-$t" ] || { echo "no $FUZZ_O/fuzz-$t: run make fuzz-build" >&2; exit 2; }
	[ -d "tests/fuzz/corpus/$t" ] || { echo "no seed corpus tests/fuzz/corpus/$t" >&2; exit 2; }
done
for t in "$@"; do
	run_target "$t" & pids+=($!) names+=("$t")
	if [ ${#pids[@]} -ge "$FUZZ_JOBS" ]; then
		wait "${pids[0]}"; rc=$?
		[ "$rc" -eq 0 ] || failed=$((failed + 1))
		lines+=("$(summary "${names[0]}" "$rc")")
		pids=("${pids[@]:1}") names=("${names[@]:1}")
	fi
done
while [ ${#pids[@]} -gt 0 ]; do
	wait "${pids[0]}"; rc=$?
	[ "$rc" -eq 0 ] || failed=$((failed + 1))
	lines+=("$(summary "${names[0]}" "$rc")")
	pids=("${pids[@]:1}") names=("${names[@]:1}")
done
printf '%s\n' "${lines[@]}"
echo "fuzz: $# targets, $failed failed"
[ "$failed" -eq 0 ]
