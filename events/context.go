package events

import (
	"context"
	"crypto/rand"
)

// NewTraceID returns a random trace ID from crypto/rand. It is never zero,
// which W3C Trace Context reserves as invalid.
func NewTraceID() TraceID {
	var t TraceID
	for t.IsZero() {
		rand.Read(t[:]) // never fails: it crashes the program instead
	}
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
