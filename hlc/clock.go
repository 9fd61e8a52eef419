package hlc

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"time"
)

var (
	// ErrClockOffset reports a remote timestamp whose wall time is more than
	// the clock's MaxOffset ahead of the local physical clock.
	ErrClockOffset = errors.New("hlc: remote clock too far ahead")

	// ErrPersist reports that Config.Persist failed to store a new upper
	// bound. The clock stays correct but holds at the last persisted bound
	// until a later Persist succeeds.
	ErrPersist = errors.New("hlc: persisting the upper bound failed")
)

// Defaults of Config.
const (
	DefaultMaxOffset    = 500 * time.Millisecond
	DefaultPersistAhead = time.Second
)

// WallClock is a source of physical time. It must be safe for concurrent use.
type WallClock interface {
	Now() time.Time
}

// Config configures a Clock. The zero value is a usable configuration.
type Config struct {
	// WallClock is the physical clock. Nil means the system clock.
	WallClock WallClock

	// MaxOffset is the furthest a remote wall time may be ahead of the local
	// physical clock before Update rejects it. Zero means DefaultMaxOffset.
	MaxOffset time.Duration

	// Persist, if set, durably stores an upper bound of the wall times the
	// clock may issue. The clock calls it, with its lock held, before it
	// issues a wall time beyond the last stored bound, and never issues one
	// beyond a bound that was not stored.
	Persist func(upper int64) error

	// LastUpper is the bound last given to Persist before a restart (0 if
	// none). Every timestamp the new clock issues is after every timestamp
	// issued at or below it.
	LastUpper int64

	// PersistAhead is how far beyond the issued wall time each persisted
	// bound lies: a larger value persists less often, and after a restart the
	// clock may run up to this far ahead of physical time. Zero means
	// DefaultPersistAhead.
	PersistAhead time.Duration
}

// Clock is a hybrid logical clock. It is safe for concurrent use; every method
// takes one mutex for a few nanoseconds (longer only while Persist runs).
type Clock struct {
	wall         WallClock
	maxOffset    time.Duration
	persistAhead int64
	persist      func(upper int64) error

	mu struct {
		sync.Mutex
		last  Timestamp // the latest timestamp issued or received
		upper int64     // the persisted bound; last.Wall never exceeds it
		err   error     // the last Persist failure, nil once one succeeds
	}
}

