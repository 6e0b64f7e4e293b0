#!/usr/bin/env bash
# bench/run.sh: what `make bench` runs. Within about 15 minutes on a
# 2-core machine it measures, in one run:
#   1. the Go microbenchmarks (core, codec, state);
#   2. the no-op relay ceiling (bench/relay) for each inbound layout;
#   3. flashreturnd's maximum sustainable rate, measured the same way
#      (loadgen --mode throughput over BENCH_EVENTS events), and its ratio
#      to the relay; the same at P=8, and the ratio P/8;
#   4. loadgen double11 with its peak at 80% of flashreturnd's maximum,
#      with P=BENCH_PARTITIONS and with P=8, and a steady run at 50% of
#      the maximum and one at 10% (the floor, nothing queued) (p99
#      request-to-decision, the daemon's stage
#      histograms, loadgen's own send lag, backlog drained, audit), and
#      the same loads (P=BENCH_PARTITIONS) through the no-op relay, whose
#      echo latency is the daemon's same-run baseline;
#   5. a faulted run: loadgen spawns flashreturnd and runs double11 at a
#      fixed moderate rate while killing it with SIGKILL three times and
#      restarting it on the same data dir (audit, thresholds, the decision
#      gap of each fault);
# and appends a dated section with machine, commands and figures to
# bench/RESULTS.md. Raw reports (JSON, HTML, logs) stay in $BENCH_OUT.
#
# Knobs (environment): BENCH_EVENTS (1000000), BENCH_PARTITIONS (64),
# BENCH_RELAY_LAYOUTS ("streams shared"), BENCH_D11_DURATION (60s),
# BENCH_FAULT_PEAK (3000 events/s), BENCH_FAULT_DURATION (40s),
# BENCH_FAULTS (kill9@8s,start@9s,kill9@18s,start@19s,kill9@28s,start@29s),
# BENCH_SKIP_MICRO=1, BENCH_SKIP_DAEMON=1, BENCH_SKIP_FAULTS=1,
# BENCH_SKIP_EXTRA=1 (no P=8, 50% and 10% runs), BENCH_OUT
# (a new temp dir).
set -euo pipefail
cd "$(dirname "$0")/.."

EVENTS=${BENCH_EVENTS:-1000000}
PARTS=${BENCH_PARTITIONS:-64}
LAYOUTS=${BENCH_RELAY_LAYOUTS:-"streams shared"}
D11_DURATION=${BENCH_D11_DURATION:-60s}
FAULT_PEAK=${BENCH_FAULT_PEAK:-3000}
FAULT_DURATION=${BENCH_FAULT_DURATION:-40s}
FAULTS=${BENCH_FAULTS:-kill9@8s,start@9s,kill9@18s,start@19s,kill9@28s,start@29s}
OUT=${BENCH_OUT:-$(mktemp -d /tmp/flashreturn-bench.XXXXXX)}
mkdir -p "$OUT" bin
RELAY_PORT=14322
FR_PORT=14323
FR_HTTP=127.0.0.1:18323
STARTED=$(date -u '+%Y-%m-%d %H:%M UTC')
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
T0=$(date +%s)
PIDS=()

# shellcheck source=bench/lib.sh
source bench/lib.sh
trap cleanup EXIT

log "building (output in $OUT)"
go build -o bin/loadgen ./cmd/loadgen
go build -o bin/relay ./bench/relay
HAVE_DAEMON=1
if [ "${BENCH_SKIP_DAEMON:-0}" = 1 ]; then
	HAVE_DAEMON=0
elif ! go build -o bin/flashreturnd ./cmd/flashreturnd 2>"$OUT/build-flashreturnd.log"; then
	log "flashreturnd does not build (see $OUT/build-flashreturnd.log): skipping its measurements"
	HAVE_DAEMON=0
fi

# 1. microbenchmarks
MICRO_CMD="go test -run '^\$' -bench . -benchmem ./internal/... ./state/..."
if [ "${BENCH_SKIP_MICRO:-0}" != 1 ]; then
	log "microbenchmarks"
	go test -run '^$' -bench . -benchmem ./internal/... ./state/... >"$OUT/micro.txt" 2>&1 || log "microbenchmarks failed (see $OUT/micro.txt)"
else
	echo "(skipped)" >"$OUT/micro.txt"
fi

