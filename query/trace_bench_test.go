package query_test

import (
	"context"
	"testing"

	"github.com/scopemesh/scopemesh/crdt"
	"github.com/scopemesh/scopemesh/internal/benchstore"
	"github.com/scopemesh/scopemesh/internal/pebblestore"
	"github.com/scopemesh/scopemesh/query"
)

// BenchmarkTraceQuery reads one trace (about 8 events) out of a Pebble
// store of 1,000,000 events, as Local does for Node.Trace:
//
//	go test -run '^$' -bench TraceQuery ./query
func BenchmarkTraceQuery(b *testing.B) {
	st := benchstore.Build(b, 1_000_000)
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
	events := 0
	i := 0
	for b.Loop() {
		evs, err := query.Local(context.Background(), s, query.Filter{Correlation: st.Traces[i%len(st.Traces)]})
		if err != nil || len(evs) == 0 {
			b.Fatalf("%d events, %v", len(evs), err)
		}
		events += len(evs)
		i++
	}
	b.ReportMetric(float64(events)/float64(b.N), "events/trace")
}
