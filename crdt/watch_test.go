package crdt

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/internal/fixture"
)

func TestWatchDeliversEachNewEventOnce(t *testing.T) {
	eachBackend(t, func(t *testing.T, open func(testing.TB) *Set) {
		ctx := context.Background()
		s := open(t)
		w := s.Watch(0)
		defer w.Close()
		g := fixture.New(10, 2)
		batch := g.Batch(100)
		added, err := s.Merge(ctx, batch)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Merge(ctx, batch[:50]); err != nil { // duplicates: no news
			t.Fatal(err)
		}
		last := g.Next()
		if _, err := s.Add(ctx, last); err != nil {
			t.Fatal(err)
		}
		seen := map[events.ID]bool{}
		for i := range 101 {
			e, err := w.Next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			// The ring grows past its first 64 slots here: order must survive.
			if i < len(added) && e.ID != added[i].ID {
				t.Fatalf("event %d delivered out of order", i)
			}
			if seen[e.ID] {
				t.Fatalf("event %v delivered twice", e.ID)
			}
			seen[e.ID] = true
		}
		if !seen[last.ID] {
			t.Fatal("the last event was not delivered")
		}
		short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		defer cancel()
		if e, err := w.Next(short); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Next with nothing new = %v, %v; want a deadline error", e.ID, err)
		}
	})
}

func TestWatchReportsGapToSlowReader(t *testing.T) {
	eachBackend(t, func(t *testing.T, open func(testing.TB) *Set) {
		ctx := context.Background()
		s := open(t)
		w := s.Watch(4)
		defer w.Close()
		g := fixture.New(11, 1)
		first := g.Batch(4)
		if _, err := s.Merge(ctx, first); err != nil {
			t.Fatal(err)
		}
		dropped := g.Batch(6)
		for _, e := range dropped { // one Merge per event: the writer never waits
			if _, err := s.Add(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		for i := range first {
			e, err := w.Next(ctx)
			if err != nil || e.ID != first[i].ID {
				t.Fatalf("Next %d = %v, %v; want the buffered event %v", i, e.ID, err, first[i].ID)
			}
		}
		_, err := w.Next(ctx)
		var gap *GapError
		if !errors.As(err, &gap) || !errors.Is(err, ErrGap) {
			t.Fatalf("Next after overflow = %v, want a *GapError", err)
		}
		if gap.Dropped != len(dropped) || gap.From != KeyOf(dropped[0]) {
			t.Fatalf("gap = %+v, want %d dropped from %v", gap, len(dropped), KeyOf(dropped[0]))
		}
		// Recovery: scanning from the gap finds every dropped event.
		recovered := scanAll(t, s, Range{From: gap.From, To: MaxKey}, false)
		if !sameIDs(recovered, dropped) {
			t.Fatalf("scan from the gap found %d events, want the %d dropped", len(recovered), len(dropped))
		}
		// Delivery resumes after the gap.
		after := g.Next()
		if _, err := s.Add(ctx, after); err != nil {
			t.Fatal(err)
		}
		if e, err := w.Next(ctx); err != nil || e.ID != after.ID {
			t.Fatalf("Next after the gap = %v, %v; want %v", e.ID, err, after.ID)
		}
	})
}

func TestWatchCloseUnblocksNext(t *testing.T) {
	eachBackend(t, func(t *testing.T, open func(testing.TB) *Set) {
		s := open(t)
		w := s.Watch(0)
		w2 := s.Watch(0)
		done := make(chan error, 2)
		go func() { _, err := w.Next(context.Background()); done <- err }()
		go func() { _, err := w2.Next(context.Background()); done <- err }()
		w.Close()
		s.Close() // closes w2 too
		for range 2 {
			if err := <-done; !errors.Is(err, ErrClosed) {
				t.Fatalf("blocked Next returned %v, want ErrClosed", err)
			}
		}
		if _, err := s.Watch(0).Next(context.Background()); !errors.Is(err, ErrClosed) {
			t.Fatalf("Next on a Watch of a closed set = %v, want ErrClosed", err)
		}
	})
}

// TestWatchNodeTakesOneOrigin merges events of three nodes and checks that
// a WatchNode delivers exactly those of its node, in the order added, and
// that a later event of another node is not delivered.
func TestWatchNodeTakesOneOrigin(t *testing.T) {
	eachBackend(t, func(t *testing.T, open func(testing.TB) *Set) {
		ctx := context.Background()
		s := open(t)
		g := fixture.New(11, 3)
		node := g.Nodes()[1]
		w := s.WatchNode(0, node)
		defer w.Close()
		added, err := s.Merge(ctx, g.Batch(300))
		if err != nil {
			t.Fatal(err)
		}
		var want []events.ID
		for _, e := range added {
			if e.Node == node {
				want = append(want, e.ID)
			}
		}
		if len(want) == 0 || len(want) == len(added) {
			t.Fatalf("%d of %d events are the node's: the test needs some of each", len(want), len(added))
		}
		for i, id := range want {
			e, err := w.Next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if e.ID != id {
				t.Fatalf("event %d: got %v from %s, want %v", i, e.ID, e.Node, id)
			}
		}
		for {
			e := g.Next()
			if e.Node == node {
				continue
			}
			if _, err := s.Add(ctx, e); err != nil {
				t.Fatal(err)
			}
			break
		}
		short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		defer cancel()
		if e, err := w.Next(short); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Next after another node's event = %v from %s, %v; want a deadline error", e.ID, e.Node, err)
		}
	})
}