# 2. relay ceiling per layout
declare -A RELAY
for layout in $LAYOUTS; do
	log "relay $layout P=$PARTS: $EVENTS events"
	bin/relay --listen 127.0.0.1:$RELAY_PORT --data-dir "$OUT/relay-$layout-data" --layout "$layout" --partitions "$PARTS" \
		>"$OUT/relay-$layout.log" 2>&1 &
	pid=$!
	PIDS+=("$pid")
	wait_for "$OUT/relay-$layout.log" "relay ready" 60
	bin/loadgen --nats-url nats://127.0.0.1:$RELAY_PORT --mode throughput --expect outputs --events "$EVENTS" --rate 0 \
		--progress never --json "$OUT/relay-$layout.json" >"$OUT/relay-$layout.txt" || log "relay $layout: loadgen reported a failure"
	stop_pid "$pid"
	rm -rf "$OUT/relay-$layout-data"
	RELAY[$layout]=$(json_num "$OUT/relay-$layout.json" processed_per_sec)
	log "relay $layout: ${RELAY[$layout]} events/s"
done

# 3. flashreturnd maximum, measured like the relay
FR_MAX="" FR_MAX_OK="" D11=""
declare -A RUN_OK RUN_CMD
start_daemon() { # start_daemon NAME [PARTITIONS]
	bin/flashreturnd --data-dir "$OUT/$1-data" --nats-listen 127.0.0.1:$FR_PORT --http $FR_HTTP --partitions "${2:-$PARTS}" \
		>"$OUT/$1.log" 2>&1 &
	DAEMON_PID=$!
	PIDS+=("$DAEMON_PID")
	if command -v curl >/dev/null; then
		wait_http "http://$FR_HTTP/readyz" 60
	fi # else loadgen itself waits up to 30s for the streams
}
max_run() { # max_run NAME PARTITIONS: the throughput-mode maximum; sets MAX_RATE and MAX_OK
	log "flashreturnd P=$2: $EVENTS events"
	start_daemon "$1" "$2"
	if bin/loadgen --nats-url nats://127.0.0.1:$FR_PORT --mode throughput --expect decisions --events "$EVENTS" --rate 0 \
		--progress never --json "$OUT/$1.json" >"$OUT/$1.txt"; then MAX_OK=pass; else MAX_OK=FAIL; fi
	stop_pid "$DAEMON_PID"
	rm -rf "$OUT/$1-data"
	MAX_RATE=$(json_num "$OUT/$1.json" processed_per_sec || true)
	log "flashreturnd P=$2: ${MAX_RATE:-?} events/s (audit $MAX_OK)"
}
if [ "$HAVE_DAEMON" = 1 ]; then
	max_run flashreturnd-max "$PARTS"
	FR_MAX=$MAX_RATE FR_MAX_OK=$MAX_OK
	# The same at P=8: P is the unit of scale-out and must not cost the
	# rate (issue 15: P=64 within 5% of P=8).
	FR_MAX8="" FR_MAX8_OK=""
	if [ "$PARTS" != 8 ] && [ "${BENCH_SKIP_EXTRA:-0}" != 1 ]; then
		max_run flashreturnd-max8 8
		FR_MAX8=$MAX_RATE FR_MAX8_OK=$MAX_OK
	fi

	# 4. double11 at 80% of the maximum with P and with P=8, and a steady
	# run at 50% of the maximum: each against a fresh daemon, with the
	# daemon's own stage histograms scraped at the end (fresh daemon, so
	# the scrape covers that run only).
	if [ -n "$FR_MAX" ] && [ "${FR_MAX%.*}" -gt 0 ] 2>/dev/null; then
		PEAK=$(awk -v m="$FR_MAX" 'BEGIN{printf "%d", m*0.8}')
		BASE=$(awk -v p="$PEAK" 'BEGIN{printf "%d", p/8}')
		HALF=$(awk -v m="$FR_MAX" 'BEGIN{printf "%d", m*0.5}')
		load_run() { # load_run NAME PARTITIONS LOADGEN-ARGS...: sets RUN_OK[NAME], RUN_CMD[NAME]
			local name=$1 parts=$2
			shift 2
			log "$name (P=$parts): $*"
			start_daemon "flashreturnd-$name" "$parts"
			RUN_CMD[$name]="bin/loadgen --nats-url nats://127.0.0.1:$FR_PORT $* --json $OUT/$name.json --html $OUT/$name.html"
			if ${RUN_CMD[$name]} --progress never >"$OUT/$name.txt"; then RUN_OK[$name]=pass; else RUN_OK[$name]=FAIL; fi
			curl -fsS "http://$FR_HTTP/metrics" >"$OUT/$name-metrics.txt" 2>/dev/null || true
			stop_pid "$DAEMON_PID"
			rm -rf "$OUT/flashreturnd-$name-data"
			log "$name: audit ${RUN_OK[$name]}"
		}
		# relay_run NAME LOADGEN-ARGS...: the same offered load through
		# the no-op relay (streams layout, P partitions), each request's
		# echo timed as its answer: what JetStream, the layout and loadgen
		# on these cores cost with no decision work, the baseline of the
		# daemon's latency in the same run. Sets RUN_OK/RUN_CMD[relay-NAME].
		relay_run() {
			local name=relay-$1
			shift
			log "$name (P=$PARTS): $*"
			bin/relay --listen 127.0.0.1:$RELAY_PORT --data-dir "$OUT/$name-data" --layout streams --partitions "$PARTS" \
				>"$OUT/$name.log" 2>&1 &
			local pid=$!
			PIDS+=("$pid")
			wait_for "$OUT/$name.log" "relay ready" 60
			RUN_CMD[$name]="bin/loadgen --nats-url nats://127.0.0.1:$RELAY_PORT --expect outputs $* --json $OUT/$name.json"
			if ${RUN_CMD[$name]} --progress never >"$OUT/$name.txt"; then RUN_OK[$name]=pass; else RUN_OK[$name]=FAIL; fi
			stop_pid "$pid"
			rm -rf "$OUT/$name-data"
			log "$name: ${RUN_OK[$name]}"
		}
		D11_ARGS=(--shape double11 --rate "$BASE" --peak "$PEAK" --duration "$D11_DURATION" --bad-fraction 0.001)
		load_run double11 "$PARTS" "${D11_ARGS[@]}"
		D11=${RUN_OK[double11]}
		D11_CMD=${RUN_CMD[double11]}
		relay_run double11 "${D11_ARGS[@]}"
		if [ "${BENCH_SKIP_EXTRA:-0}" != 1 ]; then
			[ "$PARTS" != 8 ] && load_run double11-p8 8 "${D11_ARGS[@]}"
			load_run steady-half "$PARTS" --shape steady --rate "$HALF" --duration 30s --bad-fraction 0.001
			relay_run steady-half --shape steady --rate "$HALF" --duration 30s --bad-fraction 0.001
			# The floor: what an answer costs when nothing queues.
			TENTH=$(awk -v m="$FR_MAX" 'BEGIN{printf "%d", m*0.1}')
			load_run steady-tenth "$PARTS" --shape steady --rate "$TENTH" --duration 30s --bad-fraction 0.001
			relay_run steady-tenth --shape steady --rate "$TENTH" --duration 30s --bad-fraction 0.001
		fi
	fi
