package events

import (
	"bytes"
	"crypto/sha256"
	"reflect"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"

	"github.com/scopemesh/scopemesh/hlc"
)

// The reference codec: fxamacker/cbor with core deterministic encoding
// options, on the struct canonical.go documents. The hand-written codec must
// agree with it byte for byte.

type refWire struct {
	ID          ID                `cbor:"0,keyasint"`
	Wall        int64             `cbor:"1,keyasint"`
	Logical     uint32            `cbor:"2,keyasint,omitzero"`
	Node        string            `cbor:"3,keyasint"`
	Correlation TraceID           `cbor:"4,keyasint,omitzero"`
	Parent      ID                `cbor:"5,keyasint,omitzero"`
	Kind        string            `cbor:"6,keyasint"`
	Attrs       map[string]string `cbor:"7,keyasint,omitempty"`
	Payload     []byte            `cbor:"8,keyasint,omitempty"`
}

type refContent struct {
	Wall        int64             `cbor:"1,keyasint"`
	Logical     uint32            `cbor:"2,keyasint,omitzero"`
	Node        string            `cbor:"3,keyasint"`
	Correlation TraceID           `cbor:"4,keyasint,omitzero"`
	Parent      ID                `cbor:"5,keyasint,omitzero"`
	Kind        string            `cbor:"6,keyasint"`
	Attrs       map[string]string `cbor:"7,keyasint,omitempty"`
	Payload     []byte            `cbor:"8,keyasint,omitempty"`
}

// refDecoded receives untrusted input: fixed-size fields as slices, so that
// their lengths can be checked rather than silently padded.
type refDecoded struct {
	ID          []byte            `cbor:"0,keyasint"`
	Wall        int64             `cbor:"1,keyasint"`
	Logical     uint32            `cbor:"2,keyasint"`
	Node        string            `cbor:"3,keyasint"`
	Correlation []byte            `cbor:"4,keyasint"`
	Parent      []byte            `cbor:"5,keyasint"`
	Kind        string            `cbor:"6,keyasint"`
	Attrs       map[string]string `cbor:"7,keyasint"`
	Payload     []byte            `cbor:"8,keyasint"`
}

var (
	refEnc = func() cbor.EncMode {
		m, err := cbor.CoreDetEncOptions().EncMode()
		if err != nil {
			panic(err)
		}
		return m
	}()
	refDec = func() cbor.DecMode {
		m, err := cbor.DecOptions{
			DupMapKey:         cbor.DupMapKeyEnforcedAPF,
			IndefLength:       cbor.IndefLengthForbidden,
			TagsMd:            cbor.TagsForbidden,
			ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
			UTF8:              cbor.UTF8RejectInvalid,
			MaxNestedLevels:   4,
			MaxArrayElements:  16,
			MaxMapPairs:       1 << 20,
		}.DecMode()
		if err != nil {
			panic(err)
		}
		return m
	}()
)

func refContentOf(e Event) refContent {
	return refContent{
		Wall: e.Time.Wall, Logical: e.Time.Logical, Node: e.Node,
		Correlation: e.Correlation, Parent: e.Parent, Kind: e.Kind,
		Attrs: e.Attrs, Payload: e.Payload,
	}
}

func refMarshalContent(t testing.TB, e Event) []byte {
	t.Helper()
	b, err := refEnc.Marshal(refContentOf(e))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func refMarshalWire(t testing.TB, e Event) []byte {
	t.Helper()
	c := refContentOf(e)
	b, err := refEnc.Marshal(refWire{
		ID: e.ID, Wall: c.Wall, Logical: c.Logical, Node: c.Node,
		Correlation: c.Correlation, Parent: c.Parent, Kind: c.Kind,
		Attrs: c.Attrs, Payload: c.Payload,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// refUnmarshal is the reference decoder: the event b encodes, if b is
// exactly its canonical wire form, holds a well-formed event and the right
// ID. Limits are not applied.
func refUnmarshal(t testing.TB, b []byte) (Event, bool) {
	var d refDecoded
	if err := refDec.Unmarshal(b, &d); err != nil {
		return Event{}, false
	}
	if len(d.ID) != len(ID{}) ||
		(d.Correlation != nil && len(d.Correlation) != len(TraceID{})) ||
		(d.Parent != nil && len(d.Parent) != len(ID{})) ||
		d.Node == "" || d.Kind == "" {
		return Event{}, false
	}
	e := Event{
		ID:   ID(d.ID),
		Time: hlc.Timestamp{Wall: d.Wall, Logical: d.Logical},
		Node: d.Node, Kind: d.Kind, Attrs: d.Attrs, Payload: d.Payload,
	}
	copy(e.Correlation[:], d.Correlation)
	copy(e.Parent[:], d.Parent)
	if !bytes.Equal(refMarshalWire(t, e), b) {
		return Event{}, false // not canonical
	}
	if ID(sha256.Sum256(refMarshalContent(t, e))) != e.ID {
		return Event{}, false
	}
	return normalize(e), true
}

func TestCanonicalMatchesReference(t *testing.T) {
	events := []Event{typicalEvent(), minimalEvent()}
	e := typicalEvent()
	e.Time = hlc.Timestamp{Wall: -1 << 50, Logical: 1 << 20}
	e.Attrs = map[string]string{}
	for i := range 40 {
		// Keys around the 23/24-byte head boundary, mixed lengths.
		e.Attrs[strings.Repeat("k", i%30)+string(rune('a'+i%7))] = strings.Repeat("v", i*7)
	}
	e.Payload = make([]byte, 300)
	events = append(events, e)
	big := minimalEvent()
	big.Payload = make([]byte, 70000)
	big.Node = strings.Repeat("n", 256)
	events = append(events, big)

	for i, e := range events {
		got := appendContent(nil, e, sortedAttrs(nil, e.Attrs))
		want := refMarshalContent(t, e)
		if !bytes.Equal(got, want) {
			t.Fatalf("event %d: content\n got %x\nwant %x", i, got, want)
		}
		l := Limits{MaxAttrValueBytes: 1 << 20, MaxEventBytes: 1 << 20, MaxNodeBytes: 1 << 10}
		s, err := l.Seal(e)
		if err != nil {
			t.Fatal(err)
		}
		wire, err := l.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if want := refMarshalWire(t, s); !bytes.Equal(wire, want) {
			t.Fatalf("event %d: wire\n got %x\nwant %x", i, wire, want)
		}
		if ref, ok := refUnmarshal(t, wire); !ok || !reflect.DeepEqual(ref, normalize(s)) {
			t.Fatalf("event %d: reference decoder: %v %+v", i, ok, ref)
		}
	}
}
