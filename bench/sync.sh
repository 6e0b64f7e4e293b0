#!/usr/bin/env bash
# bench/sync.sh: what `make bench-sync` runs. The cost of fsync before
# every acknowledgement: flashreturnd's maximum rate (loadgen --mode
# throughput, audited) with the embedded JetStream at its default fsync
# (every 2 minutes) and with --js-sync always, one after the other in the
# same run, alternating ROUNDS times so that drift in the shared machine
# shows; appends a dated section to bench/RESULTS.md.
#
# Knobs: BENCH_SYNC_EVENTS (300000), BENCH_SYNC_ROUNDS (2),
# BENCH_PARTITIONS (64), BENCH_OUT (a new temp dir).
set -euo pipefail
cd "$(dirname "$0")/.."

EVENTS=${BENCH_SYNC_EVENTS:-300000}
ROUNDS=${BENCH_SYNC_ROUNDS:-2}
PARTS=${BENCH_PARTITIONS:-64}
OUT=${BENCH_OUT:-$(mktemp -d /tmp/flashreturn-sync.XXXXXX)}
FR_PORT=14333
FR_HTTP=127.0.0.1:18333
STARTED=$(date -u '+%Y-%m-%d %H:%M UTC')
PIDS=()
# shellcheck source=bench/lib.sh
source bench/lib.sh
trap cleanup EXIT
mkdir -p "$OUT" bin
go build -o bin/loadgen ./cmd/loadgen
go build -o bin/flashreturnd ./cmd/flashreturnd

declare -A RATE
run_one() { # run_one MODE ROUND
	local name="sync-$1-$2"
	bin/flashreturnd --data-dir "$OUT/$name-data" --nats-listen 127.0.0.1:$FR_PORT --http $FR_HTTP --partitions "$PARTS" \
		--js-sync "$1" >"$OUT/$name.log" 2>&1 &
	local pid=$!
	PIDS+=("$pid")
	wait_http "http://$FR_HTTP/readyz" 60
	local ok=pass
	bin/loadgen --nats-url nats://127.0.0.1:$FR_PORT --mode throughput --expect decisions --events "$EVENTS" --rate 0 \
		--progress never --json "$OUT/$name.json" >"$OUT/$name.txt" || ok=FAIL
	stop_pid "$pid"
	rm -rf "$OUT/$name-data"
	RATE[$1-$2]=$(json_num "$OUT/$name.json" processed_per_sec || true)
	log "$name: ${RATE[$1-$2]:-?} events/s (audit $ok)"
	[ "$ok" = pass ]
}
for r in $(seq 1 "$ROUNDS"); do
	run_one default "$r"
	run_one always "$r"
done

{
	echo
	echo "## $STARTED: fsync before every acknowledgement (\`make bench-sync\`)"
	echo
	echo "Machine: $(machine_line); embedded nats-server. Command: \`BENCH_SYNC_EVENTS=$EVENTS BENCH_SYNC_ROUNDS=$ROUNDS bash bench/sync.sh\`:"
	echo "\`bin/flashreturnd --partitions $PARTS --js-sync default|always\` + \`bin/loadgen --mode throughput --expect decisions --events $EVENTS --rate 0\` (audited), alternating."
	echo
	echo "| round | default fsync (every 2 min), events/s | \`--js-sync always\`, events/s | always / default |"
	echo "| --- | --- | --- | --- |"
	for r in $(seq 1 "$ROUNDS"); do
		echo "| $r | $(fmt "${RATE[default-$r]:-}") | $(fmt "${RATE[always-$r]:-}") | $(ratio "${RATE[always-$r]:-}" "${RATE[default-$r]:-}") |"
	done
	echo
	echo "Raw reports: \`$OUT\`."
} >>bench/RESULTS.md
log "appended to bench/RESULTS.md"
