package pipeline

import (
	"context"
	"os"
	"time"
)

// Reload asks the daemon to re-read its policy file now (SIGHUP does this
// in flashreturnd). It never blocks.
func (d *Daemon) Reload() {
	select {
	case d.reload <- struct{}{}:
	default:
	}
}

// runPolicyReload watches the policy file (size and modification time,
// every PolicyReload) and swaps the policy in force when the file changes
// and loads cleanly. Workers read the policy once per batch, so no event
// is decided by a half-loaded policy. A bad file is refused, counted and
// logged; the old policy stays.
func (d *Daemon) runPolicyReload(ctx context.Context) {
	ok := d.m.Set.NewCounter(`flashreturn_policy_reloads_total{result="ok"}`)
	bad := d.m.Set.NewCounter(`flashreturn_policy_reloads_total{result="error"}`)
	// Size and modification time, not a hash: a stat every second costs
	// nothing, and an editor's save changes at least the time. A file
	// replaced by another of the same size within the same mtime tick is
	// missed until the next change or SIGHUP, which is why Reload exists.
	stamp := func() (time.Time, int64) {
		fi, err := os.Stat(d.cfg.PolicyPath)
		if err != nil {
			return time.Time{}, -1
		}
		return fi.ModTime(), fi.Size()
	}
	lastMod, lastSize := stamp()
	t := time.NewTicker(d.cfg.PolicyReload)
	defer t.Stop()
	for {
		forced := false
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-d.reload:
			forced = true
		}
		mod, size := stamp()
		if !forced && mod.Equal(lastMod) && size == lastSize {
			continue
		}
		lastMod, lastSize = mod, size
		p, err := d.cfg.LoadPolicy(d.cfg.PolicyPath)
		if err != nil {
			bad.Inc()
			cur := d.policy.Load()
			d.log.Error("policy file refused; keeping the policy in force", "file", d.cfg.PolicyPath, "err", err, "policy", cur.Name, "version", cur.Version)
			continue
		}
		// The same name and version is the same policy: a touched file, or
		// a save that only changed comments, must not log a swap nor count
		// as a reload.
		if cur := d.policy.Load(); cur.Version == p.Version && cur.Name == p.Name {
			continue
		}
		ok.Inc()
		d.SetPolicy(p)
	}
}
