package hlc

import (
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
	"time"
)

var epoch = time.Unix(0, 1_700_000_000_000_000_000)

func newTestClock(t *testing.T, cfg Config) (*Clock, *ManualClock) {
	t.Helper()
	m := NewManualClock(epoch)
	cfg.WallClock = m
	c, err := NewClock(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c, m
}

// TestClockSendRecv walks the send (Now) and receive (Update) rules through
// a table, in the style of CockroachDB's TestHLCClock.
func TestClockSendRecv(t *testing.T) {
	c, m := newTestClock(t, Config{MaxOffset: time.Second})
	w := epoch.UnixNano()
	steps := []struct {
		physical int64     // the manual clock's reading before the step
		recv     Timestamp // zero: a send (Now); otherwise a receive (Update) then a send
		want     Timestamp // what Now returns
	}{
		{w + 5, Timestamp{}, Timestamp{w + 5, 0}},                         // physical time leads
		{w + 5, Timestamp{}, Timestamp{w + 5, 1}},                         // same tick: logical counts
		{w + 6, Timestamp{}, Timestamp{w + 6, 0}},                         // time moves: logical resets
		{w + 10, Timestamp{w + 10, 5}, Timestamp{w + 10, 6}},              // remote ahead on logical
		{w + 10, Timestamp{w + 5, 100}, Timestamp{w + 10, 7}},             // stale remote: ignored
		{w + 10, Timestamp{w + 20, 3}, Timestamp{w + 20, 4}},              // remote ahead on wall
		{w + 15, Timestamp{}, Timestamp{w + 20, 5}},                       // physical still behind
		{w + 25, Timestamp{}, Timestamp{w + 25, 0}},                       // physical overtakes
		{w + 3, Timestamp{}, Timestamp{w + 25, 1}},                        // physical goes backwards
		{w + 3, Timestamp{w + 25, 1}, Timestamp{w + 25, 2}},               // equal remote
		{w + 30, Timestamp{w + 30, math.MaxUint32}, Timestamp{w + 31, 0}}, // carry, never wrap
	}
	for i, s := range steps {
		m.Set(time.Unix(0, s.physical))
		if !s.recv.IsZero() {
			if err := c.Update(s.recv); err != nil {
				t.Fatalf("step %d: Update(%v): %v", i, s.recv, err)
			}
		}
		if got := c.Now(); got != s.want {
			t.Fatalf("step %d: Now() = %v, want %v", i, got, s.want)
		}
	}
}

func TestClockStrictlyIncreasingConcurrent(t *testing.T) {
	c, err := NewClock(Config{})
	if err != nil {
		t.Fatal(err)
	}
	const goroutines, each = 32, 2000
	results := make([][]Timestamp, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ts := make([]Timestamp, each)
			for i := range ts {
				ts[i] = c.Now()
			}
			results[g] = ts
		}()
	}
	wg.Wait()
	seen := make(map[Timestamp]bool, goroutines*each)
	for g, ts := range results {
		for i, x := range ts {
			if i > 0 && !ts[i-1].Less(x) {
				t.Fatalf("goroutine %d: %v then %v", g, ts[i-1], x)
			}
			if seen[x] {
				t.Fatalf("timestamp %v issued twice", x)
			}
			seen[x] = true
		}
	}
}

func TestClockManyInOneTick(t *testing.T) {
	c, _ := newTestClock(t, Config{})
	prev := c.Now()
	for range 70_000 {
		next := c.Now()
		if !prev.Less(next) {
			t.Fatalf("%v then %v", prev, next)
		}
		prev = next
	}
	if want := (Timestamp{epoch.UnixNano(), 70_000}); prev != want {
		t.Fatalf("after 70,001 calls in one tick: %v, want %v", prev, want)
	}
}

func TestClockOffsetBound(t *testing.T) {
	const maxOffset = 250 * time.Millisecond
	c, _ := newTestClock(t, Config{MaxOffset: maxOffset})
	before := c.Now()
	beyond := Timestamp{Wall: epoch.UnixNano() + int64(maxOffset) + 1}
	if err := c.Update(beyond); !errors.Is(err, ErrClockOffset) {
		t.Fatalf("Update(+MaxOffset+1ns) = %v, want ErrClockOffset", err)
	}
	if got := c.Now(); got != (Timestamp{before.Wall, before.Logical + 1}) {
		t.Fatalf("clock moved after a rejected update: %v after %v", got, before)
	}
	at := Timestamp{Wall: epoch.UnixNano() + int64(maxOffset), Logical: 9}
	if err := c.Update(at); err != nil {
		t.Fatalf("Update(+MaxOffset) = %v, want nil", err)
	}
	if got := c.Now(); !at.Less(got) {
		t.Fatalf("Now() = %v, not after accepted remote %v", got, at)
	}
}

func TestClockDefaultsAndConfigErrors(t *testing.T) {
	c, err := NewClock(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxOffset() != DefaultMaxOffset {
		t.Errorf("MaxOffset() = %v, want %v", c.MaxOffset(), DefaultMaxOffset)
	}
	if now, phys := c.Now(), time.Now().UnixNano(); now.Wall > phys || phys-now.Wall > int64(time.Minute) {
		t.Errorf("system clock: Now() = %v, physical %d", now, phys)
	}
	_, err = NewClock(Config{MaxOffset: -1, PersistAhead: -1, LastUpper: -1})
	for _, field := range []string{"MaxOffset", "PersistAhead", "LastUpper"} {
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("NewClock with bad %s: error %v does not name it", field, err)
		}
	}
}

