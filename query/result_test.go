package query

import (
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/scopemesh/scopemesh/crdt"
	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/internal/fixture"
)

// TestMergerMatchesNaive feeds a Merger the answers of four replicas that
// hold overlapping parts of a set, their events shuffled together, and
// checks it against sorting the union: the first events, each once, and
// the cursor. It never holds more than the limit.
func TestMergerMatchesNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	all := fixture.New(34, 4).Batch(800)
	for _, f := range []Filter{
		{Limit: 10},
		{Limit: 250, Descending: true},
		{Kinds: []string{"db.query"}, Limit: 90},
		{Limit: 5000}, // more than there is
	} {
		var offered []events.Event
		union := map[events.ID]events.Event{}
		for range 4 {
			var held []events.Event
			for _, e := range all {
				if rng.IntN(3) == 0 {
					held = append(held, e)
				}
			}
			answer := naive(held, f)
			offered = append(offered, answer...)
			for _, e := range answer {
				union[e.ID] = e
			}
		}
		rng.Shuffle(len(offered), func(i, j int) { offered[i], offered[j] = offered[j], offered[i] })
		m := NewMerger(f)
		for _, e := range offered {
			m.Add(e)
			if m.kept.Len() > f.limit() {
				t.Fatalf("limit %d: the merger holds %d events", f.limit(), m.kept.Len())
			}
		}
		got, next := m.Result()
		want := naive(slices.Collect(maps.Values(union)), f)
		if !slices.Equal(ids(got), ids(want)) {
			t.Fatalf("%+v: %d events, want %d (or a different order)", f, len(got), len(want))
		}
		wantNext := crdt.Key{}
		if len(want) == f.limit() {
			wantNext = CursorOf(want[len(want)-1])
		}
		if next != wantNext {
			t.Fatalf("%+v: cursor %v, want %v", f, next, wantNext)
		}
	}
}
