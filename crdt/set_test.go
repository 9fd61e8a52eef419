package crdt

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"math/big"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
	dssync "github.com/ipfs/go-datastore/sync"

	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/internal/fixture"
)

func newMapStore() datastore.Batching { return dssync.MutexWrap(datastore.NewMapDatastore()) }

func newSet(t testing.TB, ds datastore.Batching) *Set {
	t.Helper()
	s, err := New(context.Background(), ds, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newMemorySet(t testing.TB) *Set {
	s := NewMemory(Options{})
	t.Cleanup(func() { s.Close() })
	return s
}

// eachBackend runs test on a set of each backend: a datastore and memory.
func eachBackend(t *testing.T, test func(t *testing.T, open func(testing.TB) *Set)) {
	t.Run("datastore", func(t *testing.T) {
		test(t, func(t testing.TB) *Set { return newSet(t, newMapStore()) })
	})
	t.Run("memory", func(t *testing.T) { test(t, newMemorySet) })
}

// model is the naive G-Set: a map by ID, listed by sorting.
type model map[events.ID]events.Event

func (m model) sorted() []events.Event {
	evs := make([]events.Event, 0, len(m))
	for _, e := range m {
		evs = append(evs, e)
	}
	slices.SortFunc(evs, func(a, b events.Event) int { return KeyOf(a).Compare(KeyOf(b)) })
	return evs
}

// naiveFingerprint computes a range's fingerprint with math/big over the
// sorted list.
func naiveFingerprint(sorted []events.Event, r Range) [16]byte {
	sum, count := new(big.Int), 0
	for _, e := range sorted {
		if r.Contains(KeyOf(e)) {
			le := slices.Clone(e.ID[:])
			slices.Reverse(le)
			sum.Add(sum, new(big.Int).SetBytes(le))
			count++
		}
	}
	sum.Mod(sum, new(big.Int).Lsh(big.NewInt(1), 256))
	be := sum.FillBytes(make([]byte, 32))
	slices.Reverse(be)
	h := sha256.Sum256(binary.AppendUvarint(be, uint64(count)))
	return [16]byte(h[:16])
}

func scanAll(t testing.TB, s *Set, r Range, descending bool) []events.Event {
	t.Helper()
	var out []events.Event
	if err := s.Scan(context.Background(), r, descending, func(e events.Event) bool {
		out = append(out, e)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func sameIDs(a, b []events.Event) bool {
	return slices.EqualFunc(a, b, func(x, y events.Event) bool { return x.ID == y.ID })
}

// TestMergeConvergesAgainstModel merges one pool of events into replicas in
// different random orders and groupings, with duplicates, and checks each
// against the naive model: same set, same order, same fingerprints.
func TestMergeConvergesAgainstModel(t *testing.T) {
	eachBackend(t, func(t *testing.T, open func(testing.TB) *Set) {
		ctx := context.Background()
		pool := fixture.New(1, 4).Batch(3000)
		want := model{}
		for _, e := range pool {
			want[e.ID] = e
		}
		sorted := want.sorted()

		for replica := range 3 {
			rng := rand.New(rand.NewPCG(uint64(replica), 99))
			s := open(t)
			order := slices.Clone(pool)
			rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
			order = append(order, order[:500]...) // duplicates, merged again
			for len(order) > 0 {
				n := min(len(order), 1+rng.IntN(200))
				if _, err := s.Merge(ctx, order[:n]); err != nil {
					t.Fatal(err)
				}
				order = order[n:]
			}
			if s.Len() != len(want) {
				t.Fatalf("replica %d: Len = %d, want %d", replica, s.Len(), len(want))
			}
			if got := scanAll(t, s, All, false); !sameIDs(got, sorted) {
				t.Fatalf("replica %d: ascending scan differs from the model", replica)
			}
			desc := scanAll(t, s, All, true)
			slices.Reverse(desc)
			if !sameIDs(desc, sorted) {
				t.Fatalf("replica %d: descending scan differs from the model", replica)
			}
			for range 200 {
				a, b := KeyOf(sorted[rng.IntN(len(sorted))]), KeyOf(sorted[rng.IntN(len(sorted))])
				if rng.IntN(4) == 0 {
					a = MinKey
				}
				r := Range{From: a, To: b}
				if got, want := fingerprint(s, r), naiveFingerprint(sorted, r); got != want {
					t.Fatalf("replica %d: Fingerprint(%v..%v) = %v, naive %v", replica, a, b, got, want)
				}
				lo, hi := s.Count(r), 0
				for _, e := range sorted {
					if r.Contains(KeyOf(e)) {
						hi++
					}
				}
				if lo != hi {
					t.Fatalf("replica %d: Count = %d, naive %d", replica, lo, hi)
				}
			}
		}
	})
}

func TestMergeRejectsWholeBatchWithBadEvent(t *testing.T) {
	ctx := context.Background()
	ds := newMapStore()
	s := newSet(t, ds)
	batch := fixture.New(2, 2).Batch(10)
	batch[7].Attrs["path"] = "/tampered" // content no longer matches the ID
	if _, err := s.Merge(ctx, batch); !errors.Is(err, events.ErrIDMismatch) {
		t.Fatalf("Merge with a tampered event = %v, want ErrIDMismatch", err)
	}
	if s.Len() != 0 {
		t.Fatalf("Len = %d after a rejected batch", s.Len())
	}
	res, err := ds.Query(ctx, dsq.Query{KeysOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	all, _ := res.Rest()
	all = slices.DeleteFunc(all, func(e dsq.Entry) bool { return e.Key == layoutKey.String() })
	if len(all) != 0 {
		t.Fatalf("rejected batch wrote %d datastore entries", len(all))
	}
}

func TestReopenRebuildsIndex(t *testing.T) {
	ctx := context.Background()
	ds := newMapStore()
	s := newSet(t, ds)
	g := fixture.New(4, 3)
	pool := g.Batch(1500)
	if _, err := s.Merge(ctx, pool); err != nil {
		t.Fatal(err)
	}
	before := scanAll(t, s, All, false)
	s.Close()
	if _, err := s.Merge(ctx, g.Batch(1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Merge after Close = %v, want ErrClosed", err)
	}

	r := newSet(t, ds)
	if !sameIDs(scanAll(t, r, All, false), before) {
		t.Fatal("reopened set lists different events")
	}
	if fingerprint(r, All) != fingerprint(s, All) {
		t.Fatal("reopened set has a different fingerprint")
	}
	for _, e := range pool {
		if got, err := r.Get(ctx, e.ID); err != nil || got.ID != e.ID {
			t.Fatalf("Get(%v) after reopen = %v, %v", e.ID, got.ID, err)
		}
	}
	for _, node := range g.Nodes() {
		want := 0
		for _, e := range pool {
			if e.Node == node {
				want++
			}
		}
		if got := r.IndexCount(ByNode, node); got != want {
			t.Fatalf("IndexCount(ByNode, %s) = %d after reopen, want %d", node, got, want)
		}
	}
}

func TestGetAndHas(t *testing.T) {
	eachBackend(t, func(t *testing.T, open func(testing.TB) *Set) {
		ctx := context.Background()
		s := open(t)
		e := fixture.New(5, 1).Next()
		if added, err := s.Add(ctx, e); err != nil || !added {
			t.Fatalf("Add = %v, %v; want true, nil", added, err)
		}
		if added, err := s.Add(ctx, e); err != nil || added {
			t.Fatalf("second Add = %v, %v; want false, nil", added, err)
		}
		got, err := s.Get(ctx, e.ID)
		if err != nil || got.ID != e.ID || got.Attrs["path"] != e.Attrs["path"] {
			t.Fatalf("Get = %+v, %v", got, err)
		}
		if !s.Has(KeyOf(e)) {
			t.Fatal("Has = false for a stored event")
		}
		if ok, err := s.HasID(ctx, e.ID); !ok || err != nil {
			t.Fatalf("HasID = %v, %v", ok, err)
		}
		var missing events.ID
		missing[0] = 1
		if _, err := s.Get(ctx, missing); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get of a missing event = %v, want ErrNotFound", err)
		}
	})
}

func TestScanIndex(t *testing.T) {
	eachBackend(t, func(t *testing.T, open func(testing.TB) *Set) {
		ctx := context.Background()
		s := open(t)
		g := fixture.New(6, 3)
		pool := g.Batch(800)
		if _, err := s.Merge(ctx, pool); err != nil {
			t.Fatal(err)
		}
		sorted := model{}
		for _, e := range pool {
			sorted[e.ID] = e
		}
		all := sorted.sorted()
		r := Range{From: KeyOf(all[100]), To: KeyOf(all[600])}
		for _, tc := range []struct {
			index Index
			value string
			match func(events.Event) bool
		}{
			{ByNode, g.Nodes()[1], func(e events.Event) bool { return e.Node == g.Nodes()[1] }},
			{ByKind, "db.query", func(e events.Event) bool { return e.Kind == "db.query" }},
			{ByCorrelation, all[300].Correlation.String(), func(e events.Event) bool { return e.Correlation == all[300].Correlation }},
		} {
			for _, descending := range []bool{false, true} {
				var want, got []events.Event
				for _, e := range all {
					if tc.match(e) && r.Contains(KeyOf(e)) {
						want = append(want, e)
					}
				}
				if descending {
					slices.Reverse(want)
				}
				err := s.ScanIndex(ctx, tc.index, tc.value, r, descending, func(e events.Event) bool {
					got = append(got, e)
					return true
				})
				if err != nil {
					t.Fatal(err)
				}
				if len(want) == 0 || !sameIDs(got, want) {
					t.Fatalf("ScanIndex(%v, descending=%v): %d events, want %d", tc.index, descending, len(got), len(want))
				}
			}
		}
	})
}

// TestConcurrentWritesReportEachEventNewOnce has many goroutines write one
// pool of events, each in its own order, half with Merge in batches and
// half with Add one at a time, so that writes of one event race: each event
// must be reported new exactly once, and every Add must see its event
// stored when it returns.
func TestConcurrentWritesReportEachEventNewOnce(t *testing.T) {
	eachBackend(t, func(t *testing.T, open func(testing.TB) *Set) {
		ctx := context.Background()
		s := open(t)
		pool := fixture.New(9, 3).Batch(1500)
		var (
			mu    sync.Mutex
			added = map[events.ID]int{}
			wg    sync.WaitGroup
		)
		report := func(evs ...events.Event) {
			mu.Lock()
			defer mu.Unlock()
			for _, e := range evs {
				added[e.ID]++
			}
		}
		for g := range 16 {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(g), 11))
				order := slices.Clone(pool)
				rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
				if g%2 == 0 {
					for i := 0; i < len(order); i += 50 {
						got, err := s.Merge(ctx, order[i:min(i+50, len(order))])
						if err != nil {
							t.Error(err)
							return
						}
						report(got...)
					}
					return
				}
				for _, e := range order[:500] {
					isNew, err := s.Add(ctx, e)
					if err != nil {
						t.Error(err)
						return
					}
					if !s.Has(KeyOf(e)) {
						t.Errorf("Add of %v returned before the event was stored", e.ID)
						return
					}
					if !e.Correlation.IsZero() && !tracesIt(ctx, t, s, e) {
						t.Errorf("Add of %v returned before its trace listed it", e.ID)
						return
					}
					if isNew {
						report(e)
					}
				}
			})
		}
		wg.Wait()
		if len(added) != len(pool) || s.Len() != len(pool) {
			t.Fatalf("%d distinct events reported new, Len %d; want %d", len(added), s.Len(), len(pool))
		}
		for id, n := range added {
			if n != 1 {
				t.Fatalf("event %v reported new %d times", id, n)
			}
		}
		bad := pool[0]
		bad.Kind = "tampered"
		if _, err := s.Add(ctx, bad); !errors.Is(err, events.ErrIDMismatch) {
			t.Fatalf("Add of a tampered event = %v, want ErrIDMismatch", err)
		}
	})
}

// TestSetReadsBackUnderItsOwnLimits stores an event larger than the
// default limits allow in a set whose limits allow it, and reads it back.
func TestSetReadsBackUnderItsOwnLimits(t *testing.T) {
	lim := events.Limits{MaxEventBytes: 1 << 20, MaxAttrValueBytes: 1 << 20}
	for name, open := range map[string]func() *Set{
		"datastore": func() *Set {
			s, err := New(context.Background(), newMapStore(), Options{Limits: lim})
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		"memory": func() *Set { return NewMemory(Options{Limits: lim}) },
	} {
		t.Run(name, func(t *testing.T) {
			s := open()
			defer s.Close()
			e, err := lim.Seal(events.Event{Node: "n", Kind: "big", Payload: make([]byte, 100_000)})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Add(context.Background(), e); err != nil {
				t.Fatal(err)
			}
			got, err := s.Get(context.Background(), e.ID)
			if err != nil || len(got.Payload) != len(e.Payload) {
				t.Fatalf("Get = %d payload bytes, %v", len(got.Payload), err)
			}
		})
	}
}

// TestWritesAfterCloseChangeNothing checks on both backends that Add,
// AddEncoded and Merge after Close return ErrClosed and store nothing;
// AddEncoded says so before it checks the event.
func TestWritesAfterCloseChangeNothing(t *testing.T) {
	eachBackend(t, func(t *testing.T, open func(testing.TB) *Set) {
		ctx := context.Background()
		s := open(t)
		g := fixture.New(12, 2)
		if _, err := s.Merge(ctx, g.Batch(10)); err != nil {
			t.Fatal(err)
		}
		s.Close()
		if _, err := s.Add(ctx, g.Next()); !errors.Is(err, ErrClosed) {
			t.Fatalf("Add after Close = %v, want ErrClosed", err)
		}
		if _, err := s.Merge(ctx, g.Batch(5)); !errors.Is(err, ErrClosed) {
			t.Fatalf("Merge after Close = %v, want ErrClosed", err)
		}
		if _, err := s.AddEncoded(ctx, events.Encoded{}); !errors.Is(err, ErrClosed) {
			t.Fatalf("AddEncoded of an unchecked event after Close = %v, want ErrClosed", err)
		}
		if n := s.Len(); n != 10 {
			t.Fatalf("Len after writes to a closed set = %d, want 10", n)
		}
		if mem, ok := s.store.(memoryBackend); ok && mem.Len() != 10 {
			t.Fatalf("the memory backend holds %d events, want 10", mem.Len())
		}
	})
}

// tracesIt reports whether the set's index by correlation lists e.
func tracesIt(ctx context.Context, t *testing.T, s *Set, e events.Event) bool {
	found := false
	k := KeyOf(e)
	err := s.ScanIndex(ctx, ByCorrelation, e.Correlation.String(), Range{From: k, To: k.Successor()}, false, func(got events.Event) bool {
		found = got.ID == e.ID
		return false
	})
	if err != nil {
		t.Error(err)
	}
	return found
}

// TestAddsFromChangingOrigins adds events whose origin changes from one
// add to the next, or stays for a few, and checks that the index by node
// and the counts file each under its own origin.
func TestAddsFromChangingOrigins(t *testing.T) {
	eachBackend(t, func(t *testing.T, open func(testing.TB) *Set) {
		ctx := context.Background()
		s := open(t)
		g := fixture.New(9, 3)
		want := map[string]int{}
		for _, e := range g.Batch(300) {
			if _, err := s.Add(ctx, e); err != nil {
				t.Fatal(err)
			}
			want[e.Node]++
		}
		for _, node := range g.Nodes() {
			if got := s.IndexCount(ByNode, node); got != want[node] {
				t.Fatalf("IndexCount(ByNode, %s) = %d, want %d", node, got, want[node])
			}
			listed := 0
			err := s.ScanIndex(ctx, ByNode, node, All, false, func(e events.Event) bool {
				if e.Node != node {
					t.Fatalf("the index lists an event of %s under %s", e.Node, node)
				}
				listed++
				return true
			})
			if err != nil || listed != want[node] {
				t.Fatalf("the index lists %d events under %s (%v), want %d", listed, node, err, want[node])
			}
		}
	})
}
