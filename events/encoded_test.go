package events

import (
	"bytes"
	"testing"
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
