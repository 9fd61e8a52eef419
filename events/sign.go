package events

import (
	"crypto/ed25519"
	"fmt"
)

// SignatureLen is the length of an event's Signature: an Ed25519
// signature.
const SignatureLen = ed25519.SignatureSize

// Sign returns e with Signature set to key's signature of e.ID. e must be
// sealed: the signature vouches for the ID, and through it for the content.
func Sign(e Event, key ed25519.PrivateKey) Event {
	e.Signature = ed25519.Sign(key, e.ID[:])
	return e
}

// VerifySignature reports, with an error matching ErrSignature, whether
// e.Signature is not a signature of e.ID by key. It does not check that
// the ID matches the content; Verify does.
func VerifySignature(e Event, key ed25519.PublicKey) error {
	if len(e.Signature) == 0 {
		return fmt.Errorf("%w: event %v is not signed", ErrSignature, e.ID)
	}
	if len(key) != ed25519.PublicKeySize || !ed25519.Verify(key, e.ID[:], e.Signature) {
		return fmt.Errorf("%w: event %v is not signed by its origin", ErrSignature, e.ID)
	}
	return nil
}
