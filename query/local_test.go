package query

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"

	"github.com/scopemesh/scopemesh/crdt"
	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/hlc"
	"github.com/scopemesh/scopemesh/internal/fixture"
)

func newSet(t testing.TB, evs []events.Event) *crdt.Set {
	t.Helper()
	s, err := crdt.New(context.Background(), dssync.MutexWrap(datastore.NewMapDatastore()), crdt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.Merge(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	return s
}

// naive answers a filter by sorting everything and checking each event.
func naive(all []events.Event, f Filter) []events.Event {
	var out []events.Event
	for _, e := range all {
		if f.Match(e) {
			out = append(out, e)
		}
	}
	Sort(out, f.Descending)
	return out[:min(len(out), f.limit())]
}

func ids(evs []events.Event) []events.ID {
	out := make([]events.ID, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}

func TestLocalMatchesNaive(t *testing.T) {
	g := fixture.New(30, 4)
	all := g.Batch(3000)
	s := newSet(t, all)
	sorted := slices.Clone(all)
	Sort(sorted, false)
	mid, late := sorted[1000].Time, sorted[2000].Time
	trace := sorted[1500].Correlation

	filters := map[string]Filter{
		"everything, default limit": {},
		"limit":                     {Limit: 10},
		"descending":                {Descending: true, Limit: 25},
		"correlation":               {Correlation: trace},
		"one node":                  {Nodes: []string{g.Nodes()[2]}, Limit: MaxLimit},
		"two nodes":                 {Nodes: []string{g.Nodes()[0], g.Nodes()[3]}, Limit: 300},
		"three nodes descending":    {Nodes: []string{g.Nodes()[0], g.Nodes()[2], g.Nodes()[3]}, Descending: true, Limit: 300},
		"kinds descending, cursor":  {Kinds: []string{"db.query", "rpc.call"}, Descending: true, After: crdt.KeyOf(sorted[2000]), Limit: 5000},
		"kinds":                     {Kinds: []string{"db.query", "rpc.call"}, Limit: 5000},
		"attrs, all must match":     {Attrs: map[string]string{"method": "GET", "status": "500"}, Limit: 5000},
		"since":                     {Since: late, Limit: 5000},
		"until":                     {Until: mid, Limit: 5000},
		"since until":               {Since: mid, Until: late, Limit: 5000},
		"since until descending":    {Since: mid, Until: late, Descending: true, Limit: 40},
		"node and narrow range":     {Nodes: []string{g.Nodes()[1]}, Since: mid, Until: sorted[1010].Time, Limit: 5000},
		"kind, attrs, range":        {Kinds: []string{"http.request"}, Attrs: map[string]string{"method": "POST"}, Since: mid, Limit: 5000},
		"nothing matches":           {Kinds: []string{"no.such.kind"}},
		"empty range":               {Since: late, Until: late},
	}
	for name, f := range filters {
		t.Run(name, func(t *testing.T) {
			got, err := Local(context.Background(), s, f)
			if err != nil {
				t.Fatal(err)
			}
			want := naive(all, f)
			if !slices.Equal(ids(got), ids(want)) {
				t.Fatalf("%d events, want %d (or a different order)", len(got), len(want))
			}
		})
	}
}

func TestPlannerPicksTheSelectiveIndex(t *testing.T) {
	g := fixture.New(31, 4)
	all := g.Batch(2000)
	s := newSet(t, all)
	sorted := slices.Clone(all)
	Sort(sorted, false)
	node := g.Nodes()[0]

	f := Filter{Nodes: []string{node}}
	if p := choosePlan(s, f, f.keyRange()); p.index != crdt.ByNode || p.values == nil {
		t.Fatalf("node filter over all time: plan %+v, want the node index", p)
	}
	f.Since, f.Until = sorted[100].Time, sorted[110].Time
	if p := choosePlan(s, f, f.keyRange()); p.values != nil {
		t.Fatalf("node filter over 10 events of time: plan %+v, want the ordered index", p)
	}
	f = Filter{Correlation: sorted[5].Correlation, Since: sorted[100].Time, Until: sorted[101].Time}
	if p := choosePlan(s, f, f.keyRange()); p.index != crdt.ByCorrelation {
		t.Fatalf("trace filter: plan %+v, want the correlation index", p)
	}
}

func TestPaginationAcrossInserts(t *testing.T) {
	ctx := context.Background()
	g := fixture.New(32, 2)
	s := newSet(t, g.Batch(500))
	scan := func() []events.Event {
		var all []events.Event
		if err := s.Scan(ctx, crdt.All, false, func(e events.Event) bool { all = append(all, e); return true }); err != nil {
			t.Fatal(err)
		}
		return all
	}
	for _, descending := range []bool{false, true} {
		before := scan()
		f := Filter{Limit: 37, Descending: descending, Kinds: []string{"http.request", "db.query"}}
		var pages []events.Event
		for page := 0; ; page++ {
			got, err := Local(ctx, s, f)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) == 0 {
				break
			}
			pages = append(pages, got...)
			f.After = crdt.KeyOf(got[len(got)-1])
			if page == 3 {
				// Events arriving mid-way land after the cursor (ascending)
				// or before it (descending) and are listed exactly once.
				if _, err := s.Merge(ctx, g.Batch(100)); err != nil {
					t.Fatal(err)
				}
			}
		}
		seen := map[events.ID]bool{}
		for _, e := range pages {
			if seen[e.ID] {
				t.Fatalf("descending=%v: event listed twice", descending)
			}
			seen[e.ID] = true
		}
		want := naive(scan(), Filter{Kinds: f.Kinds, Limit: MaxLimit})
		if descending {
			// Pages newest-first never reach the events added meanwhile,
			// which are newer than the first page.
			want = naive(before, Filter{Kinds: f.Kinds, Descending: true, Limit: MaxLimit})
		}
		if !slices.Equal(ids(pages), ids(want)) {
			t.Fatalf("descending=%v: pages listed %d events, want %d", descending, len(pages), len(want))
		}
	}
}

func TestInvalidFilters(t *testing.T) {
	s := newSet(t, nil)
	many := make([]string, MaxValues+1)
	for name, f := range map[string]Filter{
		"since after until": {Since: hlc.Timestamp{Wall: 10}, Until: hlc.Timestamp{Wall: 5}},
		"negative limit":    {Limit: -1},
		"limit too large":   {Limit: MaxLimit + 1},
		"too many nodes":    {Nodes: many},
		"too many kinds":    {Kinds: many},
	} {
		if _, err := Local(context.Background(), s, f); !errors.Is(err, ErrInvalidFilter) {
			t.Errorf("%s: error %v, want ErrInvalidFilter", name, err)
		}
	}
}

func TestEachStopsWhenAskedOrCancelled(t *testing.T) {
	g := fixture.New(33, 4)
	s := newSet(t, g.Batch(2000))
	f := Filter{Nodes: []string{g.Nodes()[0], g.Nodes()[1]}, Limit: 500}
	if p := choosePlan(s, f, f.keyRange()); len(p.values) != 2 {
		t.Fatalf("plan %+v, want a merge of two node scans", p)
	}
	all, err := Local(context.Background(), s, f)
	if err != nil {
		t.Fatal(err)
	}
	var got []events.Event
	if err := Each(context.Background(), s, f, func(e events.Event) bool {
		got = append(got, e)
		return len(got) < 7
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids(got), ids(all[:7])) {
		t.Fatalf("stopped after %d events, want the first 7", len(got))
	}

	ctx, cancel := context.WithCancel(context.Background())
	seen := 0
	err = Each(ctx, s, f, func(events.Event) bool {
		if seen++; seen == 10 {
			cancel()
		}
		return true
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Each after its context ended: %v, want context.Canceled", err)
	}
}

// TestMergeScansReportsAFailingScan: a scan that fails ends the merge with
// its error, before any event that should come after its last.
func TestMergeScansReportsAFailingScan(t *testing.T) {
	evs := fixture.New(35, 1).Batch(20)
	Sort(evs, false)
	boom := errors.New("boom")
	scan := func(from []events.Event, err error) func(func(events.Event) bool) error {
		return func(yield func(events.Event) bool) error {
			for _, e := range from {
				if !yield(e) {
					return nil
				}
			}
			return err
		}
	}
	var odd, even []events.Event
	for i, e := range evs {
		if i%2 == 0 {
			even = append(even, e)
		} else {
			odd = append(odd, e)
		}
	}
	var got []events.Event
	err := mergeScans([]func(func(events.Event) bool) error{scan(even, nil), scan(odd[:3], boom)}, false, func(e events.Event) bool {
		got = append(got, e)
		return true
	})
	if !errors.Is(err, boom) {
		t.Fatalf("merge of a failing scan: %v, want its error", err)
	}
	// The failing scan ends after 5: nothing after it is yielded.
	if !slices.Equal(ids(got), ids(evs[:6])) {
		t.Fatalf("%d events before the error, want 6", len(got))
	}
}