// NewClock returns a clock configured by cfg. With cfg.Persist set, it first
// persists a bound ahead of both physical time and cfg.LastUpper, and fails
// if that fails.
func NewClock(cfg Config) (*Clock, error) {
	var errs []error
	if cfg.MaxOffset < 0 {
		errs = append(errs, fmt.Errorf("hlc: MaxOffset %v is negative", cfg.MaxOffset))
	}
	if cfg.PersistAhead < 0 {
		errs = append(errs, fmt.Errorf("hlc: PersistAhead %v is negative", cfg.PersistAhead))
	}
	if cfg.LastUpper < 0 {
		errs = append(errs, fmt.Errorf("hlc: LastUpper %d is negative", cfg.LastUpper))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	c := &Clock{
		wall:         cfg.WallClock,
		maxOffset:    cfg.MaxOffset,
		persistAhead: int64(cfg.PersistAhead),
		persist:      cfg.Persist,
	}
	if c.wall == nil {
		c.wall = systemClock{}
	}
	if c.maxOffset == 0 {
		c.maxOffset = DefaultMaxOffset
	}
	if c.persistAhead == 0 {
		c.persistAhead = int64(DefaultPersistAhead)
	}
	c.mu.upper = math.MaxInt64
	if cfg.LastUpper > 0 {
		// Everything issued before had a wall time of at most LastUpper.
		c.mu.last = Timestamp{Wall: cfg.LastUpper, Logical: math.MaxUint32}
	}
	if c.persist != nil {
		c.mu.upper = cfg.LastUpper
		if err := c.raiseUpperLocked(max(cfg.LastUpper+1, c.physical())); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Now returns a timestamp after every timestamp this clock issued or
// received before, and not before physical time unless physical time went
// backwards.
//
// If Persist fails, Now keeps issuing increasing timestamps at the persisted
// bound and Err reports the failure. It panics only if 2^32 timestamps were
// issued at that bound while Persist kept failing.
func (c *Clock) Now() Timestamp {
	phys := c.physical()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nowLocked(phys)
}

// Stamp returns Now and Err, read together: a timestamp, and whether the
// clock failed to persist a bound. A caller that refuses timestamps while
// Persist fails takes the clock's lock once rather than twice.
func (c *Clock) Stamp() (Timestamp, error) {
	phys := c.physical()
	c.mu.Lock()
	defer c.mu.Unlock()
	next := c.nowLocked(phys)
	return next, c.mu.err
}

// nowLocked is Now for a physical time read before c.mu was taken.
//
// REQUIRES: c.mu
func (c *Clock) nowLocked(phys int64) Timestamp {
	next := c.mu.last
	switch {
	case phys > next.Wall:
		next = Timestamp{Wall: phys}
	case next.Logical == math.MaxUint32:
		// The logical counter never wraps: it carries into the wall part.
		next = Timestamp{Wall: next.Wall + 1}
	default:
		next.Logical++
	}
	if next.Wall > c.mu.upper {
		next = c.boundLocked(next)
	}
	c.mu.last = next
	return next
}

// boundLocked persists a bound that covers next and returns next, or, if
// Persist fails, the next timestamp within the old bound.
//
// REQUIRES: c.mu
func (c *Clock) boundLocked(next Timestamp) Timestamp {
	if c.raiseUpperLocked(next.Wall) == nil {
		return next
	}
	last := c.mu.last
	switch {
	case last.Wall < c.mu.upper:
		return Timestamp{Wall: c.mu.upper}
	case last.Logical < math.MaxUint32:
		return Timestamp{Wall: last.Wall, Logical: last.Logical + 1}
	}
	panic(fmt.Sprintf("hlc: no timestamp left below the persisted bound %d: %v", c.mu.upper, c.mu.err))
}

// raiseUpperLocked persists a bound that covers wall and lies PersistAhead
// beyond physical time. The lead is measured from physical time, not from
// wall: a clock that resumes from its last bound after a restart (and so
// runs ahead of physical time) would otherwise push each bound, and each
// restart's starting point, another PersistAhead ahead.
//
// REQUIRES: c.mu
func (c *Clock) raiseUpperLocked(wall int64) error {
	upper := max(wall, c.physical()+c.persistAhead)
	if err := c.persist(upper); err != nil {
		c.mu.err = fmt.Errorf("%w: %w", ErrPersist, err)
		return c.mu.err
	}
	c.mu.upper = upper
	c.mu.err = nil
	return nil
}

// Update merges a timestamp received from another node, so that every later
// Now is after it. A remote wall time more than MaxOffset ahead of the local
// physical clock is rejected with an error that matches ErrClockOffset, and
// the clock is left unchanged; exactly MaxOffset ahead is accepted. If the
// remote time lies beyond the persisted bound and persisting a new bound
// fails, Update returns an error matching ErrPersist and changes nothing.
func (c *Clock) Update(remote Timestamp) error {
	phys := c.physical()
	if remote.Wall > phys+int64(c.maxOffset) {
		return fmt.Errorf("%w: remote wall time %d is %v ahead of local %d (max %v)",
			ErrClockOffset, remote.Wall, time.Duration(remote.Wall-phys), phys, c.maxOffset)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.mu.last.Less(remote) {
		return nil
	}
	if remote.Wall > c.mu.upper {
		if err := c.raiseUpperLocked(remote.Wall); err != nil {
			return err
		}
	}
	c.mu.last = remote
	return nil
}

// Last returns the latest timestamp the clock issued or received, without
// issuing a new one.
func (c *Clock) Last() Timestamp {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.last
}

// Err reports the last failure of Persist, or nil if none happened since the
// last success.
func (c *Clock) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.err
}

// MaxOffset returns the furthest a remote wall time may be ahead of local
// physical time.
func (c *Clock) MaxOffset() time.Duration { return c.maxOffset }

// Physical returns the physical clock's reading, in unix nanoseconds.
func (c *Clock) Physical() int64 { return c.physical() }

func (c *Clock) physical() int64 { return c.wall.Now().UnixNano() }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }
