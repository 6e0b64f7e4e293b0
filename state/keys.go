package state

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"

	"github.com/flashreturn/flashreturn/state/record"
)

// Key layout. Every key a partition owns starts with its prefix
// "p/" + uint16 big-endian partition + "/", so one prefix scan yields all of
// it (export, import, drop):
//
//	p/<pp>/meta                       cursor and clock (metaV1)
//	p/<pp>/outbox                     outbox of the last commit (outboxV1)
//	p/<pp>/importing                  present while an import is under way
//	p/<pp>/timers-v2                  present once the timers of version-1
//	                                  users are armed (migrateTimers)
//	p/<pp>/u/<user>                   user state (userV2; record.UserV1 read), TTL = retention
//	p/<pp>/t/<user>                   timer: deadline, 8 bytes big-endian, TTL = retention
//	p/<pp>/tr/<uvarint len(user)><user>/<request>   rule trace, TTL = retention
//	p/<pp>/pol/<version>              a policy the partition's requests follow:
//	                                  its policy file as JSON, no TTL; the
//	                                  version is 16 hex digits
//
// The trace key length-prefixes the user ID so that IDs containing "/"
// cannot collide.
const (
	prefixLen = 5 // "p/" + 2 bytes + "/"

	// MaxPartitions is the number of partitions a store can hold: partition
	// numbers are 0..MaxPartitions-1 (two bytes in the key).
	MaxPartitions = 1 << 16
)

var (
	sufMeta      = []byte("meta")
	sufOutbox    = []byte("outbox")
	sufImporting = []byte("importing")
	sufUser      = []byte("u/")
	sufTimer     = []byte("t/")
	sufTrace     = []byte("tr/")
	sufPolicy    = []byte("pol/")
	sufTimersV2  = []byte("timers-v2")
)

// checkPartition rejects partition numbers that do not fit the key's two
// bytes: a larger one would wrap and alias another partition's keys.
func checkPartition(p int) error {
	if p < 0 || p >= MaxPartitions {
		return fmt.Errorf("%w: partition %d out of range [0,%d)", ErrInvalidOption, p, MaxPartitions)
	}
	return nil
}

// appendPrefix appends the partition prefix p/<pp>/ to dst.
func appendPrefix(dst []byte, p int) []byte {
	dst = append(dst, 'p', '/')
	dst = binary.BigEndian.AppendUint16(dst, uint16(p))
	return append(dst, '/')
}

// partitionPrefix is the prefix every key of partition p starts with: the
// one range an export, import or drop scans.
func partitionPrefix(p int) []byte { return appendPrefix(make([]byte, 0, prefixLen), p) }

// appendKey appends the key prefix + suffix + id (an empty id for the
// partition's own records: meta, outbox, markers).
func appendKey(dst []byte, p int, suffix []byte, id string) []byte {
	dst = appendPrefix(dst, p)
	dst = append(dst, suffix...)
	return append(dst, id...)
}

// userKey is the key of a user's state, sized exactly so that building it
// is one allocation.
func userKey(p int, id string) []byte {
	return appendKey(make([]byte, 0, prefixLen+len(sufUser)+len(id)), p, sufUser, id)
}

// appendPolicyKey appends the key of a policy record: the version in its
// 16 hex digits, readable in a key dump and parsed back at open.
func appendPolicyKey(dst []byte, p int, k record.PolicyKey) []byte {
	dst = appendPrefix(dst, p)
	dst = append(dst, sufPolicy...)
	return hex.AppendEncode(dst, k[:])
}

// appendTraceKey appends the key of a request's rule trace; the user ID
// is length-prefixed so that an ID containing "/" cannot collide with
// another user's request.
func appendTraceKey(dst []byte, p int, userID, requestID string) []byte {
	dst = appendPrefix(dst, p)
	dst = append(dst, sufTrace...)
	dst = binary.AppendUvarint(dst, uint64(len(userID)))
	dst = append(dst, userID...)
	dst = append(dst, '/')
	return append(dst, requestID...)
}
