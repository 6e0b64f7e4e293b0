package state

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/flashreturn/flashreturn/internal/core"
	"github.com/flashreturn/flashreturn/state/record"
)

// Errors of the record codec, re-exported so that callers match a
// [*CorruptError]'s cause with errors.Is without importing state/record;
// the values are record's own.
var (
	// ErrUnsupportedVersion: a record written by a newer release, or
	// garbage; it must not be overwritten.
	ErrUnsupportedVersion = record.ErrUnsupportedVersion
	// ErrUnknownPolicy: a request follows a policy version the partition
	// has not stored; the error names the version.
	ErrUnknownPolicy = record.ErrUnknownPolicy
	// ErrNoLegacyPolicy: a version-1 user record read by a store opened
	// without Options.LegacyPolicy.
	ErrNoLegacyPolicy = record.ErrNoLegacyPolicy
)

// unknownPolicy is the error of a version the partition has not stored.
func unknownPolicy(p int, k record.PolicyKey) error {
	return fmt.Errorf("%w %s: partition %d has no record of it", ErrUnknownPolicy, k, p)
}

// interner shares one *core.Policy per version among the partitions and
// readers of a Store (a version names one content: sharing is safe and
// saves parsing and memory). Safe for concurrent use.
type interner struct {
	mu sync.Mutex
	m  map[record.PolicyKey]*core.Policy
}

// intern returns the policy already known for k, else records p.
func (in *interner) intern(k record.PolicyKey, p *core.Policy) *core.Policy {
	in.mu.Lock()
	defer in.mu.Unlock()
	if q := in.m[k]; q != nil {
		return q
	}
	if in.m == nil {
		in.m = make(map[record.PolicyKey]*core.Policy)
	}
	in.m[k] = p
	return p
}

// get returns the policy known for k, or nil.
func (in *interner) get(k record.PolicyKey) *core.Policy {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.m[k]
}

// polTable is a partition's policy table: every policy version stored
// under the partition's prefix. The owner goroutine reads m without the
// lock and writes it with the lock held; other goroutines read it with
// the lock held ([Partition.Policies]).
type polTable struct {
	mu sync.Mutex
	m  map[record.PolicyKey]*core.Policy
}

// add records committed policies.
func (t *polTable) add(ps []stagedPolicy) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, sp := range ps {
		if t.m[sp.k] == nil {
			t.m[sp.k] = sp.p
		}
	}
}

// sorted returns the table's policies by name, then version.
func (t *polTable) sorted() []*core.Policy {
	t.mu.Lock()
	out := make([]*core.Policy, 0, len(t.m))
	for _, p := range t.m {
		out = append(out, p)
	}
	t.mu.Unlock()
	slices.SortFunc(out, func(a, b *core.Policy) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return strings.Compare(a.Version, b.Version)
	})
	return out
}

// stagedPolicy is a policy record to write with the next commit.
type stagedPolicy struct {
	k   record.PolicyKey
	p   *core.Policy
	rec []byte // record.EncodePolicy's output
}

// Policies returns the policies stored in the partition (every version a
// committed request referred to, see the package doc), sorted by name,
// then version. Unlike the other methods of Partition it is safe to call
// from any goroutine (e.g. a status page). The slice is the caller's; the
// policies are shared and read-only.
func (pt *Partition) Policies() []*core.Policy { return pt.pols.sorted() }

// findPolicy is the partition's record.Resolver.find: its table only (a
// record of the partition refers to committed policies of the partition).
func (pt *Partition) findPolicy(k record.PolicyKey) (*core.Policy, error) {
	if p := pt.pols.m[k]; p != nil {
		return p, nil
	}
	return nil, unknownPolicy(pt.p, k)
}

// stagePolicies stages a record for every policy that u's requests follow
// and that the partition has neither stored nor staged. The two policies
// last found are remembered (the one in force, and the one before a
// switch), so the usual case costs a pointer comparison or two per
// request and no map lookup.
func (pt *Partition) stagePolicies(u *core.User) error {
	for i := range u.Requests {
		p := u.Requests[i].Policy
		if p == pt.lastPols[0] || p == nil {
			continue
		}
		if p != pt.lastPols[1] {
			if err := pt.stagePolicy(p); err != nil {
				return err
			}
		}
		pt.lastPols[0], pt.lastPols[1] = p, pt.lastPols[0]
	}
	return nil
}

// stagePolicy stages the record of p unless the partition has it stored
// or staged. EncodePolicy refuses a policy whose version is not its
// content's, and that error fails the commit: a record that lied about
// its version would change what old requests follow after a restart.
func (pt *Partition) stagePolicy(p *core.Policy) error {
	k, ok := record.VersionKey(p.Version)
	if ok && pt.pols.m[k] != nil {
		return nil
	}
	for i := range pt.newPols {
		if pt.newPols[i].k == k && ok {
			return nil
		}
	}
	k, rec, err := record.EncodePolicy(p)
	if err != nil {
		return err
	}
	pt.newPols = append(pt.newPols, stagedPolicy{k, p, rec})
	pt.staged += policyEntryBytes(rec)
	return nil
}

// policyEntryBytes is what one policy record adds to a transaction.
func policyEntryBytes(rec []byte) int {
	return prefixLen + len(sufPolicy) + 2*len(record.PolicyKey{}) + len(rec) + entryOverhead
}
