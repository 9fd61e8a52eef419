package events

import (
	"testing"

	"github.com/scopemesh/scopemesh/hlc"
)

// typicalEvent returns an event shaped like most scopemesh events: a 52-char
// peer ID, an HTTP request with a handful of attributes and a small payload.
// It encodes to about 300 bytes.
func typicalEvent() Event {
	return Event{
		Time:        hlc.Timestamp{Wall: 1_754_000_000_123_456_789, Logical: 3},
		Node:        "12D3KooWGzh5sBvXh3ax1W3kG3sUqk8JcS2oD4ziLBEX5WwFMaYq",
		Correlation: TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		Parent:      ID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7, 31: 0x01},
		Kind:        "http.request",
		Attrs: map[string]string{
			"method":     "GET",
			"path":       "/api/v1/orders/1234",
			"status":     "200",
			"remote":     "10.0.0.12:53122",
			"user_agent": "curl/8.5.0",
		},
		Payload: []byte(`{"bytes":5123,"ms":12}`),
	}
}

// minimalEvent returns an event with only the required fields.
func minimalEvent() Event {
	return Event{Node: "n", Kind: "k"}
}

func mustSeal(t testing.TB, e Event) Event {
	t.Helper()
	s, err := Seal(e)
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	return s
}

func mustMarshal(t testing.TB, e Event) []byte {
	t.Helper()
	b, err := Marshal(e)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	return b
}

// normalize returns e with empty Attrs and Payload set to nil, as decoding
// returns them.
func normalize(e Event) Event {
	if len(e.Attrs) == 0 {
		e.Attrs = nil
	}
	if len(e.Payload) == 0 {
		e.Payload = nil
	}
	return e
}

// sortedAttrs appends the entries of m to dst in canonical order.
func sortedAttrs(dst []attr, m map[string]string) []attr {
	for k, v := range m {
		dst = append(dst, attr{k, v})
	}
	sortAttrs(dst)
	return dst
}
