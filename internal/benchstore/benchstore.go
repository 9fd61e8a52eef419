package benchstore

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/scopemesh/scopemesh/crdt"
	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/internal/fixture"
	"github.com/scopemesh/scopemesh/internal/pebblestore"
)

// Store is a built store: where it is, and a few of its events to look
// for.
type Store struct {
	Dir    string
	Traces []events.TraceID // traces of events spread over the store
}

// Build returns the store of n fixture events (seed 1, 8 nodes), building
// it under the system's temporary directory if an earlier run has not.
func Build(tb testing.TB, n int) Store {
	tb.Helper()
	// The name carries the store's layout version: a store written by an
	// older layout is not reused.
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("scopemesh-bench-v5-%d", n))
	done := filepath.Join(dir, "complete")
	st := Store{Dir: filepath.Join(dir, "store")}
	if _, err := os.Stat(done); err != nil {
		os.RemoveAll(dir)
		tb.Logf("building a store of %d events in %s (once)", n, dir)
		if err := build(st.Dir, n); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(done, nil, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	// The same seed gives the same events: replay the generator to learn
	// which traces the store holds.
	g := fixture.New(1, 8)
	step := max(n/100, 1)
	for i := range n {
		e := g.Next()
		if i%step == 0 {
			st.Traces = append(st.Traces, e.Correlation)
		}
	}
	return st
}

func build(dir string, n int) error {
	ds, err := pebblestore.Open(dir, pebblestore.Options{})
	if err != nil {
		return err
	}
	defer ds.Close()
	s, err := crdt.New(context.Background(), ds, crdt.Options{})
	if err != nil {
		return err
	}
	defer s.Close()
	g := fixture.New(1, 8)
	for left := n; left > 0; {
		batch := g.Batch(min(left, 10_000))
		if _, err := s.Merge(context.Background(), batch); err != nil {
			return err
		}
		left -= len(batch)
	}
	return nil
}
