package query_test

import (
	"context"
	"testing"

	"github.com/scopemesh/scopemesh/crdt"
	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/internal/benchstore"
	"github.com/scopemesh/scopemesh/internal/fixture"
	"github.com/scopemesh/scopemesh/internal/pebblestore"
	"github.com/scopemesh/scopemesh/query"
)

// BenchmarkTraceQuery reads one trace (about 8 events) out of a set of
// 1,000,000 events, on Pebble and in memory, as Local does for Node.Trace:
//
//	go test -run '^$' -bench TraceQuery ./query
func BenchmarkTraceQuery(b *testing.B) {
	const n = 1_000_000
	st := benchstore.Build(b, n)
	b.Run("pebble", func(b *testing.B) {
		ds, err := pebblestore.Open(st.Dir, pebblestore.Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer ds.Close()
		s, err := crdt.New(context.Background(), ds, crdt.Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		benchTraces(b, s, st.Traces)
	})
	b.Run("memory", func(b *testing.B) {
		s := crdt.NewMemory(crdt.Options{})
		defer s.Close()
		g := fixture.New(1, 8) // the events of the Pebble store
		for left := n; left > 0; left -= 10_000 {
			if _, err := s.Merge(context.Background(), g.Batch(min(left, 10_000))); err != nil {
				b.Fatal(err)
			}
		}
		benchTraces(b, s, st.Traces)
	})
}

// benchTraces queries the traces in turn.
func benchTraces(b *testing.B, s *crdt.Set, traces []events.TraceID) {
	found, i := 0, 0
	for b.Loop() {
		evs, err := query.Local(context.Background(), s, query.Filter{Correlation: traces[i%len(traces)]})
		if err != nil || len(evs) == 0 {
			b.Fatalf("%d events, %v", len(evs), err)
		}
		found += len(evs)
		i++
	}
	b.ReportMetric(float64(found)/float64(b.N), "events/trace")
}
