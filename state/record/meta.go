package record

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// OutMsg is one output message of a batch, kept in the outbox until the
// batch's next commit replaces it.
type OutMsg struct {
	Subject string // NATS subject, e.g. fr.out.refund.<user>
	MsgID   string // deterministic Nats-Msg-Id for JetStream deduplication
	Data    []byte // payload
	// Pos is where the output stands in its partition's output order:
	// the input event that produced it and its index among that event's
	// outputs. Commit markers on FR_OUT name the last position stored
	// (pipeline/outbound); the zero Pos (an outbox written before
	// positions existed) is covered by no marker.
	Pos Pos
}

// Pos is an output's position in its partition's output order: Seq is
// the input stream sequence of the event whose application produced it,
// Idx its index among that event's outputs. Positions are deterministic:
// re-applying the same events to the same state gives the same outputs
// at the same positions, which is what lets a replay skip what FR_OUT
// already holds.
type Pos struct {
	Seq uint64
	Idx uint32
}

// After reports whether p comes after q in output order.
func (p Pos) After(q Pos) bool {
	return p.Seq > q.Seq || p.Seq == q.Seq && p.Idx > q.Idx
}

// IsZero reports whether p is the zero position (before every output).
func (p Pos) IsZero() bool { return p == Pos{} }

// MetaSizeMax is the longest meta record: the version byte and two
// varints at their longest.
const MetaSizeMax = 1 + 2*maxVarint

// Meta record: b version | uv cursor | v clock.
func AppendMeta(dst []byte, cursor uint64, clock int64) []byte {
	dst = append(dst, metaV1)
	dst = binary.AppendUvarint(dst, cursor)
	return binary.AppendVarint(dst, clock)
}

// DecodeMeta decodes a meta record. Any other version is refused: the
// cursor decides where a partition resumes, so it is never guessed.
func DecodeMeta(rec []byte) (cursor uint64, clock int64, err error) {
	if len(rec) == 0 || rec[0] != metaV1 {
		return 0, 0, fmt.Errorf("%w: meta record", ErrUnsupportedVersion)
	}
	d := decoder{s: string(rec), off: 1}
	cursor = d.uvarint()
	clock = d.varint()
	if d.err == nil && d.off != len(d.s) {
		d.err = errors.New("state: trailing bytes in meta record")
	}
	return cursor, clock, d.err
}

// Outbox record: b version | uv count | each: s Subject, s MsgID, s Data,
// uv Pos.Seq, uv Pos.Idx. Version 1 (written before positions existed)
// has no positions; it decodes with zero ones.
func AppendOutbox(dst []byte, msgs []OutMsg) []byte {
	dst = append(dst, outboxV2)
	dst = binary.AppendUvarint(dst, uint64(len(msgs)))
	for i := range msgs {
		m := &msgs[i]
		dst = binary.AppendUvarint(dst, m.Pos.Seq)
		dst = binary.AppendUvarint(dst, uint64(m.Pos.Idx))
		dst = appendString(dst, m.Subject)
		dst = appendString(dst, m.MsgID)
		dst = binary.AppendUvarint(dst, uint64(len(m.Data)))
		dst = append(dst, m.Data...)
	}
	return dst
}

// DecodeOutbox decodes an outbox record. Data slices alias rec.
func DecodeOutbox(rec []byte) ([]OutMsg, error) {
	if len(rec) == 0 || rec[0] != outboxV1 && rec[0] != outboxV2 {
		return nil, fmt.Errorf("%w: outbox record", ErrUnsupportedVersion)
	}
	v2 := rec[0] == outboxV2
	// Subjects and IDs become strings (one allocation); Data aliases rec.
	d := decoder{s: string(rec), off: 1}
	n := d.count(3)
	msgs := make([]OutMsg, n)
	for i := range msgs {
		if v2 {
			msgs[i].Pos.Seq = d.uvarint()
			idx := d.uvarint()
			if idx > math.MaxUint32 {
				d.fail(errors.New("state: outbox position index out of range"))
				break
			}
			msgs[i].Pos.Idx = uint32(idx)
		}
		msgs[i].Subject = d.string()
		msgs[i].MsgID = d.string()
		l := d.uvarint()
		if l > uint64(len(d.s)-d.off) {
			d.fail(errShort)
			break
		}
		start := d.off
		d.off += int(l)
		msgs[i].Data = rec[start:d.off:d.off]
	}
	if d.err != nil {
		return nil, d.err
	}
	if d.off != len(d.s) {
		return nil, errors.New("state: trailing bytes in outbox record")
	}
	return msgs, nil
}

// OutboxSizeBound returns an upper bound of len(AppendOutbox(nil, msgs)),
// without encoding: the store adds its key and entry overhead to size a
// commit before it is built.
func OutboxSizeBound(msgs []OutMsg) int {
	n := 1 + maxVarint
	for i := range msgs {
		n += OutMsgSizeBound(&msgs[i])
	}
	return n
}

// OutMsgSizeBound is what one message adds to OutboxSizeBound, so that a
// writer can keep the bound of a growing outbox as it appends.
func OutMsgSizeBound(m *OutMsg) int {
	return 2*maxVarint + strBound(m.Subject) + strBound(m.MsgID) + uvarintLen(uint64(len(m.Data))) + len(m.Data)
}
