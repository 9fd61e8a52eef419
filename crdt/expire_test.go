package crdt

import (
	"context"
	"errors"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-datastore"

	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/internal/fixture"
	"github.com/scopemesh/scopemesh/internal/pebblestore"
)

// eachStore runs test on a set of each backend, and on Pebble, whose
// expiry deletes ranges (Pruner) where a plain datastore's lists and
// deletes each key.
func eachStore(t *testing.T, test func(t *testing.T, open func(testing.TB) *Set)) {
	eachBackend(t, test)
	t.Run("pebble", func(t *testing.T) {
		test(t, func(t testing.TB) *Set {
			ds, err := pebblestore.Open(t.TempDir(), pebblestore.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ds.Close() })
			return newSet(t, ds)
		})
	})
}

// checkAboveHorizon checks that s holds exactly the events of all at or
// above before, through every way of reading it; and, once settled (no
// event below the horizon awaits deletion), counts them by node and kind
// as it should.
func checkAboveHorizon(t *testing.T, s *Set, all []events.Event, before Key, settled bool) {
	t.Helper()
	ctx := context.Background()
	m := model{}
	nodes, kinds := map[string]int{}, map[string]int{}
	traces := map[events.TraceID]int{}
	for _, e := range all {
		if KeyOf(e).Compare(before) >= 0 {
			m[e.ID] = e
			nodes[e.Node]++
			kinds[e.Kind]++
			traces[e.Correlation]++
		}
	}
	want := m.sorted()
	if s.Len() != len(want) {
		t.Fatalf("Len = %d, want %d", s.Len(), len(want))
	}
	var got []events.Event
	if err := s.Scan(ctx, All, false, func(e events.Event) bool { got = append(got, e); return true }); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) || len(got) > 0 && got[0].ID != want[0].ID {
		t.Fatalf("Scan: %d events, want %d", len(got), len(want))
	}
	if fp, wantFP := fingerprint(s, All), naiveFingerprint(want, All); fp != wantFP {
		t.Fatal("the fingerprint of everything counts expired events")
	}
	for node, n := range nodes {
		if c := s.IndexCount(ByNode, node); settled && c != n {
			t.Errorf("IndexCount(node %s) = %d, want %d", node, c, n)
		}
	}
	for kind, n := range kinds {
		if c := s.IndexCount(ByKind, kind); settled && c != n {
			t.Errorf("IndexCount(kind %s) = %d, want %d", kind, c, n)
		}
		found := 0
		err := s.ScanIndex(ctx, ByKind, kind, All, false, func(e events.Event) bool {
			if KeyOf(e).Compare(before) < 0 {
				t.Errorf("ScanIndex by kind gave an expired event %v", e.ID)
			}
			found++
			return true
		})
		if err != nil || found != n {
			t.Fatalf("ScanIndex(kind %s): %d events, %v; want %d", kind, found, err, n)
		}
	}
	for _, e := range all {
		_, err := s.Get(ctx, e.ID)
		switch kept := m[e.ID].ID == e.ID; {
		case kept && err != nil:
			t.Fatalf("Get of a kept event: %v", err)
		case !kept && !errors.Is(err, ErrNotFound):
			t.Fatalf("Get of an expired event: %v, want ErrNotFound", err)
		}
		traced := 0
		err = s.ScanIndex(ctx, ByCorrelation, e.Correlation.String(), All, false, func(x events.Event) bool {
			if KeyOf(x).Compare(before) < 0 {
				t.Errorf("ScanIndex by trace gave an expired event %v", x.ID)
			}
			traced++
			return true
		})
		if err != nil || traced != traces[e.Correlation] {
			t.Fatalf("ScanIndex(trace %v): %d events, %v; want %d", e.Correlation, traced, err, traces[e.Correlation])
		}
	}
}

