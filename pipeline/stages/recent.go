package stages

import "math"

// Snapshot is a copy of every stage's bucket counts at one moment; two
// snapshots give each stage's distribution between them ([Between]). The
// zero Snapshot stands for "no observations yet" (the start of the
// process), so a window that begins at the start needs no snapshot taken
// there.
type Snapshot [NumStages][]uint64

// Snapshot copies the bucket counts. It allocates (one slice per stage):
// it is called per status request, never on the workers' path. The stages
// are read one after the other while workers keep observing, so a batch
// can be in one stage's copy and not yet in the next one's; a status
// window is seconds long, and the skew is one batch at most.
func (h *Histograms) Snapshot() Snapshot {
	var s Snapshot
	for st := range NumStages {
		c := make([]uint64, len(h.counts[st]))
		for i := range c {
			c[i] = h.counts[st][i].Load()
		}
		s[st] = c
	}
	return s
}

// Summary is one stage's observations between two snapshots: how many,
// and their estimated median and 99th percentile in seconds (-1 when
// there were none: an idle stage is not a fast one).
type Summary struct {
	Stage    Stage
	Count    uint64
	P50, P99 float64
}

// Between summarises every stage's observations after from and up to to,
// in stage order. from must be older than to and both from h (or from
// zero): counters only grow, so a later snapshot never has fewer.
func (h *Histograms) Between(from, to Snapshot) [NumStages]Summary {
	var out [NumStages]Summary
	for st := range NumStages {
		diff := make([]uint64, len(to[st]))
		for i := range diff {
			diff[i] = to[st][i]
			if from[st] != nil {
				diff[i] -= from[st][i]
			}
			out[st].Count += diff[i]
		}
		out[st].Stage = st
		out[st].P50, out[st].P99 = -1, -1
		if out[st].Count > 0 {
			out[st].P50 = Quantile(0.5, h.bounds, diff, out[st].Count)
			out[st].P99 = Quantile(0.99, h.bounds, diff, out[st].Count)
		}
	}
	return out
}

// Quantile estimates the q-quantile (0..1) of total observations counted
// in buckets (bounds' buckets, then +Inf) the way Prometheus'
// histogram_quantile does, so that the page and the dashboard agree on
// the same data: linear interpolation inside the bucket, from 0 in the
// first one. A quantile in +Inf is reported as the largest finite bound,
// a floor rather than a guess: the page shows "at least this". The
// status page's decision-latency mirror (pipeline) uses it too.
func Quantile(q float64, bounds []float64, buckets []uint64, total uint64) float64 {
	rank := q * float64(total)
	var cum float64
	for i, n := range buckets {
		if n > 0 && cum+float64(n) >= rank {
			if i == len(bounds) {
				break
			}
			lo := 0.0
			if i > 0 {
				lo = bounds[i-1]
			}
			return lo + (bounds[i]-lo)*(rank-cum)/float64(n)
		}
		cum += float64(n)
	}
	if len(bounds) == 0 {
		return math.Inf(1)
	}
	return bounds[len(bounds)-1]
}
