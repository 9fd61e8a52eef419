package query

import (
	"errors"
	"reflect"
	"testing"

	"github.com/scopemesh/scopemesh/crdt"
	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/hlc"
)

func TestFilterCodecRoundTrip(t *testing.T) {
	for _, f := range []Filter{
		{},
		{Limit: 5, Descending: true},
		{
			Correlation: events.TraceID{1, 2, 3},
			Nodes:       []string{"a", "b"},
			Kinds:       []string{"http.request"},
			Attrs:       map[string]string{"path": "/x", "status": "200"},
			Since:       hlc.Timestamp{Wall: 10, Logical: 1},
			Until:       hlc.Timestamp{Wall: 20},
			Limit:       MaxLimit,
			After:       crdt.Key{9},
		},
	} {
		b, err := MarshalFilter(f)
		if err != nil {
			t.Fatal(err)
		}
		got, err := UnmarshalFilter(b)
		if err != nil || !reflect.DeepEqual(got, f) {
			t.Fatalf("round trip of %+v = %+v, %v", f, got, err)
		}
	}
}

func TestFilterCodecRejectsBadInput(t *testing.T) {
	if _, err := MarshalFilter(Filter{Limit: -1}); !errors.Is(err, ErrInvalidFilter) {
		t.Fatalf("MarshalFilter of an invalid filter = %v", err)
	}
	good, _ := MarshalFilter(Filter{Limit: 3})
	for name, b := range map[string][]byte{
		"empty":         {},
		"not cbor":      []byte("hello"),
		"truncated":     good[:len(good)-1],
		"too large":     make([]byte, MaxFilterBytes+1),
		"wrong version": mustEncode(t, wireFilter{Version: 2}),
		"short trace":   mustEncode(t, wireFilter{Version: 1, Correlation: []byte{1}}),
		"bad since":     mustEncode(t, wireFilter{Version: 1, Since: []int64{1}}),
		"negative":      mustEncode(t, wireFilter{Version: 1, Limit: -4}),
		"many nodes":    mustEncode(t, wireFilter{Version: 1, Nodes: make([]string, MaxValues+1)}),
	} {
		if _, err := UnmarshalFilter(b); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
}

func mustEncode(t *testing.T, w wireFilter) []byte {
	t.Helper()
	b, err := encMode.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzUnmarshalFilter: no input panics, and what decodes re-encodes to a
// filter that decodes the same.
func FuzzUnmarshalFilter(f *testing.F) {
	for _, fl := range []Filter{{}, {Limit: 7, Kinds: []string{"k"}, Attrs: map[string]string{"a": "b"}}} {
		b, _ := MarshalFilter(fl)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fl, err := UnmarshalFilter(b)
		if err != nil {
			return
		}
		again, err := MarshalFilter(fl)
		if err != nil {
			t.Fatalf("a decoded filter does not encode: %v", err)
		}
		back, err := UnmarshalFilter(again)
		if err != nil || !reflect.DeepEqual(back, fl) {
			t.Fatalf("re-decoded %+v, want %+v (%v)", back, fl, err)
		}
	})
}