// TestExpireDropsTraceBuckets: a datastore set deletes a bucket of its
// correlation index once the horizon passes its end, and keeps the others,
// whose expired entries readers skip; with everything expired, nothing of
// the events is left in the store.
func TestExpireDropsTraceBuckets(t *testing.T) {
	stores := map[string]func(testing.TB) datastore.Batching{
		"map": func(testing.TB) datastore.Batching { return newMapStore() },
		"pebble": func(t testing.TB) datastore.Batching {
			ds, err := pebblestore.Open(t.TempDir(), pebblestore.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ds.Close() })
			return ds
		},
	}
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			ds := open(t)
			s, err := New(ctx, ds, Options{TraceBucket: time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			all := fixture.New(17, 3).Batch(3000) // some 7.5 ms
			if _, err := s.Merge(ctx, all); err != nil {
				t.Fatal(err)
			}
			sorted := model(maps.Collect(func(yield func(events.ID, events.Event) bool) {
				for _, e := range all {
					yield(e.ID, e)
				}
			})).sorted()
			before := KeyOf(sorted[1500])
			buckets := func() (ended, left int) {
				for k := range records(t, ds) {
					if strings.HasPrefix(k, bucketPrefix) {
						b, err := parseBucket(k[len(bucketPrefix):])
						if err != nil {
							t.Fatal(err)
						}
						if b.end <= before.Time().Wall {
							ended++
						} else {
							left++
						}
					}
				}
				return ended, left
			}
			if ended, left := buckets(); ended < 2 || left < 2 {
				t.Fatalf("%d buckets end before the horizon to be, %d after; want several of each", ended, left)
			}
			if _, _, err := s.Expire(ctx, before, 0); err != nil {
				t.Fatal(err)
			}
			if ended, left := buckets(); ended != 0 || left < 2 {
				t.Fatalf("after expiry, %d buckets end before the horizon, %d after; want none and several", ended, left)
			}
			for k := range records(t, ds) {
				if !strings.HasPrefix(k, correlationPrefix) {
					continue
				}
				if b, err := parseBucket(strings.Split(k, "/")[2]); err != nil || b.end <= before.Time().Wall {
					t.Fatalf("the store keeps trace index entry %q of an ended bucket (%v)", k, err)
				}
			}
			checkAboveHorizon(t, s, all, before, true)

			if _, _, err := s.Expire(ctx, MaxKey, 0); err != nil {
				t.Fatal(err)
			}
			for k := range records(t, ds) {
				if k != layoutKey.String() && k != horizonKey.String() {
					t.Fatalf("with every event expired, the store holds %q", k)
				}
			}
		})
	}
}

func TestExpireDropsBelowTheHorizon(t *testing.T) {
	eachStore(t, func(t *testing.T, open func(testing.TB) *Set) {
		ctx := context.Background()
		s := open(t)
		all := fixture.New(7, 4).Batch(3000)
		if _, err := s.Merge(ctx, all); err != nil {
			t.Fatal(err)
		}
		model := model{}
		for _, e := range all {
			model[e.ID] = e
		}
		sorted := model.sorted()
		before := KeyOf(sorted[1000])
		n, more, err := s.Expire(ctx, before, 0)
		if err != nil || n != 1000 || more {
			t.Fatalf("Expire = %d, %v, %v; want 1000 deleted and none left", n, more, err)
		}
		if s.Horizon() != before {
			t.Fatalf("horizon %v, want %v", s.Horizon(), before)
		}
		checkAboveHorizon(t, s, all, before, true)

		// What lies below the horizon stays out, whoever offers it.
		added, err := s.Merge(ctx, sorted[:10])
		if err != nil || len(added) != 0 {
			t.Fatalf("merging expired events added %d, %v", len(added), err)
		}
		if _, err := s.Add(ctx, sorted[0]); !errors.Is(err, ErrExpired) {
			t.Fatalf("adding an expired event: %v, want ErrExpired", err)
		}
		if deleted, refused := s.Expired(); deleted != 1000 || refused != 10 {
			t.Fatalf("Expired = %d deleted, %d refused; want 1000 and 10", deleted, refused)
		}
		// A lower bound changes nothing; events above the horizon still
		// come in.
		if n, _, err := s.Expire(ctx, KeyOf(sorted[10]), 0); n != 0 || err != nil || s.Horizon() != before {
			t.Fatalf("a lower bound deleted %d (%v), horizon %v", n, err, s.Horizon())
		}
		late := later(t, fixture.New(8, 1).Batch(5), sorted[len(sorted)-1])
		if added, err := s.Merge(ctx, late); err != nil || len(added) != 5 {
			t.Fatalf("merging new events: %d, %v", len(added), err)
		}
		checkAboveHorizon(t, s, append(all, late...), before, true)

		// Everything goes.
		n, _, err = s.Expire(ctx, MaxKey, 0)
		if err != nil || s.Len() != 0 || n != len(all)-1000+5 {
			t.Fatalf("expiring everything: %d deleted, %v, %d left", n, err, s.Len())
		}
		checkAboveHorizon(t, s, all, MaxKey, true)
	})
}

