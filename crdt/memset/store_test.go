package memset

import (
	"bytes"
	"context"
	"hash/fnv"
	"slices"
	"testing"

	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/hlc"
	"github.com/scopemesh/scopemesh/internal/fixture"
)

// records returns evs as records, sorted by key, each filed under its
// node's and kind's FNV-1a digest.
func records(t testing.TB, evs []events.Event) []Record {
	t.Helper()
	recs := make([]Record, len(evs))
	for i, e := range evs {
		x, err := events.DefaultLimits.Encode(e)
		if err != nil {
			t.Fatal(err)
		}
		recs[i] = Record{X: x, Key: keyOf(e), Node: digest(e.Node), Kind: digest(e.Kind), Trace: e.Correlation}
	}
	slices.SortFunc(recs, func(a, b Record) int { return a.Key.Compare(b.Key) })
	return recs
}

func keyOf(e events.Event) Key {
	var k Key
	e.Time.AppendBinary(k[:0])
	copy(k[hlc.EncodedLen:], e.ID[:])
	return k
}

func digest(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

// TestWriteReadBack fills several slabs, writes every event twice, and
// checks that each reads back, by key and by ID, from whichever slab it
// went to.
func TestWriteReadBack(t *testing.T) {
	s := New()
	g := fixture.New(3, 2)
	var all []Record
	for len(s.mu.slabs) < 4 {
		recs := records(t, g.Batch(100))
		s.Write(recs)
		s.Write(records(t, func() []events.Event {
			evs := make([]events.Event, len(recs))
			for i, r := range recs {
				evs[i] = r.X.Event()
			}
			return evs
		}()))
		all = append(all, recs...)
	}
	if s.Len() != len(all) {
		t.Fatalf("Len = %d, want %d", s.Len(), len(all))
	}
	for i, r := range all {
		data, ok := s.Event(r.Key)
		if !ok || !bytes.Equal(data, r.X.Wire()) {
			t.Fatalf("event %d of %d: found %v, or other bytes", i, len(all), ok)
		}
		if k, ok := s.KeyOf(r.Key.ID()); !ok || k != r.Key {
			t.Fatalf("KeyOf event %d = %v, %v; want %v", i, k, ok, r.Key)
		}
	}
	var absent Key
	absent[0] = 1
	if _, ok := s.Event(absent); ok {
		t.Fatal("an absent key found")
	}
}

// TestListAndExpire lists each index value's keys, both ways, then
// expires the older half and checks what the indexes and the table keep.
func TestListAndExpire(t *testing.T) {
	ctx := context.Background()
	s := New()
	recs := records(t, fixture.New(5, 3).Batch(3000))
	s.Write(recs)
	want := func(i Index, v Value, from Key) []Key {
		var keys []Key
		for _, r := range recs {
			var rv Value
			switch i {
			case ByTrace:
				rv = TraceValue(r.Trace)
			case ByNode:
				rv = DigestValue(r.Node)
			case ByKind:
				rv = DigestValue(r.Kind)
			}
			if rv == v && r.Key.Compare(from) >= 0 {
				keys = append(keys, r.Key)
			}
		}
		return keys
	}
	check := func(from Key) {
		t.Helper()
		for _, r := range recs[len(recs)-20:] {
			for i, v := range map[Index]Value{ByTrace: TraceValue(r.Trace), ByNode: DigestValue(r.Node), ByKind: DigestValue(r.Kind)} {
				var up, down []Key
				var top Key
				for j := range top {
					top[j] = 0xff
				}
				if err := s.List(ctx, i, v, from, Key{}, false, func(k Key) bool { up = append(up, k); return true }); err != nil {
					t.Fatal(err)
				}
				if err := s.List(ctx, i, v, Key{}, top, true, func(k Key) bool { down = append(down, k); return true }); err != nil {
					t.Fatal(err)
				}
				w := want(i, v, from)
				slices.Reverse(down)
				if !slices.Equal(up, w) || !slices.Equal(down, w) {
					t.Fatalf("index %d: listed %d keys up and %d down, want %d", i, len(up), len(down), len(w))
				}
			}
		}
	}
	check(Key{})
	cut := recs[len(recs)/2].Key
	gone, err := s.Expire(cut)
	if err != nil || gone.Events != len(recs)/2 {
		t.Fatalf("Expire = %d, %v; want %d", gone.Events, err, len(recs)/2)
	}
	if s.Len() != len(recs)-len(recs)/2 {
		t.Fatalf("Len after Expire = %d", s.Len())
	}
	if _, ok := s.KeyOf(recs[0].Key.ID()); ok {
		t.Fatal("an expired event is found by ID")
	}
	check(cut)
}
