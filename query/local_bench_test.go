package query_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/scopemesh/scopemesh/crdt"
	"github.com/scopemesh/scopemesh/internal/fixture"
	"github.com/scopemesh/scopemesh/query"
)

// BenchmarkNodesQuery lists the first events of three origin nodes out of
// eight in a set of 200,000 events in memory: a plan that merges three
// scans of the node index.
//
//	go test -run '^$' -bench NodesQuery ./query
func BenchmarkNodesQuery(b *testing.B) {
	s := crdt.NewMemory(crdt.Options{})
	defer s.Close()
	g := fixture.New(1, 8)
	for range 20 {
		if _, err := s.Merge(context.Background(), g.Batch(10_000)); err != nil {
			b.Fatal(err)
		}
	}
	for _, limit := range []int{100, 1000, query.MaxRemoteLimit} {
		f := query.Filter{Nodes: g.Nodes()[:3], Limit: limit}
		b.Run(fmt.Sprint("limit=", limit), func(b *testing.B) {
			for b.Loop() {
				evs, err := query.Local(context.Background(), s, f)
				if err != nil || len(evs) != limit {
					b.Fatalf("%d events, %v", len(evs), err)
				}
			}
		})
	}
}