// later returns evs moved in time to after last, sealed again.
func later(t testing.TB, evs []events.Event, last events.Event) []events.Event {
	t.Helper()
	out := make([]events.Event, len(evs))
	for i, e := range evs {
		e.Time.Wall += last.Time.Wall - fixture.Start + 1
		var err error
		if out[i], err = events.Seal(e); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestExpireInBatches expires a bounded number of events at a time; the
// set reads as if everything below the horizon were gone after each.
func TestExpireInBatches(t *testing.T) {
	eachStore(t, func(t *testing.T, open func(testing.TB) *Set) {
		ctx := context.Background()
		s := open(t)
		all := fixture.New(9, 3).Batch(1000)
		if _, err := s.Merge(ctx, all); err != nil {
			t.Fatal(err)
		}
		model := model{}
		for _, e := range all {
			model[e.ID] = e
		}
		before := KeyOf(model.sorted()[700])
		calls, total := 0, 0
		for more := true; more; calls++ {
			n, m, err := s.Expire(ctx, before, 64)
			if err != nil || n > 64 {
				t.Fatalf("call %d: %d deleted, %v", calls, n, err)
			}
			checkAboveHorizon(t, s, all, before, !m)
			more, total = m, total+n
		}
		if total != 700 || calls != 11 {
			t.Fatalf("%d deleted in %d calls, want 700 in 11", total, calls)
		}
	})
}

// TestHorizonSurvivesReopen: a datastore set reopens with its horizon,
// refuses what lies below it at once, and deletes at the next Expire what
// an expiry cut short left behind.
func TestHorizonSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	ds := newMapStore()
	s, err := New(ctx, ds, Options{})
	if err != nil {
		t.Fatal(err)
	}
	all := fixture.New(10, 2).Batch(500)
	if _, err := s.Merge(ctx, all); err != nil {
		t.Fatal(err)
	}
	model := model{}
	for _, e := range all {
		model[e.ID] = e
	}
	sorted := model.sorted()
	before := KeyOf(sorted[300])
	if _, _, err := s.Expire(ctx, before, 100); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s = newSet(t, ds)
	if s.Horizon() != before {
		t.Fatalf("reopened with horizon %v, want %v", s.Horizon(), before)
	}
	checkAboveHorizon(t, s, all, before, false)
	if added, err := s.Merge(ctx, sorted[:300]); err != nil || len(added) != 0 {
		t.Fatalf("merging expired events after reopening added %d, %v", len(added), err)
	}
	n, more, err := s.Expire(ctx, MinKey, 0)
	if err != nil || n != 200 || more {
		t.Fatalf("the next Expire deleted %d, %v, %v; want the 200 left", n, more, err)
	}
	checkAboveHorizon(t, s, all, before, true)
}

// TestMemoryExpiryFreesMemory: expiring a memory set's events frees their
// slabs and, once they are many, their entries in the event table.
func TestMemoryExpiryFreesMemory(t *testing.T) {
	ctx := context.Background()
	s := newMemorySet(t)
	mem := s.store.(memoryBackend)
	all := fixture.New(11, 4).Batch(20_000)
	if _, err := s.Merge(ctx, all); err != nil {
		t.Fatal(err)
	}
	full, _, _ := mem.bytes(ctx)
	model := model{}
	for _, e := range all {
		model[e.ID] = e
	}
	sorted := model.sorted()
	if _, _, err := s.Expire(ctx, KeyOf(sorted[19_000]), 0); err != nil {
		t.Fatal(err)
	}
	left, _, _ := mem.bytes(ctx)
	if left > full/4 {
		t.Fatalf("the memory set holds %d bytes of %d after 95 %% of its events expired", left, full)
	}
	if n := mem.Len(); n != 1000 {
		t.Fatalf("the event table holds %d entries for 1000 events", n)
	}
	checkAboveHorizon(t, s, all, KeyOf(sorted[19_000]), true)
	// The survivors are still found by ID, and new events too.
	late := later(t, fixture.New(12, 1).Batch(100), sorted[len(sorted)-1])
	if added, err := s.Merge(ctx, late); err != nil || len(added) != 100 {
		t.Fatalf("merging after the table was compacted: %d, %v", len(added), err)
	}
	for _, e := range append(sorted[19_000:], late...) {
		if ok, err := s.HasID(ctx, e.ID); !ok || err != nil {
			t.Fatalf("HasID of a kept event: %v, %v", ok, err)
		}
	}
}

// TestDatastoreForgetsExpiredIDs: a datastore set's ID table drops the
// IDs of expired events, and every live event, old or new, is still found
// by ID.
func TestDatastoreForgetsExpiredIDs(t *testing.T) {
	ctx := context.Background()
	s := newSet(t, newMapStore())
	ds := s.store.(*datastoreBackend)
	all := fixture.New(13, 2).Batch(3000)
	if _, err := s.Merge(ctx, all); err != nil {
		t.Fatal(err)
	}
	model := model{}
	for _, e := range all {
		model[e.ID] = e
	}
	sorted := model.sorted()
	if _, _, err := s.Expire(ctx, KeyOf(sorted[2000]), 0); err != nil {
		t.Fatal(err)
	}
	if n := len(ds.ids.m); n != 1000 {
		t.Fatalf("the ID table files %d events, want the 1000 left", n)
	}
	late := later(t, fixture.New(14, 1).Batch(50), sorted[len(sorted)-1])
	if _, err := s.Merge(ctx, late); err != nil {
		t.Fatal(err)
	}
	for _, e := range append(sorted[2000:], late...) {
		if got, err := s.Get(ctx, e.ID); err != nil || got.ID != e.ID {
			t.Fatalf("Get of a live event after refiling: %v", err)
		}
	}
}

// TestExpireWhileWriting expires old events in batches while writers add
// newer ones and readers scan: in the end the set holds exactly what lies
// at or above the horizon.
func TestExpireWhileWriting(t *testing.T) {
	eachStore(t, func(t *testing.T, open func(testing.TB) *Set) {
		ctx := context.Background()
		s := open(t)
		old := fixture.New(15, 3).Batch(2000)
		if _, err := s.Merge(ctx, old); err != nil {
			t.Fatal(err)
		}
		model := model{}
		for _, e := range old {
			model[e.ID] = e
		}
		sorted := model.sorted()
		newer := later(t, fixture.New(16, 3).Batch(2000), sorted[len(sorted)-1])
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := 0; i < len(newer); i += 50 {
				if _, err := s.Merge(ctx, newer[i:i+50]); err != nil {
					t.Error(err)
				}
			}
		}()
		go func() {
			defer wg.Done()
			for range 20 {
				s.Scan(ctx, All, false, func(events.Event) bool { return true })
			}
		}()
		for more := true; more; {
			var err error
			if _, more, err = s.Expire(ctx, KeyOf(sorted[1500]), 100); err != nil {
				t.Fatal(err)
			}
		}
		wg.Wait()
		checkAboveHorizon(t, s, append(old, newer...), KeyOf(sorted[1500]), true)
	})
}
