package crdt

import (
	"context"
	"reflect"
	"testing"

	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/internal/fixture"
)

// TestSlabsReadBack fills several slabs and checks that every event reads
// back from whichever slab it went to.
func TestSlabsReadBack(t *testing.T) {
	ctx := context.Background()
	s := newMemorySet(t)
	mem := s.store.(*memoryBackend)
	g := fixture.New(3, 2)
	var all []events.Event
	for len(mem.mu.slabs) < 4 {
		batch := g.Batch(100)
		all = append(all, batch...)
		if _, err := s.Merge(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	for i, want := range all {
		got, err := s.Get(ctx, want.ID)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("event %d of %d: %v", i, len(all), err)
		}
	}
}
