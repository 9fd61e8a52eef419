package peer

import (
	"testing"

	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/internal/fixture"
)

// TestMessageEvents checks how the publisher splits a batch into messages:
// at most batchMaxEvents events, about batchMaxBytes bytes, at least one.
func TestMessageEvents(t *testing.T) {
	// Limits that let one event outgrow a message, as a cluster's may;
	// events are sealed again, as the test changes their payloads.
	limits := events.Limits{MaxEventBytes: 2 * batchMaxBytes}
	encode := func(evs []events.Event) []events.Encoded {
		xs := make([]events.Encoded, len(evs))
		for i, e := range evs {
			var err error
			if xs[i], err = limits.SealEncoded(e); err != nil {
				t.Fatal(err)
			}
		}
		return xs
	}
	small := encode(fixture.New(1, 1).Batch(batchMaxEvents + 10))
	if n := messageEvents(small); n != batchMaxEvents {
		t.Errorf("%d small events: a message of %d, want %d", len(small), n, batchMaxEvents)
	}
	if n := messageEvents(small[:3]); n != 3 {
		t.Errorf("3 small events: a message of %d, want 3", n)
	}

	big := fixture.New(2, 1).Batch(8)
	for i := range big {
		big[i].Payload = make([]byte, batchMaxBytes/3)
	}
	xs := encode(big)
	size := len(xs[0].Wire())
	if want := batchMaxBytes / size; messageEvents(xs) != want {
		t.Errorf("events of %d bytes: a message of %d, want %d", size, messageEvents(xs), want)
	}
	huge := fixture.New(3, 1).Batch(2)
	huge[0].Payload = make([]byte, batchMaxBytes)
	if n := messageEvents(encode(huge)); n != 1 {
		t.Errorf("an event larger than a message: a message of %d, want 1", n)
	}
}
