package state

import (
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/flashreturn/flashreturn/internal/core"
	"github.com/flashreturn/flashreturn/internal/policyfile"
)

// Errors of the policy table, matched with errors.Is.
var (
	// ErrUnknownPolicy is wrapped by the [*CorruptError] of a user record
	// one of whose requests follows a policy version its partition has not
	// stored. The error names the version.
	ErrUnknownPolicy = errors.New("state: unknown policy version")
	// ErrNoLegacyPolicy is wrapped by the [*CorruptError] of a version-1
	// user record (written before requests kept their policy) read by a
	// store opened without Options.LegacyPolicy.
	ErrNoLegacyPolicy = errors.New("state: version-1 record and no Options.LegacyPolicy")
)

// polKey is a policy version in binary: the 16 hex digits of
// core.Policy.Version ([core.Policy.Finish]) as 8 bytes. It keys the
// policy tables, the policy records and the codec's policy dictionary.
type polKey [8]byte

// String returns the version as core writes it (16 lowercase hex digits).
func (k polKey) String() string { return hex.EncodeToString(k[:]) }

// versionKey parses a policy version: exactly 16 lowercase hex digits, as
// [core.Policy.Finish] sets it. It does not allocate.
func versionKey(v string) (k polKey, ok bool) {
	if len(v) != 2*len(k) {
		return k, false
	}
	for i := range k {
		hi, ok1 := fromHex(v[2*i])
		lo, ok2 := fromHex(v[2*i+1])
		if !ok1 || !ok2 {
			return k, false
		}
		k[i] = hi<<4 | lo
	}
	return k, true
}

func fromHex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// encodePolicy returns the stored form of p: its policy file as JSON
// ([policyfile.MarshalFormat]). It checks that the file parses back into
// the same version, so that what is stored under a version is what that
// version means: a policy whose Version is not the digest of its content
// (not built by [core.Policy.Finish], or changed since) is refused.
func encodePolicy(p *core.Policy) (polKey, []byte, error) {
	k, ok := versionKey(p.Version)
	if !ok {
		return k, nil, fmt.Errorf("policy %q: version %q is not 16 hex digits (core.Policy.Finish sets it)", p.Name, p.Version)
	}
	rec, err := policyfile.MarshalFormat(p, policyfile.FormatJSON)
	if err != nil {
		return k, nil, fmt.Errorf("policy %q version %s: %w", p.Name, p.Version, err)
	}
	back, err := policyfile.Parse(rec, policyfile.FormatJSON)
	if err != nil {
		return k, nil, fmt.Errorf("policy %q version %s does not read back: %w", p.Name, p.Version, err)
	}
	if back.Version != p.Version {
		return k, nil, fmt.Errorf("policy %q: version %s does not match its content (version %s)", p.Name, p.Version, back.Version)
	}
	return k, rec, nil
}

// decodePolicy parses a policy record stored under version k and checks
// that its content has that version.
func decodePolicy(k polKey, rec []byte) (*core.Policy, error) {
	p, err := policyfile.Parse(rec, policyfile.FormatJSON)
	if err != nil {
		return nil, err
	}
	if p.Version != k.String() {
		return nil, fmt.Errorf("policy record of version %s holds version %s (%q)", k, p.Version, p.Name)
	}
	return p, nil
}

// policyResolver gives decodeUser the policies a record refers to.
type policyResolver struct {
	// find returns the policy of version k, or an error wrapping
	// ErrUnknownPolicy.
	find func(k polKey) (*core.Policy, error)
	// legacy is the policy of the requests stored without one (version-1
	// records, and requests whose Policy was nil); nil: none.
	legacy *core.Policy
}

// unknownPolicy is the error of a version the partition has not stored.
func unknownPolicy(p int, k polKey) error {
	return fmt.Errorf("%w %s: partition %d has no record of it", ErrUnknownPolicy, k, p)
}

// interner shares one *core.Policy per version among the partitions and
// readers of a Store (a version names one content: sharing is safe and
// saves parsing and memory). Safe for concurrent use.
type interner struct {
	mu sync.Mutex
	m  map[polKey]*core.Policy
}

// intern returns the policy already known for k, else records p.
func (in *interner) intern(k polKey, p *core.Policy) *core.Policy {
	in.mu.Lock()
	defer in.mu.Unlock()
	if q := in.m[k]; q != nil {
		return q
	}
	if in.m == nil {
		in.m = make(map[polKey]*core.Policy)
	}
	in.m[k] = p
	return p
}

// get returns the policy known for k, or nil.
func (in *interner) get(k polKey) *core.Policy {
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
	m  map[polKey]*core.Policy
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
	k   polKey
	p   *core.Policy
	rec []byte // encodePolicy's output
}

// Policies returns the policies stored in the partition (every version a
// committed request referred to, see the package doc), sorted by name,
// then version. Unlike the other methods of Partition it is safe to call
// from any goroutine (e.g. a status page). The slice is the caller's; the
// policies are shared and read-only.
func (pt *Partition) Policies() []*core.Policy { return pt.pols.sorted() }

// findPolicy is the partition's policyResolver.find: its table only (a
// record of the partition refers to committed policies of the partition).
func (pt *Partition) findPolicy(k polKey) (*core.Policy, error) {
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

func (pt *Partition) stagePolicy(p *core.Policy) error {
	k, ok := versionKey(p.Version)
	if ok && pt.pols.m[k] != nil {
		return nil
	}
	for i := range pt.newPols {
		if pt.newPols[i].k == k && ok {
			return nil
		}
	}
	k, rec, err := encodePolicy(p)
	if err != nil {
		return err
	}
	pt.newPols = append(pt.newPols, stagedPolicy{k, p, rec})
	pt.staged += policyEntryBytes(rec)
	return nil
}

// policyEntryBytes is what one policy record adds to a transaction.
func policyEntryBytes(rec []byte) int {
	return prefixLen + len(sufPolicy) + 2*len(polKey{}) + len(rec) + entryOverhead
}
