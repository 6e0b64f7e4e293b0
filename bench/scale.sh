#!/usr/bin/env bash
# bench/scale.sh: what `make bench-scale` runs. It measures how flashreturnd
# scales out (issue 9) with what one machine allows:
#   - for each configuration "<NATS nodes>x<daemons>" in SCALE_CONFIGS
#     (default "1x1 1x2 3x1 3x2"), a real nats-server process per node
#     (built from the nats-server module in go.mod; 3 nodes form one
#     cluster with R3 streams), the daemons in cluster mode (--member), and
#     loadgen --mode throughput over SCALE_EVENTS events;
#   - the sustained events/s, and the CPU time each process used during
#     the run (utime+stime from /proc/<pid>/stat, loadgen's from the
#     shell's children times), divided by the events: CPU per event in
#     the daemons, in each NATS node and in loadgen;
# then appends a dated section with the commands, the table and the sizing
# inputs (cores per 10k events/s) to bench/RESULTS.md. The sizing model
# built on these figures is written by hand below the section.
#
# Every process shares this machine's cores, so the 2-daemon rate says
# little about 2 machines; the CPU per event is what carries over.
#
# Knobs (environment): SCALE_EVENTS (600000), SCALE_PARTITIONS (64),
# SCALE_CONFIGS ("1x1 1x2 3x1 3x2"), SCALE_LAYOUT (streams: per-partition
# streams fed by the servers' subject mapping; or shared), SCALE_IDLE_SECS
# (10: the idle sample before each load), SCALE_OUT (a new temp dir), and
# for a machine with cores to spare, CPU pinning (taskset lists, one word
# per process, empty: unpinned): SCALE_NATS_CPUS ("0-3 4-7 8-11" for nodes
# 1..3), SCALE_DAEMON_CPUS ("12-13 14-15 16-17 18-19" for daemons 1..4),
# SCALE_LOADGEN_CPUS ("20-23"). Pinned, each daemon's rate is its own
# cores' and the N-daemon ratio is the scale-out factor to check (goal:
# >= 3.5 at 4 daemons: SCALE_CONFIGS="3x1 3x2 3x4").
set -euo pipefail
cd "$(dirname "$0")/.."

EVENTS=${SCALE_EVENTS:-600000}
PARTS=${SCALE_PARTITIONS:-64}
CONFIGS=${SCALE_CONFIGS:-"1x1 1x2 3x1 3x2"}
LAYOUT=${SCALE_LAYOUT:-streams}
IDLE_SECS=${SCALE_IDLE_SECS:-10}
OUT=${SCALE_OUT:-$(mktemp -d /tmp/flashreturn-scale.XXXXXX)}
mkdir -p "$OUT" bin
STARTED=$(date -u '+%Y-%m-%d %H:%M UTC')
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
T0=$(date +%s)
TCK=$(getconf CLK_TCK)
PIDS=()

# shellcheck source=bench/lib.sh
source bench/lib.sh
trap cleanup EXIT

# pin LIST INDEX: the taskset prefix for process INDEX (1-based) of a
# space-separated list of CPU lists, or nothing.
pin() {
	local w
	w=$(echo "$1" | awk -v i="$2" '{print $i}')
	[ -n "$w" ] && echo "taskset -c $w"
	return 0
}

NATS_BASE=14400    # client ports 14401.., cluster 14411.., monitor 14421..
HTTP_BASE=18400    # daemon HTTP 18401..

log "building (output in $OUT)"
go build -o bin/nats-server github.com/nats-io/nats-server/v2
go build -o bin/flashreturnd ./cmd/flashreturnd
go build -o bin/loadgen ./cmd/loadgen

# ticks PID: CPU ticks (user+system) the process has used so far.
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
# child_ticks FILE: CPU ticks (user+system) of the shell's reaped children,
# from the output of the times builtin saved in FILE (times must run in
# the main shell: a command substitution's subshell has no children yet).
child_ticks() { awk -v t="$TCK" 'NR==2{ split($1,u,/[ms]/); split($2,s,/[ms]/); printf "%.0f", (u[1]*60+u[2]+s[1]*60+s[2])*t }' "$1"; }
# us TICKS: CPU microseconds per event.
us() { awk -v t="$1" -v k="$TCK" -v n="$EVENTS" 'BEGIN{printf "%.1f", t/k*1e6/n}'; }

