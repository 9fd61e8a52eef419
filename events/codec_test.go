package events

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"testing"

	"github.com/scopemesh/scopemesh/hlc"
)

func TestSealRoundTrip(t *testing.T) {
	cases := map[string]Event{
		"typical":       typicalEvent(),
		"minimal":       minimalEvent(),
		"negative wall": {Time: hlc.Timestamp{Wall: math.MinInt64, Logical: math.MaxUint32}, Node: "n", Kind: "k"},
		"max wall":      {Time: hlc.Timestamp{Wall: math.MaxInt64}, Node: "n", Kind: "k"},
		"empty attrs and payload": {
			Node: "n", Kind: "k", Attrs: map[string]string{}, Payload: []byte{},
		},
		"unicode": {Node: "nœud", Kind: "événement", Attrs: map[string]string{"clé": "valeur ✓", "": ""}},
	}
	for name, e := range cases {
		t.Run(name, func(t *testing.T) {
			s := mustSeal(t, e)
			if s.ID.IsZero() {
				t.Fatal("Seal left the ID zero")
			}
			if err := Verify(s); err != nil {
				t.Fatalf("Verify: %v", err)
			}
			b := mustMarshal(t, s)
			got, err := Unmarshal(b)
			if err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			if !reflect.DeepEqual(got, normalize(s)) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, normalize(s))
			}
			if !reflect.DeepEqual(s, normalize(s)) {
				t.Fatalf("Seal did not normalize: %+v", s)
			}
		})
	}
}

func TestSealIgnoresInsertionOrder(t *testing.T) {
	// Build the same attributes in many insertion orders; Go randomises map
	// iteration too, so this also covers iteration order.
	keys := []string{"a", "bb", "B", "ab", "aa", "z", "zz", "é", "\x00", "long-key-with-more-than-24-bytes!!"}
	var first []byte
	var firstID ID
	for rot := range keys {
		attrs := make(map[string]string)
		for i := range keys {
			k := keys[(i+rot)%len(keys)]
			attrs[k] = "v" + k
		}
		e := typicalEvent()
		e.Attrs = attrs
		s := mustSeal(t, e)
		b := mustMarshal(t, s)
		if first == nil {
			first, firstID = b, s.ID
			continue
		}
		if s.ID != firstID || !bytes.Equal(b, first) {
			t.Fatalf("rotation %d: ID %s, bytes %x; want %s, %x", rot, s.ID, b, firstID, first)
		}
	}
}

func TestSealNilAndEmptyAlike(t *testing.T) {
	a := mustSeal(t, Event{Node: "n", Kind: "k"})
	b := mustSeal(t, Event{Node: "n", Kind: "k", Attrs: map[string]string{}, Payload: []byte{}})
	if a.ID != b.ID {
		t.Fatalf("nil and empty Attrs/Payload give different IDs: %s, %s", a.ID, b.ID)
	}
}

func TestSealDistinguishesFields(t *testing.T) {
	base := typicalEvent()
	changes := map[string]func(*Event){
		"wall":        func(e *Event) { e.Time.Wall++ },
		"logical":     func(e *Event) { e.Time.Logical++ },
		"node":        func(e *Event) { e.Node += "x" },
		"correlation": func(e *Event) { e.Correlation[15] ^= 1 },
		"parent":      func(e *Event) { e.Parent[31] ^= 1 },
		"kind":        func(e *Event) { e.Kind = "http.response" },
		"attr value":  func(e *Event) { e.Attrs = map[string]string{"method": "POST"} },
		"attr key":    func(e *Event) { e.Attrs = map[string]string{"Method": "GET"} },
		"payload":     func(e *Event) { e.Payload = []byte("x") },
		// An attribute key and value could trade bytes if lengths were not
		// encoded; they are.
		"attr split": func(e *Event) { e.Attrs = map[string]string{"ab": "c"} },
	}
	ids := map[ID]string{mustSeal(t, base).ID: "base"}
	for name, change := range changes {
		e := typicalEvent()
		if name == "attr split" {
			e.Attrs = map[string]string{"a": "bc"}
			ids[mustSeal(t, e).ID] = "attr split base"
		}
		change(&e)
		id := mustSeal(t, e).ID
		if other, dup := ids[id]; dup {
			t.Errorf("%s: same ID as %s", name, other)
		}
		ids[id] = name
	}
}

