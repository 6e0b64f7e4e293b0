package wire

import "time"

// parseRFC3339 parses an RFC 3339 date-time with a mandatory offset
// ("Z" or ±HH:MM) and optional fraction of any length (digits after the
// ninth are truncated) into Unix nanoseconds, without allocating. "T" and
// "Z" may be lower case (RFC 3339 §5.6). The second must be 00..59 (no
// leap second, like time.Parse). ok is false for anything else, including
// instants outside the int64 nanosecond range (1677-09-21 to 2262-04-11).
//
// time.Parse would do, but allocates for its error values and is several
// times slower; it runs on every event's at (and every order.delivered's
// sign-off), and the result is only ever needed as nanoseconds. The
// fuzz test FuzzParseRFC3339 holds it to time.Parse's answers.
func parseRFC3339(s string) (ns int64, ok bool) {
	// 2006-01-02T15:04:05Z is the shortest form.
	if len(s) < 20 || s[4] != '-' || s[7] != '-' || s[13] != ':' || s[16] != ':' {
		return 0, false
	}
	if s[10] != 'T' && s[10] != 't' {
		return 0, false
	}
	year, ok1 := num(s[0:4])
	month, ok2 := num(s[5:7])
	day, ok3 := num(s[8:10])
	hour, ok4 := num(s[11:13])
	minute, ok5 := num(s[14:16])
	sec, ok6 := num(s[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) {
		return 0, false
	}
	if month < 1 || month > 12 || day < 1 || day > daysIn(year, month) ||
		hour > 23 || minute > 59 || sec > 59 {
		return 0, false
	}
	i := 19
	var frac int64
	if s[i] == '.' {
		i++
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			if i-start < 9 {
				frac = frac*10 + int64(s[i]-'0')
			}
			i++
		}
		n := i - start
		if n == 0 {
			return 0, false
		}
		for ; n < 9; n++ {
			frac *= 10
		}
	}
	if i >= len(s) {
		return 0, false
	}
	var off int64
	switch s[i] {
	case 'Z', 'z':
		i++
	case '+', '-':
		if len(s)-i != 6 || s[i+3] != ':' {
			return 0, false
		}
		oh, okh := num(s[i+1 : i+3])
		om, okm := num(s[i+4 : i+6])
		if !okh || !okm || oh > 23 || om > 59 {
			return 0, false
		}
		off = int64(oh*3600 + om*60)
		if s[i] == '-' {
			off = -off
		}
		i += 6
	default:
		return 0, false
	}
	if i != len(s) {
		return 0, false
	}
	secs := daysFromCivil(year, month, day)*86400 + int64(hour*3600+minute*60+sec) - off
	// The int64 nanosecond range is [-9223372037s + 145224192ns,
	// 9223372036s + 854775807ns].
	switch {
	case secs < -9223372037 || secs > 9223372036,
		secs == -9223372037 && frac < 145224192,
		secs == 9223372036 && frac > 854775807:
		return 0, false
	case secs < 0:
		return (secs+1)*1e9 + frac - 1e9, true
	}
	return secs*1e9 + frac, true
}

// num parses a fixed-width run of ASCII digits. Fixed width is RFC
// 3339's rule: "2026-1-1" is not a date there, and must not be one here.
func num(s string) (int, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// daysIn returns the days of a month in the proleptic Gregorian calendar,
// so that 2026-02-29 is refused as time.Parse refuses it, rather than
// normalised into March 1st.
func daysIn(year, month int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil returns the days since 1970-01-01 of a proleptic Gregorian
// date (H. Hinnant's algorithm).
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era--
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}

// TimeLayout is the layout of every time the daemon writes (window_start,
// window_end, decided_at, clock ticks): RFC 3339 with millisecond
// precision and the zone's offset ("Z" in UTC).
const TimeLayout = "2006-01-02T15:04:05.000Z07:00"

// appendTime appends t in loc (UTC when nil) in [TimeLayout]; it writes
// the same bytes as t.In(loc).AppendFormat(dst, TimeLayout), in a third of
// the time.
func appendTime(dst []byte, t time.Time, loc *time.Location) []byte {
	if loc == nil {
		loc = time.UTC
	}
	t = t.In(loc)
	year, month, day := t.Date()
	// The fast path writes four-digit years only; anything else is so
	// rare (a test's extreme value) that the library's formatting is fine.
	if year < 0 || year > 9999 {
		return t.AppendFormat(dst, TimeLayout)
	}
	hour, minute, sec := t.Clock()
	ms := t.Nanosecond() / 1e6
	dst = append(dst,
		byte('0'+year/1000), byte('0'+year/100%10), byte('0'+year/10%10), byte('0'+year%10), '-',
		byte('0'+int(month)/10), byte('0'+int(month)%10), '-',
		byte('0'+day/10), byte('0'+day%10), 'T',
		byte('0'+hour/10), byte('0'+hour%10), ':',
		byte('0'+minute/10), byte('0'+minute%10), ':',
		byte('0'+sec/10), byte('0'+sec%10), '.',
		byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10))
	_, off := t.Zone()
	if off == 0 {
		return append(dst, 'Z')
	}
	// As time's "Z07:00": whole minutes, sign of the minutes.
	zone := off / 60
	sign := byte('+')
	if zone < 0 {
		sign, zone = '-', -zone
	}
	h, m := zone/60, zone%60
	if h > 99 {
		return t.AppendFormat(dst[:len(dst)-23], TimeLayout)
	}
	return append(dst, sign, byte('0'+h/10), byte('0'+h%10), ':', byte('0'+m/10), byte('0'+m%10))
}
