package loadgen

import (
	"fmt"
	"math"
	"time"
)

// Shape is a traffic shape: the offered rate of inbound events at each
// moment of a run. Events are sent on this schedule whatever the system
// under test does (open loop).
type Shape interface {
	// Rate is the offered rate in events per second at elapsed time t.
	Rate(t time.Duration) float64
	// Length is how long the shape offers traffic.
	Length() time.Duration
	// Name is the shape's name in reports.
	Name() string
}

// Steady offers a constant rate.
type Steady struct {
	// EventsPerSec is the offered rate.
	EventsPerSec float64
	// Duration is the run's length.
	Duration time.Duration
}

// Rate implements [Shape].
func (s Steady) Rate(time.Duration) float64 { return s.EventsPerSec }

// Length implements [Shape].
func (s Steady) Length() time.Duration { return s.Duration }

// Name implements [Shape].
func (s Steady) Name() string { return "steady" }

// Double11 is the Singles' Day midnight spike: the rate climbs linearly from
// Base to Peak over Ramp, holds Peak for Hold, then decays exponentially
// back towards Base with time constant Decay.
type Double11 struct {
	// Base and Peak are rates in events per second; Peak >= Base.
	Base, Peak float64
	// Duration is the run's length.
	Duration time.Duration
	// Ramp, Hold and Decay shape the spike; zero values mean 5%, 10% and
	// 15% of Duration (Ramp at least one second).
	Ramp, Hold, Decay time.Duration
}

func (d Double11) withDefaults() Double11 {
	if d.Ramp == 0 {
		d.Ramp = max(d.Duration/20, time.Second)
	}
	if d.Hold == 0 {
		d.Hold = d.Duration / 10
	}
	if d.Decay == 0 {
		d.Decay = max(d.Duration*15/100, time.Millisecond)
	}
	return d
}

// Rate implements [Shape].
func (d Double11) Rate(t time.Duration) float64 {
	d = d.withDefaults()
	switch {
	case t < d.Ramp:
		return d.Base + (d.Peak-d.Base)*float64(t)/float64(d.Ramp)
	case t < d.Ramp+d.Hold:
		return d.Peak
	default:
		return d.Base + (d.Peak-d.Base)*math.Exp(-float64(t-d.Ramp-d.Hold)/float64(d.Decay))
	}
}

// Length implements [Shape].
func (d Double11) Length() time.Duration { return d.Duration }

// Name implements [Shape].
func (d Double11) Name() string { return "double11" }

// Step raises the rate by Increment every StepDuration, starting at Start,
// for at most MaxSteps steps. [Run] stops it early at the first step the
// system cannot sustain and reports the last one it could.
type Step struct {
	// Start and Increment are rates in events per second.
	Start, Increment float64
	// StepDuration is how long each rate is held.
	StepDuration time.Duration
	// MaxSteps bounds the run.
	MaxSteps int
}

// Rate implements [Shape].
func (s Step) Rate(t time.Duration) float64 {
	k := int(t / s.StepDuration)
	k = min(k, s.MaxSteps-1)
	return s.Start + s.Increment*float64(k)
}

// Length implements [Shape].
func (s Step) Length() time.Duration { return s.StepDuration * time.Duration(s.MaxSteps) }

// Name implements [Shape].
func (s Step) Name() string { return "step" }

// validateShape rejects a shape that would send nothing or never end:
// a run must have a last send to drain after.
func validateShape(s Shape) error {
	switch v := s.(type) {
	case Steady:
		if v.EventsPerSec <= 0 || v.Duration <= 0 {
			return fmt.Errorf("loadgen: steady needs a positive rate and duration")
		}
	case Double11:
		if v.Base <= 0 || v.Peak < v.Base || v.Duration <= 0 {
			return fmt.Errorf("loadgen: double11 needs 0 < base <= peak and a positive duration")
		}
	case Step:
		if v.Start <= 0 || v.Increment <= 0 || v.StepDuration <= 0 || v.MaxSteps < 1 {
			return fmt.Errorf("loadgen: step needs positive start, increment, step duration and steps")
		}
	case nil:
		return fmt.Errorf("loadgen: no shape")
	}
	return nil
}

// schedule walks a shape's send times: event n+1 is sent 1/rate after
// event n, with the rate taken at event n's time.
type schedule struct {
	shape Shape
	t     float64 // seconds
}

// next returns the offset of the next send and false once the shape ends.
func (s *schedule) next() (time.Duration, bool) {
	at := time.Duration(s.t * float64(time.Second))
	if at >= s.shape.Length() {
		return 0, false
	}
	r := max(s.shape.Rate(at), 1e-3)
	s.t += 1 / r
	return at, true
}
