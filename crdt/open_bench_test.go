package crdt_test

import (
	"context"
	"testing"

	"github.com/scopemesh/scopemesh/crdt"
	"github.com/scopemesh/scopemesh/internal/benchstore"
	"github.com/scopemesh/scopemesh/internal/pebblestore"
)

// BenchmarkOpen opens a Pebble store of 1,000,000 events: the ordered
// index is rebuilt from the node index each time.
//
//	go test -run '^$' -bench Open -benchtime 3x ./crdt
func BenchmarkOpen(b *testing.B) {
	st := benchstore.Build(b, 1_000_000)
	for b.Loop() {
		ds, err := pebblestore.Open(st.Dir, pebblestore.Options{})
		if err != nil {
			b.Fatal(err)
		}
		s, err := crdt.New(context.Background(), ds, crdt.Options{})
		if err != nil {
			b.Fatal(err)
		}
		if s.Len() != 1_000_000 {
			b.Fatalf("%d events", s.Len())
		}
		s.Close()
		ds.Close()
	}
}

var (
	_ crdt.KeyLister   = (*pebblestore.Store)(nil)
	_ crdt.BatchWriter = (*pebblestore.Store)(nil)
)
