package crdt

import (
	"context"
	"reflect"
	"testing"
	"unsafe"

	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/internal/fixture"
)

// TestSlabsTakeTheSpare: a spare slab is made once the last slab is half
// full, each new slab after the first is the spare, and every event reads
// back from whichever slab it went to.
func TestSlabsTakeTheSpare(t *testing.T) {
	ctx := context.Background()
	s := newMemorySet(t)
	mem := s.store.(*memoryBackend)
	g := fixture.New(3, 2)
	var all []events.Event
	var spare *[]byte
	for len(mem.mu.slabs) < 4 {
		batch := g.Batch(100)
		all = append(all, batch...)
		before := len(mem.mu.slabs)
		if _, err := s.Merge(ctx, batch); err != nil {
			t.Fatal(err)
		}
		n := len(mem.mu.slabs)
		last := mem.mu.slabs[n-1]
		if n > before && before > 0 && (spare == nil || unsafe.SliceData(*spare) != unsafe.SliceData(last)) {
			t.Fatalf("slab %d is not the spare", n)
		}
		if spare = mem.spare.Load(); (spare != nil) != (len(last) >= slabSize/2) {
			t.Fatalf("slab %d holds %d bytes, and a spare is made: %v", n, len(last), spare != nil)
		}
	}
	for i, want := range all {
		got, err := s.Get(ctx, want.ID)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("event %d of %d: %v", i, len(all), err)
		}
	}
}
