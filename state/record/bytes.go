package record

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"

	"github.com/flashreturn/flashreturn/internal/core"
)

// flagByte packs eight booleans, the first in bit 0.
func flagByte(bs ...bool) byte {
	var f byte
	for i, b := range bs {
		if b {
			f |= 1 << i
		}
	}
	return f
}

// strBound is the encoded size of s: its uvarint length and its bytes.
func strBound(s string) int { return uvarintLen(uint64(len(s))) + len(s) }

// uvarintLen is the number of bytes binary.AppendUvarint writes for x
// (seven bits a byte; x|1 makes 0 take one byte), computed without
// writing, for the size bounds.
func uvarintLen(x uint64) int { return (bits.Len64(x|1) + 6) / 7 }

// appendString writes a uvarint length and the bytes. No terminator and
// no escaping: IDs and notes are arbitrary bytes (FuzzDecodeUser feeds
// invalid UTF-8), and the length lets the decoder cut them out of the
// record without copying.
func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// appendStrings appends a count, then each string as appendString does.
func appendStrings(dst []byte, ss []string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(ss)))
	for _, s := range ss {
		dst = appendString(dst, s)
	}
	return dst
}

// Time encoding. Times are Unix nanoseconds where 0 means "not yet"; most
// lie within days of the user's MaxAt and are whole seconds or milliseconds.
// A time is one uvarint x:
//
//	x == 0: the time is 0
//	x == 1: escape; a second uvarint holds d = base - t (wrapping) in full
//	else:   x = q<<3 | unit<<1 | sign, |base - t| = q * unit (unit 1 = s,
//	        2 = ms, 3 = ns), sign 1 when t > base
//
// Three days before MaxAt costs 3 bytes in seconds, 5 in milliseconds.
const (
	timeZero   = 0
	timeEscape = 1
)

var timeUnits = [4]uint64{0, 1e9, 1e6, 1}

// appendTime writes t relative to base in the coarsest exact unit (see
// the format above). The difference wraps: any pair of int64 times,
// MinInt64 and MaxInt64 included, decodes back exactly.
func appendTime(dst []byte, base, t int64) []byte {
	if t == 0 {
		return append(dst, timeZero)
	}
	d := uint64(base) - uint64(t) // wrapping; decode reverses it exactly
	var sign uint64
	a := d
	if int64(d) < 0 {
		sign, a = 1, -d
	}
	unit := uint64(3)
	switch {
	case a%1e9 == 0:
		unit = 1
	case a%1e6 == 0:
		unit = 2
	}
	q := a / timeUnits[unit]
	if q >= 1<<61 {
		dst = append(dst, timeEscape)
		return binary.AppendUvarint(dst, d)
	}
	return binary.AppendUvarint(dst, q<<3|unit<<1|sign)
}

// decoder reads a record. Strings are cut from one string holding the whole
// record, so decoding a user costs one allocation for all its strings.
type decoder struct {
	s   string // the whole record
	off int
	err error
}

// fail records the first error and moves to the end of the record, so
// every later read fails fast and returns zero values: DecodeUser checks
// d.err once at the end instead of after every field.
func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
	d.off = len(d.s)
}

// byte reads one byte.
func (d *decoder) byte() byte {
	if d.off >= len(d.s) {
		d.fail(errShort)
		return 0
	}
	b := d.s[d.off]
	d.off++
	return b
}

// uvarint reads a uvarint, refusing one longer than ten bytes or
// overflowing 64 bits (binary.Uvarint's rules, on the string without
// converting it to a slice).
func (d *decoder) uvarint() uint64 {
	var x uint64
	var s uint
	for i := 0; i < binary.MaxVarintLen64; i++ {
		if d.off >= len(d.s) {
			d.fail(errShort)
			return 0
		}
		b := d.s[d.off]
		d.off++
		if b < 0x80 {
			if i == binary.MaxVarintLen64-1 && b > 1 {
				break
			}
			return x | uint64(b)<<s
		}
		x |= uint64(b&0x7f) << s
		s += 7
	}
	d.fail(errors.New("state: varint overflows 64 bits"))
	return 0
}

// varint reads a zig-zag varint.
func (d *decoder) varint() int64 {
	ux := d.uvarint()
	x := int64(ux >> 1)
	if ux&1 != 0 {
		x = ^x
	}
	return x
}

// string reads a length-prefixed string as a substring of the record:
// no copy, no allocation; the decoded user's strings share the one
// string the record was converted to.
func (d *decoder) string() string {
	n := d.uvarint()
	if n > uint64(len(d.s)-d.off) {
		d.fail(errShort)
		return ""
	}
	s := d.s[d.off : d.off+int(n)]
	d.off += int(n)
	return s
}

// strings reads what appendStrings wrote; nil for none. Each string is a
// substring of the record, as with string.
func (d *decoder) strings() []string {
	n := d.count(1)
	if n == 0 {
		return nil
	}
	ss := make([]string, n)
	for i := range ss {
		ss[i] = d.string()
	}
	return ss
}

// count reads a slice length and checks that at least min bytes per element
// remain, so a corrupt length cannot make the decoder allocate much.
func (d *decoder) count(min int) int {
	n := d.uvarint()
	if n > uint64((len(d.s)-d.off)/min) {
		d.fail(fmt.Errorf("state: slice length %d exceeds record", n))
		return 0
	}
	return int(n)
}

// time reads a time written by appendTime; unit 0 cannot be written, so
// it marks a corrupt record.
func (d *decoder) time(base int64) int64 {
	x := d.uvarint()
	switch x {
	case timeZero:
		return 0
	case timeEscape:
		return int64(uint64(base) - d.uvarint())
	}
	unit := (x >> 1) & 3
	if unit == 0 {
		d.fail(fmt.Errorf("state: bad time unit in %#x", x))
		return 0
	}
	a := (x >> 3) * timeUnits[unit]
	if x&1 != 0 {
		a = -a
	}
	return int64(uint64(base) - a)
}

// flags reads a flag byte and refuses bits outside all: a bit this
// version does not know means the record is newer or corrupt, and
// silently dropping it would lose state at the next write.
func (d *decoder) flags(all byte) byte {
	f := d.byte()
	if f&^all != 0 {
		d.fail(fmt.Errorf("state: unknown flag bits %#x", f&^all))
	}
	return f
}

// codeSet reads a core.CodeSet (uvarint of at most 32 bits).
func (d *decoder) codeSet() core.CodeSet {
	x := d.uvarint()
	if x > 1<<32-1 {
		d.fail(fmt.Errorf("state: code set %#x overflows", x))
	}
	return core.CodeSet(x)
}

// times reads a counted list of times; an empty list is nil, as core
// leaves it.
func (d *decoder) times(base int64) []int64 {
	n := d.count(1)
	if n == 0 {
		return nil
	}
	ts := make([]int64, n)
	for i := range ts {
		ts[i] = d.time(base)
	}
	return ts
}
