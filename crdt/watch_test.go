package crdt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
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

// TestMergeAndAddKeepNoneOfTheirEvents: the caller of a merge or an add
// may reuse the memory of the events it handed in, decoded in place or
// sealed into a buffer, as soon as the call returns: the set and its
// watches hold copies.
func TestMergeAndAddKeepNoneOfTheirEvents(t *testing.T) {
	eachBackend(t, func(t *testing.T, open func(testing.TB) *Set) {
		ctx := context.Background()
		s := open(t)
		w := s.Watch(0)
		defer w.Close()
		batch := fixture.New(11, 2).Batch(100)
		data, err := events.EncodeBatch(batch)
		if err != nil {
			t.Fatal(err)
		}
		var scratch []byte
		xs, err := events.DefaultLimits.AppendBatchInPlace(nil, data, &scratch)
		if err != nil {
			t.Fatal(err)
		}
		// Two of them twice: a record the backend holds already.
		if n, err := s.MergeEncoded(ctx, append(xs, xs[:2]...)); err != nil || n != len(batch) {
			t.Fatalf("MergeEncoded = %d, %v", n, err)
		}
		clear(scratch[:cap(scratch)])
		clear(data)
		for i, want := range batch {
			got, err := w.Next(ctx)
			if err != nil || events.Verify(got) != nil {
				t.Fatalf("watched event %d: %+v, %v", i, got, err)
			}
			if stored, err := s.Get(ctx, want.ID); err != nil || events.Verify(stored) != nil {
				t.Fatalf("stored event %d: %+v, %v", i, stored, err)
			}
		}

		// Events added one at a time, each sealed into the same buffer,
		// one of them twice.
		added := fixture.New(12, 2).Batch(10)
		var buf []byte
		for _, e := range append(added, added[0]) {
			var x events.Encoded
			if buf, x, err = events.DefaultLimits.AppendSealEncoded(buf[:0], e); err != nil {
				t.Fatal(err)
			}
			if _, err := s.AddEncoded(ctx, x); err != nil {
				t.Fatal(err)
			}
			clear(buf)
		}
		for i, want := range added {
			got, err := w.NextEncoded(ctx)
			if err != nil || !bytes.Equal(got.Wire(), marshal(t, want)) {
				t.Fatalf("watched added event %d: %v, or its wire form changed", i, err)
			}
			if stored, err := s.Get(ctx, want.ID); err != nil || events.Verify(stored) != nil {
				t.Fatalf("stored added event %d: %+v, %v", i, stored, err)
			}
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

// TestWatchAvailable checks that Available takes what the Watch holds,
// up to max, without waiting; then the pending gap; then ErrClosed.
func TestWatchAvailable(t *testing.T) {
	ctx := context.Background()
	s := newMemorySet(t)
	w := s.Watch(4)
	g := fixture.New(12, 1)
	if xs, err := w.Available(nil, 0); len(xs) != 0 || err != nil {
		t.Fatalf("Available on an empty Watch = %d events, %v; want none, nil", len(xs), err)
	}
	kept, dropped := g.Batch(4), g.Batch(2)
	for _, e := range append(kept, dropped...) {
		if _, err := s.Add(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	xs, err := w.Available(nil, 3)
	if err != nil || len(xs) != 3 {
		t.Fatalf("Available(3) = %d events, %v; want 3", len(xs), err)
	}
	if xs, err = w.Available(xs, 0); err != nil || len(xs) != 4 {
		t.Fatalf("Available(0) appended to %d events, %v; want 4 in all", len(xs), err)
	}
	for i, x := range xs {
		if x.Event().ID != kept[i].ID {
			t.Fatalf("event %d is %v, want %v", i, x.Event().ID, kept[i].ID)
		}
	}
	var gap *GapError
	if xs, err := w.Available(nil, 0); len(xs) != 0 || !errors.As(err, &gap) || gap.Dropped != len(dropped) {
		t.Fatalf("Available after the buffered events = %d events, %v; want the gap of %d", len(xs), err, len(dropped))
	}
	w.Close()
	if _, err := s.Add(ctx, g.Next()); err != nil {
		t.Fatal(err)
	}
	if xs, err := w.Available(nil, 0); len(xs) != 0 || !errors.Is(err, ErrClosed) {
		t.Fatalf("Available after Close = %d events, %v; want none, ErrClosed", len(xs), err)
	}
}

// TestWatchesComeAndGoWhileWriting opens and closes watches while a writer
// adds events: a watch open through all of them sees each, and a closed one
// takes nothing after Close, though it still hands over what it held (go
// test -race checks the list's copies).
func TestWatchesComeAndGoWhileWriting(t *testing.T) {
	ctx := context.Background()
	s := newMemorySet(t)
	g := fixture.New(13, 2)
	evs := g.Batch(2000)
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			w := s.Watch(0)
			w.Close()
			if _, err := w.Available(nil, 0); err != nil && !errors.Is(err, ErrClosed) {
				done <- err
				return
			}
			if xs, err := w.Available(nil, 0); len(xs) != 0 || !errors.Is(err, ErrClosed) {
				done <- fmt.Errorf("a closed watch took %d events after Close, %v", len(xs), err)
				return
			}
		}
	}()
	steady := s.Watch(len(evs))
	defer steady.Close()
	for _, e := range evs {
		if _, err := s.Add(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	xs, err := steady.Available(nil, 0)
	if err != nil || len(xs) != len(evs) {
		t.Fatalf("the steady watch took %d events, %v; want %d", len(xs), err, len(evs))
	}
}

// marshal returns e's wire form.
func marshal(t *testing.T, e events.Event) []byte {
	t.Helper()
	data, err := events.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestGapBelowTheHorizonSaysSo: a gap whose dropped events have begun to
// expire by the time the reader learns of it says so.
func TestGapBelowTheHorizonSaysSo(t *testing.T) {
	ctx := context.Background()
	s := newMemorySet(t)
	w := s.Watch(2)
	defer w.Close()
	g := fixture.New(12, 1)
	all := g.Batch(6)
	for _, e := range all {
		if _, err := s.Add(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.Expire(ctx, KeyOf(all[4]), 0); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := w.Next(ctx); err != nil {
			t.Fatal(err)
		}
	}
	_, err := w.Next(ctx)
	var gap *GapError
	if !errors.As(err, &gap) || !gap.Expired || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("a gap reaching below the horizon: %v, want one that says some expired", err)
	}
}