fi

# 5. faulted run: loadgen runs the daemon itself (--spawn) and kills it
FAULTED="" FAULTED_CMD=""
if [ "$HAVE_DAEMON" = 1 ] && [ "${BENCH_SKIP_FAULTS:-0}" != 1 ]; then
	FBASE=$((FAULT_PEAK / 4))
	log "faulted double11: base $FBASE/s, peak $FAULT_PEAK/s for $FAULT_DURATION, faults $FAULTS"
	FAULTED_ARGS=(bin/loadgen --spawn "bin/flashreturnd --data-dir $OUT/faulted-data --nats-listen 127.0.0.1:$FR_PORT --http $FR_HTTP --partitions $PARTS"
		--spawn-log-dir "$OUT" --nats-url "nats://127.0.0.1:$FR_PORT" --shape double11 --rate "$FBASE" --peak "$FAULT_PEAK"
		--duration "$FAULT_DURATION" --faults "$FAULTS" --threshold 'decided==100%' --threshold 'dlq_unexpected==0'
		--threshold 'gap<10s' --json "$OUT/faulted.json" --html "$OUT/faulted.html")
	FAULTED_CMD=$(quote_cmd "${FAULTED_ARGS[@]}")
	rc=0
	"${FAULTED_ARGS[@]}" --progress never >"$OUT/faulted.txt" 2>"$OUT/faulted.err" || rc=$?
	case $rc in
	0) FAULTED="pass (exit 0: audit passed, thresholds met)" ;;
	1) FAULTED="FAIL (exit 1: audit failed)" ;;
	4) FAULTED="FAIL (exit 4: audit passed, a threshold broken)" ;;
	*) FAULTED="FAIL (exit $rc: the run could not be carried out, see $OUT/faulted.err)" ;;
	esac
	rm -rf "$OUT/faulted-data"
	log "faulted: $FAULTED"