func TestSealKnownAnswer(t *testing.T) {
	// The ID of an event must never change across versions of this package:
	// stored and replicated events are keyed by it.
	e := mustSeal(t, Event{
		Time: hlc.Timestamp{Wall: 1, Logical: 2},
		Node: "n",
		Kind: "k",
		Attrs: map[string]string{
			"a": "b",
		},
		Payload: []byte{0xff},
	})
	b := mustMarshal(t, e)
	// {0: h'…', 1: 1, 2: 2, 3: "n", 6: "k", 7: {"a": "b"}, 8: h'ff'}
	wantContent := []byte{0xa6, 0x01, 0x01, 0x02, 0x02, 0x03, 0x61, 'n', 0x06, 0x61, 'k', 0x07, 0xa1, 0x61, 'a', 0x61, 'b', 0x08, 0x41, 0xff}
	if !bytes.Equal(b[wirePrefixLen:], wantContent[1:]) || b[0] != 0xa7 {
		t.Fatalf("wire form %x, want a7 00 5820<ID> %x", b, wantContent[1:])
	}
	const wantID = "b8b8fed915e7af0881cf3c7fbcaa81320174412ab396198b58265f0074ccddf4"
	if got := e.ID.String(); got != wantID {
		t.Logf("ID %s (content %x)", got, wantContent)
		t.Fatalf("ID changed: got %s, want %s", got, wantID)
	}
}

func TestVerifyDetectsTampering(t *testing.T) {
	s := mustSeal(t, typicalEvent())
	tamper := map[string]func(*Event){
		"time":    func(e *Event) { e.Time.Logical++ },
		"node":    func(e *Event) { e.Node = "12D3KooWother" },
		"kind":    func(e *Event) { e.Kind = "http.response" },
		"attrs":   func(e *Event) { e.Attrs = map[string]string{"method": "POST"} },
		"payload": func(e *Event) { e.Payload = []byte("{}") },
		"parent":  func(e *Event) { e.Parent = ID{} },
		"id":      func(e *Event) { e.ID[0] ^= 1 },
		"zero id": func(e *Event) { e.ID = ID{} },
	}
	for name, f := range tamper {
		e := s
		e.Attrs = map[string]string{}
		for k, v := range s.Attrs {
			e.Attrs[k] = v
		}
		f(&e)
		if err := Verify(e); !errors.Is(err, ErrIDMismatch) {
			t.Errorf("%s: Verify = %v, want ErrIDMismatch", name, err)
		}
		if _, err := Marshal(e); !errors.Is(err, ErrIDMismatch) {
			t.Errorf("%s: Marshal = %v, want ErrIDMismatch", name, err)
		}
	}
}

func TestUnmarshalRejectsTamperedBytes(t *testing.T) {
	b := mustMarshal(t, mustSeal(t, typicalEvent()))
	// Flipping any bit of the encoding must be caught: by the structure
	// checks or by the ID.
	for i := range b {
		for bit := range 8 {
			c := bytes.Clone(b)
			c[i] ^= 1 << bit
			if _, err := Unmarshal(c); err == nil {
				t.Fatalf("byte %d bit %d flipped: accepted", i, bit)
			}
		}
	}
	// A flip inside the payload leaves the structure intact: only the ID
	// can catch it.
	c := bytes.Clone(b)
	c[len(c)-1] ^= 1
	if _, err := Unmarshal(c); !errors.Is(err, ErrIDMismatch) {
		t.Fatalf("payload flipped: %v, want ErrIDMismatch", err)
	}
}

