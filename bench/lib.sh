# bench/lib.sh: shell helpers shared by bench/run.sh and bench/scale.sh
# (sourced, not run). The caller sets PIDS=() and installs the cleanup
# trap.

log() { echo "bench: $*" >&2; }

# cleanup: stop every process started by the script (trap ... EXIT).
cleanup() {
	for p in "${PIDS[@]:-}"; do
		[ -n "$p" ] && kill -TERM "$p" 2>/dev/null && wait "$p" 2>/dev/null || true
	done
}

# json_num FILE KEY: the first number stored under "KEY" in an indented
# loadgen JSON report.
json_num() { sed -n "s/.*\"$2\": *\([-0-9.eE+]*\).*/\1/p" "$1" | head -1; }
json_bool() { sed -n "s/.*\"$2\": *\(true\|false\).*/\1/p" "$1" | head -1; }

# wait_for FILE PATTERN SECONDS: poll a log for a line (the process
# prints it when ready).
wait_for() {
	local deadline=$(($(date +%s) + $3))
	until grep -q "$2" "$1" 2>/dev/null; do
		[ "$(date +%s)" -lt "$deadline" ] || { log "timed out waiting for '$2' in $1"; return 1; }
		sleep 0.2
	done
}

# wait_http URL SECONDS: poll until URL answers 200.
wait_http() {
	local deadline=$(($(date +%s) + $2))
	until curl -fsS -o /dev/null "$1" 2>/dev/null; do
		[ "$(date +%s)" -lt "$deadline" ] || { log "timed out waiting for $1"; return 1; }
		sleep 0.2
	done
}

stop_pid() {
	kill -TERM "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
	PIDS=("${PIDS[@]/$1/}")
}

# quote_cmd ARGS...: the command line, words quoted for a POSIX shell only
# where they need it (readable in RESULTS.md, pasteable into a shell).
quote_cmd() {
	local out="" a q="'"
	for a in "$@"; do
		if [[ "$a" =~ ^[A-Za-z0-9_@%+=:,./-]+$ ]]; then
			out+="$a "
		else
			out+="'${a//$q/$q\\$q$q}' "
		fi
	done
	echo "${out% }"
}

# fmt N: N rounded to an integer, or n/a when empty.
fmt() { [ -n "${1:-}" ] && awk -v x="$1" 'BEGIN{printf "%.0f", x}' || echo "n/a"; }
# ratio A B: A/B to two decimals, or n/a.
ratio() { [ -n "${1:-}" ] && [ -n "${2:-}" ] && awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2f", a/b; else print "n/a"}' || echo "n/a"; }

# machine_line: one line naming the CPUs, the CPU model, the RAM and Go.
machine_line() {
	local cpu
	cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
	echo "$(nproc) CPUs, ${cpu:-unknown CPU}, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM; $(go version | cut -d' ' -f3)"
}

# stage_quantiles METRICS_FILE: one line with the p50 and p99 of each
# flashreturn_stage_<stage>_seconds histogram in a /metrics scrape, as the
# upper bound of the bucket that holds the quantile (the buckets double,
# so read "<= x ms"), or nothing when the daemon exposes no stages.
stage_quantiles() {
	awk '
	/^flashreturn_stage_[a-z_]+_seconds_bucket\{/ {
		name = $1; sub(/^flashreturn_stage_/, "", name); sub(/_seconds_bucket.*/, "", name)
		le = $1; sub(/.*le="/, "", le); sub(/".*/, "", le)
		n[name]++; bound[name, n[name]] = le; cum[name, n[name]] = $2
		if (!(name in seen)) { seen[name] = 1; order[++k] = name }
	}
	function q(name, f,   i, tot) {
		tot = cum[name, n[name]]
		if (tot == 0) return "n/a"
		for (i = 1; i <= n[name]; i++) if (cum[name, i] >= f * tot) break
		if (bound[name, i] == "+Inf") return "> last bucket"
		return sprintf("<= %.3g ms", bound[name, i] * 1000)
	}
	END {
		for (j = 1; j <= k; j++) {
			nm = order[j]
			printf "%s%s: p50 %s, p99 %s (%d)", (j > 1 ? "; " : ""), nm, q(nm, 0.5), q(nm, 0.99), cum[nm, n[nm]]
		}
	}' "$1"
}

# round_means METRICS_FILE: the runners' and the publisher's rounds in a
# /metrics scrape: partitions committed per runner round, and the
# publisher's atomic batches (mean duration and messages, markers
# included), or nothing when the daemon exposes neither.
round_means() {
	awk '
	/^flashreturn_round_size_partitions_sum / { rs = $2 } /^flashreturn_round_size_partitions_count / { rc = $2 }
	/^flashreturn_outbound_batch_seconds_sum / { bs = $2 } /^flashreturn_outbound_batch_seconds_count / { bc = $2 }
	/^flashreturn_outbound_batch_messages_sum / { bm = $2 }
	END {
		if (rc > 0) printf "runner rounds %d, %.2f partitions each", rc, rs / rc
		if (bc > 0) printf "%spublisher rounds %d, %.2f ms and %.1f messages each", (rc > 0 ? "; " : ""), bc, bs / bc * 1000, bm / bc
	}' "$1"
}
