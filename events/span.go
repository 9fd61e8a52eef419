package events

import (
	"encoding/hex"
	"fmt"
	"time"
)

// SpanID is a W3C Trace Context parent-id: 8 bytes naming a span, such as
// an OpenTelemetry span, or an event, by the first 8 bytes of its ID
// (ID.Span), as traceparent names the parent event.
type SpanID [8]byte

// String returns the lowercase hex form of s.
func (s SpanID) String() string { return hex.EncodeToString(s[:]) }

// IsZero reports whether s is the zero SpanID, which W3C reserves as
// invalid.
func (s SpanID) IsZero() bool { return s == SpanID{} }

// ParseSpanID reads the 16 lowercase hex digits of a SpanID, the form
// traceparent and the span attributes hold.
func ParseSpanID(s string) (SpanID, error) {
	var id SpanID
	if !decodeLowerHex(id[:], s) {
		return id, fmt.Errorf("%w: span ID %s is not 16 lowercase hex digits", ErrInvalid, abbrev(s))
	}
	return id, nil
}

// Span returns the span ID that names the event id in traceparent: its
// first 8 bytes.
func (id ID) Span() SpanID { return SpanID(id[:8]) }

// Attribute keys that give an event the shape of a span: an operation with
// an identity, a cause and a duration, as OpenTelemetry records them.
// Package otelbridge writes all four for every span it records, and
// Node.Record writes AttrParentSpanID into the events of a request whose
// traceparent named a span rather than an event (RemoteSpanFromContext).
// A trace (package query) makes an event that names no parent event the
// child of the event whose span AttrParentSpanID names, and orders and
// draws events by their start and duration.
const (
	AttrSpanID       = "span.id"        // the span the event stands for: 16 lowercase hex digits
	AttrParentSpanID = "span.parent_id" // the span that caused it, or an event's ID.Span: 16 lowercase hex digits
	AttrStart        = "span.start"     // when the operation began: RFC 3339 with nanoseconds, in UTC
	AttrDuration     = "span.duration"  // how long it took: a time.Duration's String
)

// SpanOf returns the span e stands for: AttrSpanID if it holds one, else
// e.ID.Span(), by which traceparent names the event.
func SpanOf(e Event) SpanID {
	var s SpanID
	if v, ok := e.Attrs[AttrSpanID]; ok && decodeLowerHex(s[:], v) && !s.IsZero() {
		return s
	}
	return e.ID.Span()
}

// ParentSpanOf returns the span AttrParentSpanID names as e's cause, and
// whether it holds a valid one.
func ParentSpanOf(e Event) (SpanID, bool) {
	var s SpanID
	v, ok := e.Attrs[AttrParentSpanID]
	return s, ok && decodeLowerHex(s[:], v) && !s.IsZero()
}

// Interval returns when the operation e stands for began and how long it
// took, from AttrStart and AttrDuration, and whether e holds both, well
// formed and the duration not negative.
func Interval(e Event) (start time.Time, d time.Duration, ok bool) {
	s, okStart := e.Attrs[AttrStart]
	v, okDur := e.Attrs[AttrDuration]
	if !okStart || !okDur {
		return time.Time{}, 0, false
	}
	start, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, 0, false
	}
	if d, err = time.ParseDuration(v); err != nil || d < 0 {
		return time.Time{}, 0, false
	}
	return start, d, true
}

// Extent returns the wall-clock interval e covers, in Unix nanoseconds:
// the start and end of the operation it stands for (Interval), or, for an
// event of a moment, its HLC wall time twice.
func Extent(e Event) (start, end int64) {
	if s, d, ok := Interval(e); ok {
		return s.UnixNano(), s.Add(d).UnixNano()
	}
	return e.Time.Wall, e.Time.Wall
}

// IntervalAttrs returns the values of AttrStart and AttrDuration for an
// operation that began at start and took d, the forms Interval reads.
func IntervalAttrs(start time.Time, d time.Duration) (startAttr, durationAttr string) {
	return start.UTC().Format(time.RFC3339Nano), d.String()
}
