package streams

import (
	"context"
	"time"
)

// Backoff is the wait before retry number attempt (0-based) of an IO call
// that failed for a reason that may pass: a commit to a full disk, a
// publish whose ack was lost, a setup call to a cluster still electing
// its leaders. It doubles from 50 ms and stops growing at 2 s, so a
// transient fault costs little and a long one (a NATS node restarting,
// ~seconds) is noticed within two seconds of its end, while a worker
// retrying forever makes at most one call every 2 s. Every retry loop of
// the pipeline and its subpackages uses it, so that they back off alike.
func Backoff(attempt int) time.Duration {
	d := 50 * time.Millisecond << min(attempt, 5)
	return min(d, 2*time.Second)
}

// Sleep waits d or until ctx is done; it reports whether d elapsed. Retry
// loops use it instead of time.Sleep so that a shutdown never waits out
// a backoff: a false return means "stop retrying, the caller is leaving".
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
