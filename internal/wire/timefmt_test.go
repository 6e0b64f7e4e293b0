package wire

import (
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestParseRFC3339(t *testing.T) {
	good := []string{
		"2026-11-11T00:00:03+08:00",
		"2026-11-11T00:00:03.250+08:00",
		"2026-11-10T16:00:03.25Z",
		"2026-11-10t16:00:03z",
		"2024-02-29T23:59:59.999999999-12:00",
		"1970-01-01T00:00:00Z",
		"1969-12-31T23:59:59.5Z",
		"1678-01-01T00:00:00Z",
		"2262-04-11T23:47:16.854775807Z",
		"2026-11-11T00:00:03.1234567891234+08:00",
		"2026-06-01T12:00:00+05:45",
	}
	for _, s := range good {
		ns, ok := parseRFC3339(s)
		if !ok {
			t.Errorf("parseRFC3339(%q) failed", s)
			continue
		}
		norm := strings.NewReplacer("t", "T", "z", "Z").Replace(s)
		tt, err := time.Parse(time.RFC3339Nano, norm)
		if err != nil {
			t.Fatalf("time.Parse(%q): %v", norm, err)
		}
		if tt.UnixNano() != ns {
			t.Errorf("parseRFC3339(%q) = %d, time.Parse says %d", s, ns, tt.UnixNano())
		}
	}
	bad := []string{
		"", "2026-11-11", "2026-11-11T00:00:03", "2026-11-11T00:00:03.250",
		"2026-11-11 00:00:03Z", "2026-11-11T00:00:03+0800", "2026-11-11T00:00:03+08",
		"2026-11-11T00:00:03.Z", "2026-11-11T00:00:03,5Z", "2026-13-11T00:00:03Z",
		"2026-00-11T00:00:03Z", "2026-11-00T00:00:03Z", "2026-11-31T00:00:03Z",
		"2025-02-29T00:00:03Z", "2100-02-29T00:00:03Z", "2026-11-11T24:00:00Z",
		"2026-11-11T00:60:00Z", "2026-11-11T00:00:60Z", "2026-11-11T00:00:03+24:00",
		"2026-11-11T00:00:03+08:60", "2026-11-11T00:00:03Z ", " 2026-11-11T00:00:03Z",
		"2026-11-11T00:00:03ZZ", "+2026-11-11T00:00:03Z", "2026-1-11T00:00:03Z",
		"1677-01-01T00:00:00Z", "2263-01-01T00:00:00Z", "9999-12-31T23:59:59Z",
		"2026-11-11T00:00:03.250+08:00\x00", "２026-11-11T00:00:03Z",
	}
	for _, s := range bad {
		if ns, ok := parseRFC3339(s); ok {
			t.Errorf("parseRFC3339(%q) = %d, want failure", s, ns)
		}
	}
}

// FuzzParseRFC3339 checks parseRFC3339 against time.Parse: whatever one
// accepts (in the int64 nanosecond range, with T and Z in upper case and
// at most nine fraction digits) the other accepts with the same instant.
func FuzzParseRFC3339(f *testing.F) {
	for _, s := range []string{"2026-11-11T00:00:03.250+08:00", "2026-11-10T16:00:03Z", "2024-02-29T23:59:59.999999999-12:00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ns, ok := parseRFC3339(s)
		tt, err := time.Parse(time.RFC3339Nano, s)
		if ok {
			if strings.ContainsAny(s, "tz") {
				return // RFC 3339 allows lower case; time.Parse does not
			}
			if err != nil {
				t.Fatalf("parseRFC3339 accepts %q, time.Parse: %v", s, err)
			}
			if tt.UnixNano() != ns && !longFraction(s) {
				t.Fatalf("%q: %d vs time.Parse %d", s, ns, tt.UnixNano())
			}
			return
		}
		// time.Parse is laxer (one-digit hours, for one); compare only on
		// strings of RFC 3339's shape.
		if err == nil && rfc3339Shape.MatchString(s) && tt.Year() >= 1678 && tt.Year() <= 2261 {
			t.Fatalf("time.Parse accepts %q (%v), parseRFC3339 does not", s, tt)
		}
	})
}

var rfc3339Shape = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)$`)

func longFraction(s string) bool {
	i := strings.IndexByte(s, '.')
	if i < 0 {
		return false
	}
	n := 0
	for _, c := range s[i+1:] {
		if c < '0' || c > '9' {
			break
		}
		n++
	}
	return n > 9
}

// TestAppendTime checks appendTime against time.Time.AppendFormat.
func TestAppendTime(t *testing.T) {
	shanghai, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		shanghai = time.FixedZone("CST", 8*3600)
	}
	locs := []*time.Location{nil, time.UTC, shanghai, time.FixedZone("", -5*3600),
		time.FixedZone("", 5*3600+45*60), time.FixedZone("", -30), time.FixedZone("", 8*3600+343),
		time.FixedZone("", -(9*3600 + 30*60))}
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 20000; i++ {
		tt := time.Unix(0, r.Int64N(1<<62)-1<<61)
		if i%10 == 0 {
			tt = time.Unix(r.Int64N(1<<40)-1<<39, r.Int64N(1e9)) // outside 0..9999 too
		}
		loc := locs[i%len(locs)]
		want := tt.In(time.UTC).AppendFormat(nil, TimeLayout)
		if loc != nil {
			want = tt.In(loc).AppendFormat(nil, TimeLayout)
		}
		if got := appendTime(nil, tt, loc); string(got) != string(want) {
			t.Fatalf("appendTime(%v, %v) = %s, want %s", tt, loc, got, want)
		}
	}
}