fi

# 6. RESULTS.md
{
	echo
	echo "## $STARTED: make bench"
	echo
	echo "Machine: $(machine_line); nats-server embedded (go.mod). Everything (server, target, loadgen) shares the machine."
	echo "Settings: BENCH_EVENTS=$EVENTS BENCH_PARTITIONS=$PARTS BENCH_RELAY_LAYOUTS=\"$LAYOUTS\" BENCH_D11_DURATION=$D11_DURATION BENCH_SKIP_MICRO=${BENCH_SKIP_MICRO:-0} BENCH_SKIP_DAEMON=${BENCH_SKIP_DAEMON:-0}."
	echo "Load average (1/5/15 min) at start: $LOAD_BEFORE; at end: $(cut -d' ' -f1-3 /proc/loadavg). A load well above the CPU count at the start means other work shared the machine and the figures are low."
	echo "Raw reports: \`$OUT\` (not kept). Wall time: $(($(date +%s) - T0)) s."
	echo
	echo "| measurement | P | events | sustained events/s | notes |"
	echo "| --- | --- | --- | --- | --- |"
	for layout in $LAYOUTS; do
		echo "| relay, layout \`$layout\` | $PARTS | $EVENTS | $(fmt "${RELAY[$layout]:-}") | \`bin/relay --layout $layout --partitions $PARTS\` + \`bin/loadgen --mode throughput --expect outputs --events $EVENTS --rate 0\` |"
	done
	if [ "$HAVE_DAEMON" = 1 ]; then
		echo "| flashreturnd | $PARTS | $EVENTS | $(fmt "$FR_MAX") | \`bin/flashreturnd --partitions $PARTS\` + \`bin/loadgen --mode throughput --expect decisions --events $EVENTS --rate 0\`; audit $FR_MAX_OK |"
		[ -n "$FR_MAX8" ] && echo "| flashreturnd | 8 | $EVENTS | $(fmt "$FR_MAX8") | \`bin/flashreturnd --partitions 8\` + the same loadgen; audit $FR_MAX8_OK |"
	else
		echo "| flashreturnd | | | n/a | not measured (does not build or BENCH_SKIP_DAEMON=1) |"
	fi
	echo
	for layout in $LAYOUTS; do
		echo "- ratio flashreturnd / relay \`$layout\`: $(ratio "$FR_MAX" "${RELAY[$layout]:-}") (goal >= 0.85)"
	done
	[ -n "${FR_MAX8:-}" ] && echo "- ratio flashreturnd P=$PARTS / P=8: $(ratio "$FR_MAX" "$FR_MAX8") (goal >= 0.95)"
	run_report() { # run_report NAME LABEL GOAL: the figures of one load_run
		local J="$OUT/$1.json"
		[ -n "${RUN_OK[$1]:-}" ] || return 0
		echo "- $2: \`${RUN_CMD[$1]}\`"
		[ -s "$J" ] || { echo "  - no report (see $OUT/$1.txt)"; return 0; }
		echo "  - request->decision (from scheduled send): p50 $(json_num "$J" p50_ms) ms, p90 $(json_num "$J" p90_ms) ms, p99 $(json_num "$J" p99_ms) ms ($3), p99.9 $(json_num "$J" p999_ms) ms, max $(json_num "$J" max_ms) ms over $(json_num "$J" count) requests"
		STAGES=$(stage_quantiles "$OUT/$1-metrics.txt" 2>/dev/null || true)
		[ -n "$STAGES" ] && echo "  - the daemon's stages (its histograms; events or batches counted in brackets): $STAGES"
		VIS=$(sed -n 's/^  stored in FR_OUT->seen by loadgen (decisions, n=\([0-9]*\)): \(.*\)$/\2 over \1 decisions/p' "$OUT/$1.txt" 2>/dev/null || true)
		[ -n "$VIS" ] && echo "  - stored in FR_OUT -> seen by loadgen's consumer (the ack -> visible stage): $VIS"
		ROUNDS=$(round_means "$OUT/$1-metrics.txt" 2>/dev/null || true)
		[ -n "$ROUNDS" ] && echo "  - rounds (means): $ROUNDS"
		echo "  - loadgen's own send lag (a starved load generator shows here, not in the daemon's figures): max $(json_num "$J" max_lag_ms) ms, late sends $(json_num "$J" late_sends)"
		echo "  - backlog: max $(json_num "$J" backlog_max) at $(json_num "$J" backlog_max_at_sec) s, back under 100 ms of traffic $(json_num "$J" backlog_clear_sec) s later (-1: never); drained $(json_bool "$J" drained), $(json_num "$J" drain_sec) s after the last send; publish failures $(json_num "$J" failed); audit: ${RUN_OK[$1]}"
		local R="$OUT/relay-$1.json"
		[ -n "${RUN_OK[relay-$1]:-}" ] || return 0
		if [ ! -s "$R" ]; then
			echo "  - the same load through the no-op relay: no report (see $OUT/relay-$1.txt)"
			return 0
		fi
		echo "  - the same load through the no-op relay (no decisions, no state; each request's echo timed; \`${RUN_CMD[relay-$1]}\`): p50 $(json_num "$R" p50_ms) ms, p99 $(json_num "$R" p99_ms) ms, max $(json_num "$R" max_ms) ms over $(json_num "$R" count) requests; loadgen's send lag max $(json_num "$R" max_lag_ms) ms; ${RUN_OK[relay-$1]}"
		echo "  - flashreturnd / relay, same load: p50 $(ratio "$(json_num "$J" p50_ms)" "$(json_num "$R" p50_ms)"), p99 $(ratio "$(json_num "$J" p99_ms)" "$(json_num "$R" p99_ms)")"
	}
	run_report double11 "double11 at 80% of max, P=$PARTS (base $BASE/s, peak $PEAK/s, $D11_DURATION)" "goal < 10"
	run_report double11-p8 "double11 at 80% of max, P=8 (base $BASE/s, peak $PEAK/s, $D11_DURATION)" "goal < 10"
	run_report steady-half "steady at 50% of max, P=$PARTS ($HALF events/s, 30s)" "goal < 5"
	run_report steady-tenth "steady at 10% of max, P=$PARTS (${TENTH:-} events/s, 30s): the floor" "no goal"
	if [ -n "$FAULTED" ]; then
		J="$OUT/faulted.json"
		echo "- faulted double11 (base $FBASE/s, peak $FAULT_PEAK/s, $FAULT_DURATION, faults $FAULTS), loadgen spawning the daemon: \`$FAULTED_CMD\`; $FAULTED"
		if [ -s "$J" ]; then
			echo "  - publish: errors $(json_num "$J" errors), re-sends $(json_num "$J" retries) in $(json_num "$J" recoveries) in-order recoveries, given up $(json_num "$J" failed); max send lag $(json_num "$J" max_lag_ms) ms"
			echo "  - request->decision (from scheduled send, so the outages show): p50 $(json_num "$J" p50_ms) ms, p99 $(json_num "$J" p99_ms) ms, max $(json_num "$J" max_ms) ms over $(json_num "$J" count) requests; drained $(json_bool "$J" drained)"
			echo "  - each fault and the decision gap it caused (longest time without a decision until the next kill; per partition over $PARTS partitions):"
			sed -n '/^  faults (/,/^  audit:/p' "$OUT/faulted.txt" | sed -n 's/^    \(+.*\)$/    - \1/p'
			echo "  - thresholds: $(sed -n 's/^    \(ok  \|FAIL\) \([^ ]*\) *measured \(.*\)$/\2 \1(\3)/p' "$OUT/faulted.txt" | tr -s ' ' | paste -sd ';' - | sed 's/;/; /g')"
		fi
	fi
	echo
	echo "Microbenchmarks (\`$MICRO_CMD\`):"
	echo
	echo '```'
	grep -E '^(Benchmark|ok|FAIL|---)' "$OUT/micro.txt" || cat "$OUT/micro.txt"
	echo '```'
} >>bench/RESULTS.md
log "appended to bench/RESULTS.md"
