package events

import (
	"encoding/hex"
	"fmt"

	"github.com/scopemesh/scopemesh/hlc"
)

// ID identifies an event: the SHA-256 of the canonical encoding of all its
// other fields, so one ID always means one content.
type ID [32]byte

// TraceID identifies a trace (a correlation ID), in the W3C Trace Context
// format.
type TraceID [16]byte

// Event is one runtime event of a node: a call, an RPC, a message, a state
// change.
type Event struct {
	ID          ID                // set by Seal
	Time        hlc.Timestamp     // when it happened, on the cluster's hybrid logical clock
	Node        string            // the origin node (its peer ID)
	Correlation TraceID           // the trace it belongs to; zero if none
	Parent      ID                // the event that caused it; zero if none
	Kind        string            // what happened, e.g. "http.request"
	Attrs       map[string]string // small key-value details
	Payload     []byte            // opaque application data

	// Signature is the origin's Ed25519 signature of ID (see Sign), in
	// clusters that sign their events; empty otherwise. It is not part of
	// the content, so it does not change the ID.
	Signature []byte
}

// String returns the lowercase hex form of id.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// IsZero reports whether id is the zero ID.
func (id ID) IsZero() bool { return id == ID{} }

// ParseID reads the lowercase or uppercase hex form of an ID.
func ParseID(s string) (ID, error) {
	var id ID
	err := decodeHex(id[:], s, "event ID")
	return id, err
}

// MarshalText returns the lowercase hex form of id, so that JSON and other
// text encodings show IDs as they are printed.
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText reads the form ParseID reads.
func (id *ID) UnmarshalText(b []byte) error {
	v, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}

// String returns the lowercase hex form of t.
func (t TraceID) String() string { return hex.EncodeToString(t[:]) }

// IsZero reports whether t is the zero TraceID, which W3C Trace Context
// reserves as invalid.
func (t TraceID) IsZero() bool { return t == TraceID{} }

// ParseTraceID reads the lowercase or uppercase hex form of a TraceID.
func ParseTraceID(s string) (TraceID, error) {
	var t TraceID
	err := decodeHex(t[:], s, "trace ID")
	return t, err
}

// MarshalText returns the lowercase hex form of t.
func (t TraceID) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UnmarshalText reads the form ParseTraceID reads.
func (t *TraceID) UnmarshalText(b []byte) error {
	v, err := ParseTraceID(string(b))
	if err != nil {
		return err
	}
	*t = v
	return nil
}

func decodeHex(dst []byte, s, what string) error {
	if len(s) != 2*len(dst) {
		return fmt.Errorf("%w: %s %s has %d hex digits, want %d", ErrInvalid, what, abbrev(s), len(s), 2*len(dst))
	}
	if _, err := hex.Decode(dst, []byte(s)); err != nil {
		return fmt.Errorf("%w: %s %s: %v", ErrInvalid, what, abbrev(s), err)
	}
	return nil
}