// store is a Persist target that can be told to fail.
type store struct {
	mu     sync.Mutex
	upper  int64
	writes int
	fail   error
}

func (s *store) persist(upper int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	s.upper = upper
	s.writes++
	return nil
}

func TestClockPersistBound(t *testing.T) {
	st := &store{}
	c, m := newTestClock(t, Config{Persist: st.persist, PersistAhead: time.Second})
	if st.upper != epoch.UnixNano()+int64(time.Second) {
		t.Fatalf("NewClock persisted %d, want physical+1s", st.upper)
	}
	var last Timestamp
	for range 100 {
		m.Advance(100 * time.Millisecond)
		last = c.Now()
		if last.Wall > st.upper {
			t.Fatalf("issued %v beyond persisted bound %d", last, st.upper)
		}
	}
	// 10s of time with a 1s window: about one write per second, not per call.
	if st.writes < 5 || st.writes > 15 {
		t.Errorf("%d Persist calls over 10s with a 1s window", st.writes)
	}

	// Restart with the physical clock set back by a minute.
	m.Advance(-time.Minute)
	c2, err := NewClock(Config{WallClock: m, Persist: st.persist, LastUpper: st.upper})
	if err != nil {
		t.Fatal(err)
	}
	if first := c2.Now(); !last.Less(first) {
		t.Fatalf("after restart Now() = %v, not after %v issued before", first, last)
	}
}

func TestClockPersistFailure(t *testing.T) {
	st := &store{}
	c, m := newTestClock(t, Config{Persist: st.persist, PersistAhead: time.Second})
	bound := st.upper
	st.fail = errors.New("disk full")

	m.Advance(5 * time.Second) // beyond the bound: the clock must hold at it
	prev := c.Now()
	if prev.Wall != bound {
		t.Fatalf("Now() = %v with failing Persist, want wall %d (the bound)", prev, bound)
	}
	if err := c.Err(); !errors.Is(err, ErrPersist) {
		t.Fatalf("Err() = %v, want ErrPersist", err)
	}
	if next, err := c.Stamp(); !prev.Less(next) || next.Wall > bound || !errors.Is(err, ErrPersist) {
		t.Fatalf("Stamp() = %v, %v after %v; want a later time within the bound, and ErrPersist", next, err, prev)
	}
	for range 1000 {
		next := c.Now()
		if !prev.Less(next) || next.Wall > bound {
			t.Fatalf("%v then %v (bound %d)", prev, next, bound)
		}
		prev = next
	}
	if err := c.Update(Timestamp{Wall: bound + 1}); !errors.Is(err, ErrPersist) {
		t.Fatalf("Update beyond the bound with failing Persist = %v, want ErrPersist", err)
	}
	if got := c.Last(); got != prev {
		t.Fatalf("failed Update changed the clock: %v, want %v", got, prev)
	}

	st.fail = nil
	if next := c.Now(); next.Wall != m.Now().UnixNano() || c.Err() != nil {
		t.Fatalf("after recovery Now() = %v, Err() = %v", next, c.Err())
	}
	if next, err := c.Stamp(); err != nil || next.Wall != m.Now().UnixNano() {
		t.Fatalf("after recovery Stamp() = %v, %v", next, err)
	}

	st.fail = errors.New("read-only")
	if _, err := NewClock(Config{WallClock: m, Persist: st.persist}); !errors.Is(err, ErrPersist) {
		t.Fatalf("NewClock with failing Persist = %v, want ErrPersist", err)
	}
}

func BenchmarkNow(b *testing.B) {
	c, _ := NewClock(Config{})
	b.Run("serial", func(b *testing.B) {
		for b.Loop() {
			c.Now()
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				c.Now()
			}
		})
	})
}

func BenchmarkUpdate(b *testing.B) {
	c, _ := NewClock(Config{})
	remote := c.Now()
	b.Run("serial", func(b *testing.B) {
		for b.Loop() {
			remote.Logical++
			_ = c.Update(remote)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			r := remote
			for pb.Next() {
				r.Logical++
				_ = c.Update(r)
			}
		})
	})
}

// TestClockRestartsDoNotRatchet restarts a clock many times within one
// persist window: each restart must come after everything issued before,
// and the clock must stay within PersistAhead of physical time rather than
// gaining a window per restart.
func TestClockRestartsDoNotRatchet(t *testing.T) {
	st := &store{}
	m := NewManualClock(epoch)
	var last Timestamp
	for restart := range 20 {
		c, err := NewClock(Config{WallClock: m, Persist: st.persist, LastUpper: st.upper, PersistAhead: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		ts := c.Now()
		if !last.Less(ts) {
			t.Fatalf("restart %d: %v is not after %v", restart, ts, last)
		}
		if lead := time.Duration(ts.Wall - m.Now().UnixNano()); lead > time.Second {
			t.Fatalf("restart %d: the clock runs %v ahead of physical time", restart, lead)
		}
		last = ts
		m.Advance(time.Millisecond)
	}
}
