package outbound

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/flashreturn/flashreturn/state/record"
)

// SubjectPrefix starts every marker subject: fr.commit.<p>. It is outside
// fr.out.>, so a downstream consumer filtered on the contract's output
// subjects never sees a marker.
const SubjectPrefix = "fr.commit."

// Subjects is the filter of every partition's markers, added to FR_OUT's
// subjects.
const Subjects = SubjectPrefix + "*"

// Subject is partition p's marker subject.
func Subject(p int) string { return SubjectPrefix + strconv.Itoa(p) }

// Marker kinds.
const (
	// KindClaim is written by a new owner before it publishes anything.
	KindClaim = "claim"
	// KindCommit ends every atomic batch of outputs, one per partition
	// the batch carries outputs for.
	KindCommit = "commit"
)

// Marker is one record on a partition's marker subject. Every marker is
// stored with an expected-last-subject-sequence check on the one before
// it, so the subject is a chain that only the current owner can extend.
type Marker struct {
	Partition int    `json:"partition"`
	Kind      string `json:"kind"`
	// Owner and Epoch name the owner that wrote it: the cluster member
	// and its claim's epoch ("" and 0 for a single daemon).
	Owner string `json:"owner"`
	Epoch uint64 `json:"epoch"`
	// Claim is the FR_OUT sequence of the claim marker a commit marker
	// was written under (0 on a claim marker).
	Claim uint64 `json:"claim,omitempty"`
	// Nonce tells one claim attempt from another, so that a claim whose
	// answer was lost is recognised as one's own.
	Nonce string `json:"nonce,omitempty"`
	// Seq and Idx are the position of the last output FR_OUT holds for
	// the partition (record.Pos): every output at or before it is
	// stored. A claim carries its predecessor's.
	Seq uint64 `json:"seq"`
	Idx uint32 `json:"idx"`
	// Outputs is how many outputs of the partition the batch carried
	// (commit markers).
	Outputs int `json:"outputs,omitempty"`
}

// Pos is the marker's output position.
func (m *Marker) Pos() record.Pos { return record.Pos{Seq: m.Seq, Idx: m.Idx} }

// setPos sets the marker's output position.
func (m *Marker) setPos(p record.Pos) { m.Seq, m.Idx = p.Seq, p.Idx }

// encode is the marker's stored form (JSON: operators read it with
// `nats stream get FR_OUT --last-for fr.commit.3`).
func (m *Marker) encode() []byte {
	b, err := json.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("outbound: encode marker: %v", err)) // plain struct: cannot fail
	}
	return b
}

// DecodeMarker decodes a stored marker.
func DecodeMarker(data []byte) (Marker, error) {
	var m Marker
	if err := json.Unmarshal(data, &m); err != nil {
		return Marker{}, fmt.Errorf("outbound: decode marker: %w", err)
	}
	if m.Kind != KindClaim && m.Kind != KindCommit {
		return Marker{}, fmt.Errorf("outbound: decode marker: unknown kind %q", m.Kind)
	}
	return m, nil
}

// Last reads partition p's last marker from stream and its stream
// sequence; a partition that has none yet gives the zero Marker and 0.
func Last(ctx context.Context, s jetstream.Stream, p int) (Marker, uint64, error) {
	raw, err := s.GetLastMsgForSubject(ctx, Subject(p))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return Marker{Partition: p}, 0, nil
	}
	if err != nil {
		return Marker{}, 0, fmt.Errorf("outbound: partition %d: read last marker: %w", p, err)
	}
	m, err := DecodeMarker(raw.Data)
	if err != nil {
		return Marker{}, 0, fmt.Errorf("partition %d, FR_OUT sequence %d: %w", p, raw.Sequence, err)
	}
	return m, raw.Sequence, nil
}
