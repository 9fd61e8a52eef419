package rbsr

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/scopemesh/scopemesh/events"
)

// TestWant checks that a Want decodes to the listed IDs it names, in the
// order listed, and that one naming IDs past the listing is refused.
func TestWant(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		listed := make([]events.ID, 1+rng.IntN(100))
		for i := range listed {
			listed[i][0], listed[i][1] = byte(i), byte(i>>8)
		}
		var need []int
		for i := range listed {
			if rng.IntN(3) == 0 {
				need = append(need, i)
			}
		}
		if len(need) == 0 {
			need = []int{len(listed) - 1}
		}
		got, err := wantedIDs(wantBitmap(need), listed)
		if err != nil {
			t.Fatal(err)
		}
		want := make([]events.ID, len(need))
		for i, n := range need {
			want[i] = listed[n]
		}
		if !slices.Equal(got, want) {
			t.Fatalf("a want for %v of %d listed IDs decoded to %d IDs", need, len(listed), len(got))
		}
	}
	listed := make([]events.ID, 10)
	for _, bad := range [][]byte{wantBitmap([]int{10}), wantBitmap([]int{0, 16}), {0, 0, 0}} {
		if ids, err := wantedIDs(bad, listed); !errors.Is(err, ErrFrame) {
			t.Errorf("want %08b of 10 listed IDs: %d IDs, %v; want ErrFrame", bad, len(ids), err)
		}
	}
}

// FuzzWant: no Want makes the responder panic or send an event it did not
// list, and a Want it accepts decodes to the IDs of its set bits, in order.
func FuzzWant(f *testing.F) {
	listed := make([]events.ID, 21)
	for i := range listed {
		listed[i][0] = byte(i + 1)
	}
	f.Add(wantBitmap([]int{0, 3, 20}))
	f.Add([]byte{0xff, 0xff, 0x1f})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, bitmap []byte) {
		ids, err := wantedIDs(bitmap, listed)
		if err != nil {
			if !errors.Is(err, ErrFrame) {
				t.Fatalf("error %v does not match ErrFrame", err)
			}
			return
		}
		next := 0
		for i := range len(bitmap) * 8 {
			if bitmap[i/8]&(1<<(i%8)) == 0 {
				continue
			}
			if next == len(ids) || ids[next] != listed[i] {
				t.Fatalf("want %x: bit %d set, but ID %d decoded is not listed ID %d", bitmap, i, next, i)
			}
			next++
		}
		if next != len(ids) {
			t.Fatalf("want %x: %d IDs decoded for %d bits set", bitmap, len(ids), next)
		}
	})
}
