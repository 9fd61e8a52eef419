package events

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/scopemesh/scopemesh/hlc"
)

// TestEncodedCheckedUnder checks that an Encoded event counts as checked
// under the limits it was made with, and under equal ones, and not under
// others, whichever order limits are interned in.
func TestEncodedCheckedUnder(t *testing.T) {
	e := Event{Node: "n", Kind: "k", Attrs: map[string]string{"a": "1"}}
	tight := Limits{MaxAttrs: 3}
	loose := Limits{MaxAttrs: 30}
	for _, l := range []Limits{tight, loose, tight, {}, loose} {
		x, err := l.SealEncoded(e)
		if err != nil {
			t.Fatal(err)
		}
		if !x.CheckedUnder(l) {
			t.Fatalf("sealed under %+v, not checked under it", l)
		}
		for _, other := range []Limits{tight, loose, {}} {
			if other != l && x.CheckedUnder(other) {
				t.Fatalf("sealed under %+v, counted as checked under %+v", l, other)
			}
		}
		if wire, err := Marshal(x.Event()); err != nil || !bytes.Equal(wire, x.Wire()) {
			t.Fatalf("the wire form is not the event's encoding (%v)", err)
		}
	}
	if (Encoded{}).CheckedUnder(Limits{}) {
		t.Fatal("the zero Encoded counts as checked")
	}
}

// TestDecodedBatchKeepsAttrsAndPayloadEncoded: the events DecodeBatchEncoded
// returns hand out their Attrs and Payload only through Event, decoded
// afresh by each call, and Header leaves them out.
func TestDecodedBatchKeepsAttrsAndPayloadEncoded(t *testing.T) {
	e, err := Seal(Event{Node: "n", Kind: "k", Attrs: map[string]string{"a": "1", "bb": "2"}, Payload: []byte("body")})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := EncodeBatch([]Event{e, e})
	if err != nil {
		t.Fatal(err)
	}
	xs, err := DefaultLimits.DecodeBatchEncoded(batch)
	if err != nil {
		t.Fatal(err)
	}
	if h := xs[0].Header(); h.Attrs != nil || h.Payload != nil || h.ID != e.ID || h.Node != "n" || h.Kind != "k" {
		t.Fatalf("Header = %+v", h)
	}
	first, second := xs[0].Event(), xs[0].Event()
	if first.Attrs["bb"] != "2" || string(first.Payload) != "body" || Verify(first) != nil {
		t.Fatalf("Event = %+v", first)
	}
	first.Attrs["a"], first.Payload[0] = "changed", 'B'
	if second.Attrs["a"] != "1" || string(second.Payload) != "body" || xs[0].Event().Attrs["a"] != "1" {
		t.Fatal("the events of two calls share their Attrs or Payload")
	}
}

func TestAppendBatchEncodedAppends(t *testing.T) {
	var evs []Event
	for i := range 3 {
		e, err := Seal(Event{Node: "n", Kind: "k", Time: hlc.Timestamp{Wall: int64(i + 1)}})
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, e)
	}
	first, err := EncodeBatch(evs[:1])
	if err != nil {
		t.Fatal(err)
	}
	rest, err := EncodeBatch(evs[1:])
	if err != nil {
		t.Fatal(err)
	}
	xs, err := DefaultLimits.AppendBatchEncoded(nil, first)
	if err != nil {
		t.Fatal(err)
	}
	xs, err = DefaultLimits.AppendBatchEncoded(xs[:1:1], rest)
	if err != nil || len(xs) != 3 {
		t.Fatalf("AppendBatchEncoded = %d events, %v", len(xs), err)
	}
	for i, x := range xs {
		if x.Header().ID != evs[i].ID {
			t.Fatalf("event %d is %v, want %v", i, x.Header().ID, evs[i].ID)
		}
	}
	if _, err := DefaultLimits.AppendBatchEncoded(xs, []byte("not a batch")); err == nil {
		t.Fatal("a bad batch appended without an error")
	}
}

// TestAppendBatchInPlaceSharesTheBatch: events decoded in place share the
// expanded batch in the scratch buffer, which the next call reuses, and
// Clone and MoveTo give them wire forms of their own.
func TestAppendBatchInPlaceSharesTheBatch(t *testing.T) {
	evs := sealedBatch(t, 40)
	batch := mustEncodeBatch(t, Limits{}, evs...)
	if batch[1] != compressZstd {
		t.Fatal("the batch is not compressed")
	}
	var scratch []byte
	xs, err := DefaultLimits.AppendBatchInPlace(nil, batch, &scratch)
	if err != nil || len(xs) != len(evs) {
		t.Fatalf("AppendBatchInPlace = %d events, %v", len(xs), err)
	}
	clone := xs[0].Clone()
	stored := xs[1]
	slab := stored.MoveTo(make([]byte, 3, 1<<10))
	if len(slab) != 3+len(xs[1].Wire()) || !bytes.Equal(stored.Wire(), slab[3:]) {
		t.Fatal("MoveTo did not append the wire form")
	}
	clear(scratch[:cap(scratch)])
	for i, x := range xs {
		if !bytes.Equal(x.Wire(), make([]byte, len(x.Wire()))) {
			t.Fatalf("event %d has a wire form outside the scratch buffer", i)
		}
	}
	if !bytes.Equal(clone.Wire(), mustMarshal(t, evs[0])) || !reflect.DeepEqual(clone.Event(), evs[0]) {
		t.Fatal("a clone changed with the scratch buffer")
	}
	if !reflect.DeepEqual(stored.Event(), evs[1]) {
		t.Fatal("an event appended elsewhere changed with the scratch buffer")
	}
	if slab[3]++; stored.Wire()[0] != slab[3] {
		t.Fatal("MoveTo's event does not share the appended bytes")
	}
	again, err := DefaultLimits.AppendBatchInPlace(xs[:0], batch, &scratch)
	if err != nil || !reflect.DeepEqual(again[5].Event(), evs[5]) {
		t.Fatalf("decoding again into the same buffers: %v", err)
	}
}
