package events

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"reflect"
	"testing"

	"github.com/scopemesh/scopemesh/hlc"
)

func TestSignedEventsRoundTrip(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	e, err := Seal(Event{Time: hlc.Timestamp{Wall: 5}, Node: "n", Kind: "k", Attrs: map[string]string{"a": "b"}})
	if err != nil {
		t.Fatal(err)
	}
	signed := Sign(e, priv)
	if signed.ID != e.ID {
		t.Fatal("signing changed the ID")
	}
	if err := VerifySignature(signed, pub); err != nil {
		t.Fatal(err)
	}
	if err := VerifySignature(e, pub); !errors.Is(err, ErrSignature) {
		t.Fatalf("unsigned event: %v, want ErrSignature", err)
	}
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	if err := VerifySignature(signed, other); !errors.Is(err, ErrSignature) {
		t.Fatalf("another key: %v, want ErrSignature", err)
	}

	wire, err := Marshal(signed)
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := Marshal(e)
	if len(wire) != len(plain)+signatureFieldLen {
		t.Fatalf("signed wire form is %d bytes, unsigned %d", len(wire), len(plain))
	}
	back, err := Unmarshal(wire)
	if err != nil || !reflect.DeepEqual(back, signed) {
		t.Fatalf("Unmarshal = %+v, %v; want %+v", back, err, signed)
	}
	batch, err := EncodeBatch([]Event{signed, e})
	if err != nil {
		t.Fatal(err)
	}
	evs, err := DecodeBatch(batch)
	if err != nil || !reflect.DeepEqual(evs, []Event{signed, e}) {
		t.Fatalf("batch round trip: %v", err)
	}

	// A forged signature still decodes (the ID is intact) but does not
	// verify; a signature of the wrong length is invalid.
	forged := signed
	forged.Signature = append([]byte(nil), signed.Signature...)
	forged.Signature[0] ^= 1
	if err := VerifySignature(forged, pub); !errors.Is(err, ErrSignature) {
		t.Fatalf("forged signature: %v", err)
	}
	short := signed
	short.Signature = signed.Signature[:10]
	if _, err := Marshal(short); !errors.Is(err, ErrInvalid) {
		t.Fatalf("short signature: %v, want ErrInvalid", err)
	}
}