# start_nats N DIR: start N nats-server processes (one cluster when N>1)
# with the inbound mapping, and wait until JetStream is healthy on each.
NATS_PIDS=() NATS_URLS=""
start_nats() {
	local n=$1 dir=$2 routes="" i
	NATS_PIDS=() NATS_URLS=""
	for i in $(seq 1 "$n"); do
		routes+="nats-route://127.0.0.1:$((NATS_BASE + 10 + i)),"
		NATS_URLS+="nats://127.0.0.1:$((NATS_BASE + i)),"
	done
	NATS_URLS=${NATS_URLS%,}
	for i in $(seq 1 "$n"); do
		mkdir -p "$dir/n$i"
		{
			echo "server_name: n$i"
			echo "listen: 127.0.0.1:$((NATS_BASE + i))"
			echo "http: 127.0.0.1:$((NATS_BASE + 20 + i))"
			echo "max_payload: 1MB"
			echo "jetstream { store_dir: \"$dir/n$i\" }"
			echo "mappings { \"fr.in.*.*\": \"fr.p.{{partition($PARTS,2)}}.{{wildcard(1)}}.{{wildcard(2)}}\" }"
			if [ "$n" -gt 1 ]; then
				echo "cluster { name: frscale, listen: 127.0.0.1:$((NATS_BASE + 10 + i)), routes: [${routes%,}] }"
			fi
		} >"$dir/n$i.conf"
		$(pin "${SCALE_NATS_CPUS:-}" "$i") bin/nats-server -c "$dir/n$i.conf" >"$dir/n$i.log" 2>&1 &
		NATS_PIDS+=($!)
		PIDS+=($!)
	done
	for i in $(seq 1 "$n"); do
		wait_http "http://127.0.0.1:$((NATS_BASE + 20 + i))/healthz" 60
	done
}

# owned N: partitions owned by daemon N (its cluster gauge).
owned() {
	curl -fsS "http://127.0.0.1:$((HTTP_BASE + $1))/metrics" 2>/dev/null |
		awk '/^flashreturn_cluster_owned_partitions /{print $2; f=1} END{if(!f) print 0}'
}

# start_daemons D R DIR: D daemons in cluster mode on NATS_URLS with
# replicas R; waits until each is ready and owns its balanced share.
DAEMON_PIDS=()
start_daemons() {
	local d=$1 r=$2 dir=$3 i
	DAEMON_PIDS=()
	for i in $(seq 1 "$d"); do
		$(pin "${SCALE_DAEMON_CPUS:-}" "$i") bin/flashreturnd --nats-url "$NATS_URLS" --member "m$i" --replicas "$r" --layout "$LAYOUT" \
			--partitions "$PARTS" --data-dir "$dir/m$i" --http "127.0.0.1:$((HTTP_BASE + i))" \
			>"$dir/m$i.log" 2>&1 &
		DAEMON_PIDS+=($!)
		PIDS+=($!)
	done
	local lo=$((PARTS / d)) deadline=$(($(date +%s) + 300))
	for i in $(seq 1 "$d"); do
		wait_http "http://127.0.0.1:$((HTTP_BASE + i))/readyz" 120
	done
	until
		ok=1
		for i in $(seq 1 "$d"); do
			o=$(owned "$i")
			if [ "${o%.*}" -lt "$lo" ] || [ "${o%.*}" -gt $((lo + 1)) ]; then ok=0; fi
		done
		[ "$ok" = 1 ]
	do
		[ "$(date +%s)" -lt "$deadline" ] || { log "partitions not balanced over $d daemons within 300s"; return 1; }
		sleep 0.5
	done
	for i in $(seq 1 "$d"); do
		wait_http "http://127.0.0.1:$((HTTP_BASE + i))/readyz" 120
	done
}

