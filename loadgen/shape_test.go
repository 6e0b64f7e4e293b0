package loadgen

import (
	"math"
	"testing"
	"time"
)

func TestScheduleShapes(t *testing.T) {
	count := func(s Shape) (n int, last time.Duration) {
		sch := schedule{shape: s}
		for {
			off, ok := sch.next()
			if !ok {
				return n, last
			}
			if off < last {
				t.Fatalf("%s: offsets go back: %v after %v", s.Name(), off, last)
			}
			n, last = n+1, off
		}
	}
	if n, _ := count(Steady{EventsPerSec: 1000, Duration: 10 * time.Second}); n < 9999 || n > 10001 {
		t.Errorf("steady 1000/s for 10s: %d events", n)
	}
	d := Double11{Base: 100, Peak: 1000, Duration: 100 * time.Second}.withDefaults()
	if r := d.Rate(d.Ramp + d.Hold/2); r != 1000 {
		t.Errorf("double11 at the hold: rate %v, want the peak", r)
	}
	if r := d.Rate(d.Ramp / 2); math.Abs(r-550) > 1 {
		t.Errorf("double11 half-way up the ramp: rate %v, want 550", r)
	}
	if r := d.Rate(99 * time.Second); r < 100 || r > 110 {
		t.Errorf("double11 at the end: rate %v, want back near the base", r)
	}
	// integral: ramp 5s avg 550 + hold 10s at 1000 + decay 85s
	tail := 85.0
	want := 5*550.0 + 10*1000.0 + 100*tail + 900*15*(1-math.Exp(-tail/15))
	if n, _ := count(d); math.Abs(float64(n)-want)/want > 0.01 {
		t.Errorf("double11: %d events, want %.0f±1%%", n, want)
	}
	st := Step{Start: 100, Increment: 100, StepDuration: time.Second, MaxSteps: 3}
	if n, _ := count(st); n < 599 || n > 601 {
		t.Errorf("step 100,200,300 for 1s each: %d events", n)
	}
}
