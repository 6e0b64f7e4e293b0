package core

import "time"

// Calendar rules (the 7-day window, service hours) are computed in the
// shoppers' zone from the event's own time. None of this reads the clock
// or loads a zone: the caller hands the zone in Env.Loc.

const (
	nsPerMinute = int64(time.Minute)
	nsPerDay    = int64(24 * time.Hour)
)

// local returns the event time at (Unix ns) in loc (UTC when nil).
func local(at int64, loc *time.Location) time.Time {
	if loc == nil {
		loc = time.UTC
	}
	return time.Unix(0, at).In(loc)
}

// civilDay numbers the local calendar day of at: days since 1970-01-01
// (so differences are day counts whatever the zone's offset or DST).
// Midnight UTC of a date is a whole number of days after the epoch, so
// the division is exact, before 1970 too.
func civilDay(at int64, loc *time.Location) int64 {
	y, m, d := local(at, loc).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / (nsPerDay / int64(time.Second))
}

// daysSince is the number of local calendar days from the day of from to
// the day of to (0: same day, 1: the next day...).
func daysSince(from, to int64, loc *time.Location) int64 {
	return civilDay(to, loc) - civilDay(from, loc)
}

// PickupWindow returns the pickup window for a request made at (Unix ns)
// for a parcel of the given size under policy p in zone loc (UTC when nil).
// Service hours are [ServiceStartMin, ServiceEndMin) local: a request
// inside them gets a window that starts at the request; a request outside
// them (the end itself is outside) gets one that starts at the next
// service start (today's if before it, else tomorrow's). The window lasts
// SmallWindow or LargeWindow (LargeWindow for SizeLarge, SmallWindow
// otherwise) even when it runs past the end of service hours.
func PickupWindow(at int64, size Size, p *Policy, loc *time.Location) (start, end int64) {
	t := local(at, loc)
	y, mo, d := t.Date()
	hh, mm, ss := t.Clock()
	tod := int64(hh)*int64(time.Hour) + int64(mm)*nsPerMinute + int64(ss)*int64(time.Second) + int64(t.Nanosecond())
	open, closeAt := int64(p.ServiceStartMin)*nsPerMinute, int64(p.ServiceEndMin)*nsPerMinute
	switch {
	case tod >= open && tod < closeAt:
		start = at
	case tod < open:
		start = time.Date(y, mo, d, 0, p.ServiceStartMin, 0, 0, t.Location()).UnixNano()
	default:
		start = time.Date(y, mo, d+1, 0, p.ServiceStartMin, 0, 0, t.Location()).UnixNano()
	}
	w := p.SmallWindow
	if size == SizeLarge {
		w = p.LargeWindow
	}
	return start, start + int64(w)
}