declare -A RATE AUDIT DCPU NCPU NMAX LCPU UTIL WALL CMD IDLE_D IDLE_N
for cfg in $CONFIGS; do
	nodes=${cfg%x*} daemons=${cfg#*x}
	reps=1
	[ "$nodes" -ge 3 ] && reps=3
	dir="$OUT/$cfg"
	mkdir -p "$dir"
	log "$cfg: $nodes NATS node(s) R$reps, $daemons daemon(s), $EVENTS events"
	start_nats "$nodes" "$dir"
	start_daemons "$daemons" "$reps" "$dir"
	# Idle cost: CPU of the daemons and the nodes over IDLE_SECS without
	# load (heartbeats, clock events, pull requests, snapshots).
	i0=0 n0=0
	for p in "${DAEMON_PIDS[@]}"; do i0=$((i0 + $(ticks "$p"))); done
	for p in "${NATS_PIDS[@]}"; do n0=$((n0 + $(ticks "$p"))); done
	sleep "$IDLE_SECS"
	i1=0 n1=0
	for p in "${DAEMON_PIDS[@]}"; do i1=$((i1 + $(ticks "$p"))); done
	for p in "${NATS_PIDS[@]}"; do n1=$((n1 + $(ticks "$p"))); done
	IDLE_D[$cfg]=$(awk -v t=$((i1 - i0)) -v k="$TCK" -v s="$IDLE_SECS" 'BEGIN{printf "%.1f", 100*t/k/s}')
	IDLE_N[$cfg]=$(awk -v t=$((n1 - n0)) -v k="$TCK" -v s="$IDLE_SECS" 'BEGIN{printf "%.1f", 100*t/k/s}')
	before_d=0 before_n=() i=0
	for p in "${DAEMON_PIDS[@]}"; do before_d=$((before_d + $(ticks "$p"))); done
	for p in "${NATS_PIDS[@]}"; do before_n+=("$(ticks "$p")"); done
	times >"$dir/times.before"
	t0=$(date +%s.%N)
	CMD[$cfg]="bin/loadgen --nats-url \$URLS --mode throughput --expect decisions --events $EVENTS --rate 0"
	if $(pin "${SCALE_LOADGEN_CPUS:-}" 1) bin/loadgen --nats-url "$NATS_URLS" --mode throughput --expect decisions --events "$EVENTS" --rate 0 \
		--progress never --json "$dir/loadgen.json" >"$dir/loadgen.txt" 2>"$dir/loadgen.err"; then AUDIT[$cfg]=pass; else AUDIT[$cfg]=FAIL; fi
	t1=$(date +%s.%N)
	times >"$dir/times.after"
	before_l=$(child_ticks "$dir/times.before") after_l=$(child_ticks "$dir/times.after")
	after_d=0
	for p in "${DAEMON_PIDS[@]}"; do after_d=$((after_d + $(ticks "$p"))); done
	ntot=0 nmax=0 i=0
	for p in "${NATS_PIDS[@]}"; do
		dt=$(($(ticks "$p") - before_n[i]))
		ntot=$((ntot + dt))
		[ "$dt" -gt "$nmax" ] && nmax=$dt
		i=$((i + 1))
	done
	RATE[$cfg]=$(json_num "$dir/loadgen.json" processed_per_sec || true)
	DCPU[$cfg]=$(us $((after_d - before_d)))
	NCPU[$cfg]=$(us "$ntot")
	NMAX[$cfg]=$(us "$nmax")
	LCPU[$cfg]=$(us $((after_l - before_l)))
	WALL[$cfg]=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}')
	UTIL[$cfg]=$(awk -v t=$((after_d - before_d + ntot + after_l - before_l)) -v k="$TCK" -v w="${WALL[$cfg]}" -v c="$(nproc)" 'BEGIN{printf "%.0f", 100*t/k/w/c}')
	log "$cfg: ${RATE[$cfg]:-?} events/s, daemons ${DCPU[$cfg]} us/event, nats ${NCPU[$cfg]} us/event (busiest node ${NMAX[$cfg]}), loadgen ${LCPU[$cfg]}, machine ${UTIL[$cfg]}% busy, audit ${AUDIT[$cfg]}"
	for p in "${DAEMON_PIDS[@]}"; do stop_pid "$p"; done
	for p in "${NATS_PIDS[@]}"; do stop_pid "$p"; done
	rm -rf "$dir"/n[0-9] "$dir"/m[0-9]
done

first=${CONFIGS%% *}
per10k() { awk -v u="$1" 'BEGIN{ if (u != "") printf "%.2f", u*1e4/1e6; else print "n/a"}'; }
{
	echo
	echo "## $STARTED: make bench-scale"
	echo
	echo "Machine: $(machine_line); nats-server $(bin/nats-server --version | awk '{print $2}') built from go.mod, one process per node. Every process (NATS nodes, daemons, loadgen) shares the machine's cores."
	echo "Settings: SCALE_EVENTS=$EVENTS SCALE_PARTITIONS=$PARTS SCALE_CONFIGS=\"$CONFIGS\" SCALE_LAYOUT=$LAYOUT SCALE_NATS_CPUS=\"${SCALE_NATS_CPUS:-}\" SCALE_DAEMON_CPUS=\"${SCALE_DAEMON_CPUS:-}\" SCALE_LOADGEN_CPUS=\"${SCALE_LOADGEN_CPUS:-}\"; daemons run \`bin/flashreturnd --nats-url \$URLS --member m<i> --replicas <1|3> --layout $LAYOUT --partitions $PARTS\`, each NATS node \`bin/nats-server -c n<i>.conf\` (the inbound mapping in the config; 3 nodes: one cluster, R3 streams and consumers)."
	echo "Load average (1/5/15 min) at start: $LOAD_BEFORE; at end: $(cut -d' ' -f1-3 /proc/loadavg). Raw reports: \`$OUT\`. Wall time: $(($(date +%s) - T0)) s."
	echo
	echo "| NATS nodes x daemons | events/s | vs $first | daemons CPU µs/event | NATS CPU µs/event (all nodes) | busiest NATS node µs/event | loadgen µs/event | machine busy | idle CPU: daemons, NATS | audit |"
	echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
	for cfg in $CONFIGS; do
		echo "| $cfg | $(fmt "${RATE[$cfg]:-}") | $(ratio "${RATE[$cfg]:-}" "${RATE[$first]:-}") | ${DCPU[$cfg]} | ${NCPU[$cfg]} | ${NMAX[$cfg]} | ${LCPU[$cfg]} | ${UTIL[$cfg]}% | ${IDLE_D[$cfg]}%, ${IDLE_N[$cfg]}% of a core | ${AUDIT[$cfg]} |"
	done
	echo
	echo "Sizing inputs (cores busy per 10k events/s = µs/event x 10^4 / 10^6):"
	echo
	for cfg in $CONFIGS; do
		echo "- $cfg: daemons $(per10k "${DCPU[$cfg]}") cores, NATS $(per10k "${NCPU[$cfg]}") cores in all ($(per10k "${NMAX[$cfg]}") on the busiest node)"
	done
	echo
	echo "Load: \`${CMD[$first]}\` per configuration."
} >>bench/RESULTS.md
log "appended to bench/RESULTS.md"
