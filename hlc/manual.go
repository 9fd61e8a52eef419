package hlc

import (
	"sync/atomic"
	"time"
)

// ManualClock is a WallClock that moves only when told to. It is meant for
// tests and is safe for concurrent use.
type ManualClock struct {
	nanos atomic.Int64
}

var _ WallClock = (*ManualClock)(nil)

// NewManualClock returns a ManualClock reading start.
func NewManualClock(start time.Time) *ManualClock {
	m := &ManualClock{}
	m.Set(start)
	return m
}

// Now returns the clock's current reading.
func (m *ManualClock) Now() time.Time { return time.Unix(0, m.nanos.Load()) }

// Set moves the clock to t, backwards if t is earlier.
func (m *ManualClock) Set(t time.Time) { m.nanos.Store(t.UnixNano()) }

// Advance moves the clock by d, backwards if d is negative.
func (m *ManualClock) Advance(d time.Duration) { m.nanos.Add(int64(d)) }
