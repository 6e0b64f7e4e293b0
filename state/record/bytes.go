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

func strBound(s string) int { return uvarintLen(uint64(len(s))) + len(s) }

func uvarintLen(x uint64) int { return (bits.Len64(x|1) + 6) / 7 }

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
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

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
	d.off = len(d.s)
}

func (d *decoder) byte() byte {
	if d.off >= len(d.s) {
		d.fail(errShort)
		return 0
	}
	b := d.s[d.off]
	d.off++
	return b
}

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

func (d *decoder) varint() int64 {
	ux := d.uvarint()
	x := int64(ux >> 1)
	if ux&1 != 0 {
		x = ^x
	}
	return x
}

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
