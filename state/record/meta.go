package record

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// OutMsg is one output message of a batch, kept in the outbox until the
// batch's next commit replaces it.
type OutMsg struct {
	Subject string // NATS subject, e.g. fr.out.refund.<user>
	MsgID   string // deterministic Nats-Msg-Id for JetStream deduplication
	Data    []byte // payload
}

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

// Outbox record: b version | uv count | each: s Subject, s MsgID, s Data.
func AppendOutbox(dst []byte, msgs []OutMsg) []byte {
	dst = append(dst, outboxV1)
	dst = binary.AppendUvarint(dst, uint64(len(msgs)))
	for i := range msgs {
		m := &msgs[i]
		dst = appendString(dst, m.Subject)
		dst = appendString(dst, m.MsgID)
		dst = binary.AppendUvarint(dst, uint64(len(m.Data)))
		dst = append(dst, m.Data...)
	}
	return dst
}

// DecodeOutbox decodes an outbox record. Data slices alias rec.
func DecodeOutbox(rec []byte) ([]OutMsg, error) {
	if len(rec) == 0 || rec[0] != outboxV1 {
		return nil, fmt.Errorf("%w: outbox record", ErrUnsupportedVersion)
	}
	// Subjects and IDs become strings (one allocation); Data aliases rec.
	d := decoder{s: string(rec), off: 1}
	n := d.count(3)
	msgs := make([]OutMsg, n)
	for i := range msgs {
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
		n += strBound(msgs[i].Subject) + strBound(msgs[i].MsgID) + uvarintLen(uint64(len(msgs[i].Data))) + len(msgs[i].Data)
	}
	return n
}
