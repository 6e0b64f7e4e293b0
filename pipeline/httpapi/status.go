package httpapi

import (
	"embed"
	"io/fs"
	"net/http"

	"github.com/flashreturn/flashreturn/pipeline/apply"
)

// staticFiles is the status page: plain HTML, one script and one style
// sheet, no build step (the page is for an operator on the night, and a
// toolchain to rebuild it is one more thing to break).
//
//go:embed static
var staticFiles embed.FS

// statusPage serves the embedded status page: "/" is static/index.html,
// "/static/..." the assets.
func statusPage() (index, assets http.Handler) {
	sub, err := fs.Sub(staticFiles, "static")
	if err != nil {
		panic("httpapi: embedded status page: " + err.Error()) // a build bug
	}
	files := http.FileServerFS(sub)
	index = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := fs.ReadFile(sub, "index.html")
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		_, _ = w.Write(b)
	})
	return index, http.StripPrefix("/static/", files)
}

// Status is the answer of GET /api/status: what the status page shows,
// computed from the daemon's own counters. Rates and percentiles cover
// the last WindowSeconds (up to 15 s; since start on the first call or
// after a long idle spell); totals count since this process started.
type Status struct {
	Now             string               `json:"now"`
	UptimeSeconds   float64              `json:"uptime_seconds"`
	Ready           bool                 `json:"ready"`
	Partitions      int                  `json:"partitions"`
	PartitionsReady int                  `json:"partitions_ready"`
	Policy          apply.PolicyRef      `json:"policy"`
	Shadow          *apply.ShadowSummary `json:"shadow,omitempty"`
	WindowSeconds   float64              `json:"window_seconds"`
	Rates           StatusRates          `json:"rates"`
	Latency         StatusLatency        `json:"latency"`
	LatencyAll      StatusLatency        `json:"latency_since_start"`
	Totals          StatusTotals         `json:"totals"`
	Decisions       map[string]uint64    `json:"decisions"`
	// Resolutions counts the ends of reviews and closes since start, by
	// "<outcome>/<by>": approved/merchant, approved/platform,
	// approved/timeout, rejected/merchant, rejected/platform,
	// closed/timeout.
	Resolutions  map[string]uint64 `json:"resolutions"`
	Reasons      []StatusCount     `json:"reasons"`
	DeadByReason map[string]uint64 `json:"dead_letters_by_reason"`
	Backlog      []PartitionStatus `json:"backlog"`
	DeadLetters  []DeadLetterInfo  `json:"recent_dead_letters"`
	// Stages is where an event's time went inside the daemon, stage by
	// stage (pipeline/stages), over the same window as Latency;
	// StagesAll since start, for the page to fall back on when the window
	// is idle. Always every stage, in the order an event passes them.
	Stages    []StageLatency `json:"stages"`
	StagesAll []StageLatency `json:"stages_since_start"`
}

// StatusRates are per-second rates over the status window.
type StatusRates struct {
	EventsPerSecond      float64 `json:"events_per_second"`
	DecisionsPerSecond   float64 `json:"decisions_per_second"`
	DeadLettersPerSecond float64 `json:"dead_letters_per_second"`
	// ApprovalRate is approved/decided over the window (0..1); -1 when
	// nothing was decided in the window.
	ApprovalRate float64 `json:"approval_rate"`
}

// StatusLatency is request-to-decision latency (ingest to publish ack) in
// seconds, over the status window or since start; -1 when nothing was
// decided in it.
type StatusLatency struct {
	Decisions  uint64  `json:"decisions"`
	P50Seconds float64 `json:"p50_seconds"`
	P99Seconds float64 `json:"p99_seconds"`
}

// StageLatency is one stage's share of an event's time in the daemon
// (flashreturn_stage_<stage>_seconds), estimated from its histogram's
// buckets as Prometheus would: Count observations (events or batches,
// depending on the stage), their median and 99th percentile in seconds,
// -1 when the stage saw nothing. A p99 at the largest bucket bound means
// "at least that".
type StageLatency struct {
	Stage      string  `json:"stage"`
	P50Seconds float64 `json:"p50_seconds"`
	P99Seconds float64 `json:"p99_seconds"`
	Count      uint64  `json:"count"`
}

// StatusTotals are counts and money (fen) since this process started.
type StatusTotals struct {
	EventsIn               uint64 `json:"events_in"`
	Decisions              uint64 `json:"decisions"`
	DeadLetters            uint64 `json:"dead_letters"`
	RefundsFen             uint64 `json:"refunds_fen"`
	AdvancedFen            uint64 `json:"advanced_fen"`
	ClawbacksFen           uint64 `json:"clawbacks_fen"`
	CompensationFen        uint64 `json:"compensation_fen"`
	AdvancedOutstandingFen int64  `json:"advanced_outstanding_fen"`
	PromisedOutstandingFen int64  `json:"promised_outstanding_fen"`
	Pending                int64  `json:"pending"`
}

// StatusCount is one labelled count.
type StatusCount struct {
	Name  string `json:"name"`
	Count uint64 `json:"count"`
}

// PartitionStatus is one partition's backlog.
type PartitionStatus struct {
	Partition int    `json:"partition"`
	Ready     bool   `json:"ready"`
	Pending   int64  `json:"pending"`
	Events    uint64 `json:"events"`
}

// DeadLetterInfo is one recent dead letter as the status page lists it
// (the original payload stays in FR_DLQ).
type DeadLetterInfo struct {
	At        string `json:"at"`
	Partition int    `json:"partition"`
	Reason    string `json:"reason"`
	Error     string `json:"error"`
	Subject   string `json:"subject"`
	StreamSeq uint64 `json:"stream_seq"`
}
