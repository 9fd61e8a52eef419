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
	traceKey    struct{}
	parentKey   struct{}
	receivedKey struct{}
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

// RemoteSpanFromContext returns the span that sent trace t to this process,
// as Propagator.Extract read it from traceparent, if it names no event of
// scopemesh: the span of an OpenTelemetry caller, say, which the events
// recorded for the request name in AttrParentSpanID.
func RemoteSpanFromContext(ctx context.Context, t TraceID) (SpanID, bool) {
	in := receivedFromContext(ctx, t)
	if in == nil || in.event {
		return SpanID{}, false
	}
	return in.span, true
}

// received is what Extract read with a trace: the caller's parent-id and
// flags, and the tracestate members in order, ours included, so that
// Inject passes them on as W3C Trace Context asks. They belong to that
// trace only.
type received struct {
	trace   TraceID
	span    SpanID
	flags   byte     // the known flags only
	members []string // tracestate members
	event   bool     // span is the parent event's
}

func contextWithReceived(ctx context.Context, r *received) context.Context {
	return context.WithValue(ctx, receivedKey{}, r)
}

// receivedFromContext returns what was received with trace t, if ctx
// carries it.
func receivedFromContext(ctx context.Context, t TraceID) *received {
	r, _ := ctx.Value(receivedKey{}).(*received)
	if r == nil || r.trace != t {
		return nil
	}
	return r
}
