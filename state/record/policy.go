package record

import (
	"encoding/hex"
	"errors"
	"fmt"

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

// PolicyKey is a policy version in binary: the 16 hex digits of
// core.Policy.Version ([core.Policy.Finish]) as 8 bytes. It keys the
// policy tables, the policy records and the codec's policy dictionary.
type PolicyKey [8]byte

// String returns the version as core writes it (16 lowercase hex digits).
func (k PolicyKey) String() string { return hex.EncodeToString(k[:]) }

// VersionKey parses a policy version: exactly 16 lowercase hex digits, as
// [core.Policy.Finish] sets it. It does not allocate.
func VersionKey(v string) (k PolicyKey, ok bool) {
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

// fromHex is one lowercase hex digit. Uppercase is refused: core writes
// lowercase, and a version has exactly one spelling so that it keys one
// record.
func fromHex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// EncodePolicy returns the stored form of p: its policy file as JSON
// ([policyfile.MarshalFormat]). It checks that the file parses back into
// the same version, so that what is stored under a version is what that
// version means: a policy whose Version is not the digest of its content
// (not built by [core.Policy.Finish], or changed since) is refused.
func EncodePolicy(p *core.Policy) (PolicyKey, []byte, error) {
	k, ok := VersionKey(p.Version)
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

// DecodePolicy parses a policy record stored under version k and checks
// that its content has that version.
func DecodePolicy(k PolicyKey, rec []byte) (*core.Policy, error) {
	p, err := policyfile.Parse(rec, policyfile.FormatJSON)
	if err != nil {
		return nil, err
	}
	if p.Version != k.String() {
		return nil, fmt.Errorf("policy record of version %s holds version %s (%q)", k, p.Version, p.Name)
	}
	return p, nil
}

// Resolver gives DecodeUser the policies a record refers to.
type Resolver struct {
	// find returns the policy of version k, or an error wrapping
	// ErrUnknownPolicy.
	Find func(k PolicyKey) (*core.Policy, error)
	// legacy is the policy of the requests stored without one (version-1
	// records, and requests whose Policy was nil); nil: none.
	Legacy *core.Policy
}