func TestUnmarshalRejectsNonCanonical(t *testing.T) {
	s := mustSeal(t, Event{Node: "n", Kind: "k", Attrs: map[string]string{"a": "1", "b": "2"}})
	good := mustMarshal(t, s)
	if _, err := Unmarshal(good); err != nil {
		t.Fatal(err)
	}
	// Each input below is the same event encoded in a way the canonical
	// form forbids, with its ID fixed to match the content, so that only
	// the canonical checks can reject it.
	id := s.ID[:]
	prefix := append([]byte{0xa5, 0x00, 0x58, 0x20}, id...)
	cases := map[string][]byte{
		"long map head":      append(append([]byte{0xb8, 0x05, 0x00, 0x58, 0x20}, id...), 0x01, 0x00, 0x03, 0x61, 'n', 0x06, 0x61, 'k', 0x07, 0xa2, 0x61, 'a', 0x61, '1', 0x61, 'b', 0x61, '2'),
		"long wall":          append(bytes.Clone(prefix), 0x01, 0x18, 0x00, 0x03, 0x61, 'n', 0x06, 0x61, 'k', 0x07, 0xa2, 0x61, 'a', 0x61, '1', 0x61, 'b', 0x61, '2'),
		"long text head":     append(bytes.Clone(prefix), 0x01, 0x00, 0x03, 0x78, 0x01, 'n', 0x06, 0x61, 'k', 0x07, 0xa2, 0x61, 'a', 0x61, '1', 0x61, 'b', 0x61, '2'),
		"unsorted attrs":     append(bytes.Clone(prefix), 0x01, 0x00, 0x03, 0x61, 'n', 0x06, 0x61, 'k', 0x07, 0xa2, 0x61, 'b', 0x61, '2', 0x61, 'a', 0x61, '1'),
		"duplicate attrs":    append(bytes.Clone(prefix), 0x01, 0x00, 0x03, 0x61, 'n', 0x06, 0x61, 'k', 0x07, 0xa2, 0x61, 'a', 0x61, '1', 0x61, 'a', 0x61, '1'),
		"unsorted fields":    append(bytes.Clone(prefix), 0x01, 0x00, 0x06, 0x61, 'k', 0x03, 0x61, 'n', 0x07, 0xa2, 0x61, 'a', 0x61, '1', 0x61, 'b', 0x61, '2'),
		"indefinite attrs":   append(bytes.Clone(prefix), 0x01, 0x00, 0x03, 0x61, 'n', 0x06, 0x61, 'k', 0x07, 0xbf, 0x61, 'a', 0x61, '1', 0x61, 'b', 0x61, '2', 0xff),
		"zero logical":       append(append([]byte{0xa6, 0x00, 0x58, 0x20}, id...), 0x01, 0x00, 0x02, 0x00, 0x03, 0x61, 'n', 0x06, 0x61, 'k', 0x07, 0xa2, 0x61, 'a', 0x61, '1', 0x61, 'b', 0x61, '2'),
		"empty payload":      append(append([]byte{0xa6, 0x00, 0x58, 0x20}, id...), 0x01, 0x00, 0x03, 0x61, 'n', 0x06, 0x61, 'k', 0x07, 0xa2, 0x61, 'a', 0x61, '1', 0x61, 'b', 0x61, '2', 0x08, 0x40),
		"byte string kind":   append(bytes.Clone(prefix), 0x01, 0x00, 0x03, 0x61, 'n', 0x06, 0x41, 'k', 0x07, 0xa2, 0x61, 'a', 0x61, '1', 0x61, 'b', 0x61, '2'),
		"text key":           append(bytes.Clone(prefix), 0x61, '1', 0x00, 0x03, 0x61, 'n', 0x06, 0x61, 'k', 0x07, 0xa2, 0x61, 'a', 0x61, '1', 0x61, 'b', 0x61, '2'),
		"unknown field":      append(append([]byte{0xa6, 0x00, 0x58, 0x20}, id...), 0x01, 0x00, 0x03, 0x61, 'n', 0x06, 0x61, 'k', 0x07, 0xa2, 0x61, 'a', 0x61, '1', 0x61, 'b', 0x61, '2', 0x09, 0x00),
		"trailing byte":      append(bytes.Clone(good), 0x00),
		"tagged wall":        append(bytes.Clone(prefix), 0x01, 0xc1, 0x00, 0x03, 0x61, 'n', 0x06, 0x61, 'k', 0x07, 0xa2, 0x61, 'a', 0x61, '1', 0x61, 'b', 0x61, '2'),
		"invalid UTF-8 node": append(bytes.Clone(prefix), 0x01, 0x00, 0x03, 0x61, 0xff, 0x06, 0x61, 'k', 0x07, 0xa2, 0x61, 'a', 0x61, '1', 0x61, 'b', 0x61, '2'),
	}
	for name, b := range cases {
		_, err := Unmarshal(b)
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
}

func TestUnmarshalErrorsNameTheField(t *testing.T) {
	l := Limits{MaxKindBytes: 300}
	e := typicalEvent()
	e.Kind = string(bytes.Repeat([]byte("k"), 300))
	b, err := l.Marshal(mustSealWith(t, l, e))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Unmarshal(b)
	if !errors.Is(err, ErrTooLarge) || !bytes.Contains([]byte(err.Error()), []byte("Kind")) {
		t.Fatalf("Unmarshal = %v, want ErrTooLarge naming Kind", err)
	}
}

func mustSealWith(t testing.TB, l Limits, e Event) Event {
	t.Helper()
	s, err := l.Seal(e)
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	return s
}

func TestMinEventLen(t *testing.T) {
	b := mustMarshal(t, mustSeal(t, minimalEvent()))
	if len(b) != minEventLen {
		t.Fatalf("shortest event is %d bytes, minEventLen is %d", len(b), minEventLen)
	}
}

func TestEncodedLenMatches(t *testing.T) {
	for _, e := range []Event{typicalEvent(), minimalEvent(), {
		Time: hlc.Timestamp{Wall: -1 << 40, Logical: 70000},
		Node: string(make([]byte, 300)), Kind: "k",
		Attrs:   map[string]string{string(make([]byte, 24)): string(make([]byte, 70000))},
		Payload: make([]byte, 1<<16),
	}} {
		l, _ := Limits{MaxAttrValueBytes: 1 << 20, MaxEventBytes: 1 << 20, MaxNodeBytes: 1 << 10}.resolve()
		n, attrs, err := l.check(e, nil)
		if err != nil {
			t.Fatal(err)
		}
		b := appendContent(nil, e, attrs)
		if n != len(b) {
			t.Fatalf("check computed %d bytes, encoding has %d", n, len(b))
		}
	}
}

func TestIDText(t *testing.T) {
	id := mustSeal(t, typicalEvent()).ID
	got, err := ParseID(id.String())
	if err != nil || got != id {
		t.Fatalf("ParseID(%s) = %s, %v", id, got, err)
	}
	txt, _ := id.MarshalText()
	var back ID
	if err := back.UnmarshalText(txt); err != nil || back != id {
		t.Fatalf("UnmarshalText: %s, %v", back, err)
	}
	tr := NewTraceID()
	gotT, err := ParseTraceID(tr.String())
	if err != nil || gotT != tr {
		t.Fatalf("ParseTraceID(%s) = %s, %v", tr, gotT, err)
	}
	for _, bad := range []string{"", "00", id.String() + "0", "zz" + id.String()[2:]} {
		if _, err := ParseID(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseID(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestUnmarshalHeader(t *testing.T) {
	e := mustSeal(t, typicalEvent())
	b := mustMarshal(t, e)
	h, err := UnmarshalHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	want := e
	want.Attrs, want.Payload = nil, nil
	if !reflect.DeepEqual(h, want) {
		t.Fatalf("header %+v, want %+v", h, want)
	}
	// It does not check the ID: what a store holds was checked on the way in.
	b[len(b)-3] ^= 1
	if _, err := UnmarshalHeader(b); err != nil {
		t.Fatalf("a header with a changed payload byte: %v", err)
	}
	if _, err := UnmarshalHeader(append(b, 0)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("trailing bytes: %v, want ErrInvalid", err)
	}
	if _, err := UnmarshalHeader(b[:len(b)/2]); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a truncated event: %v, want ErrInvalid", err)
	}
}
