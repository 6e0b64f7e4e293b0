package cluster

import "github.com/VictoriaMetrics/metrics"

// latencyBuckets are the upper bounds (seconds) of the cluster's duration
// histograms (restores, snapshots): 50 µs to ~26 s, factor 2, the same as
// the partition runtime's latency histograms so that one dashboard panel
// style reads both. A restore of a large partition takes seconds; a
// snapshot of an idle one, microseconds.
var latencyBuckets = metrics.ExponentialBuckets(50e-6, 2, 20)
