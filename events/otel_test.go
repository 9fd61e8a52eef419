package events

import (
	"context"
	"net/http"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// The carriers of each package must serve the other.
var (
	_ propagation.TextMapCarrier = HeaderCarrier(nil)
	_ propagation.ValuesGetter   = HeaderCarrier(nil)
	_ propagation.TextMapCarrier = MetadataCarrier(nil)
	_ propagation.TextMapCarrier = MapCarrier(nil)
	_ TextMapCarrier             = propagation.HeaderCarrier(nil)
	_ ValuesGetter               = propagation.HeaderCarrier(nil)
	_ TextMapCarrier             = propagation.MapCarrier(nil)
)

func TestOTelInjectsWeExtract(t *testing.T) {
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		SpanID:     trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
		TraceFlags: trace.FlagsSampled,
	})
	ts, err := trace.ParseTraceState("congo=t61rcWkgMzE")
	if err != nil {
		t.Fatal(err)
	}
	sc = sc.WithTraceState(ts)
	h := http.Header{}
	propagation.TraceContext{}.Inject(trace.ContextWithSpanContext(context.Background(), sc), propagation.HeaderCarrier(h))

	ctx := Propagator{}.Extract(context.Background(), HeaderCarrier(h))
	got, ok := TraceFromContext(ctx)
	if !ok || [16]byte(got) != [16]byte(sc.TraceID()) {
		t.Fatalf("trace %s from %q, want %s", got, h.Get("traceparent"), sc.TraceID())
	}
	// OpenTelemetry sends no scopemesh parent: the span is not an event,
	// but the remote parent span.
	if _, ok := ParentFromContext(ctx); ok {
		t.Fatal("parent from an OpenTelemetry span")
	}
	if span, ok := RemoteSpanFromContext(ctx, got); !ok || [8]byte(span) != [8]byte(sc.SpanID()) {
		t.Fatalf("remote span %s, %v; want %s", span, ok, sc.SpanID())
	}
	// Passed on by a hop that records nothing, traceparent and tracestate
	// are unchanged.
	out := MapCarrier{}
	Propagator{}.Inject(ctx, out)
	if out["traceparent"] != h.Get("traceparent") || out["tracestate"] != "congo=t61rcWkgMzE" {
		t.Fatalf("passed on as %v", out)
	}
	// An event recorded for the request becomes the parent: a new
	// parent-id, and the sampling decision kept.
	e := mustSeal(t, Event{Node: "n", Kind: "http.server"})
	out = MapCarrier{}
	Propagator{}.Inject(ContextWithParent(ctx, e.ID), out)
	next := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier(out)))
	if next.TraceID() != sc.TraceID() || [8]byte(next.SpanID()) != [8]byte(e.ID.Span()) || next.TraceFlags() != sc.TraceFlags() {
		t.Fatalf("OpenTelemetry reads %v from %v", next, out)
	}
}

// An OpenTelemetry caller that chose not to sample, or whose trace ID is
// random, has its flags kept all the way.
func TestOTelFlagsSurvive(t *testing.T) {
	for _, flags := range []trace.TraceFlags{0, trace.FlagsSampled, trace.FlagsRandom, trace.FlagsSampled | trace.FlagsRandom} {
		sc := trace.NewSpanContext(trace.SpanContextConfig{
			TraceID:    trace.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
			SpanID:     trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8},
			TraceFlags: flags,
		})
		h := http.Header{}
		propagation.TraceContext{}.Inject(trace.ContextWithSpanContext(context.Background(), sc), propagation.HeaderCarrier(h))
		ctx := Propagator{}.Extract(context.Background(), HeaderCarrier(h))
		e := mustSeal(t, Event{Node: "n", Kind: "k"})
		for name, hop := range map[string]context.Context{"passing on": ctx, "recording": ContextWithParent(ctx, e.ID)} {
			out := http.Header{}
			Propagator{}.Inject(hop, HeaderCarrier(out))
			got := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), propagation.HeaderCarrier(out)))
			if got.TraceFlags() != flags {
				t.Errorf("flags %v, %s: sent on as %v (%q)", flags, name, got.TraceFlags(), out.Get("traceparent"))
			}
		}
	}
}

func TestWeInjectOTelExtracts(t *testing.T) {
	parent := mustSeal(t, typicalEvent()).ID
	ctx, tr := tracedContext(parent)
	h := http.Header{}
	Propagator{}.Inject(ctx, HeaderCarrier(h))
	h.Add("tracestate", "congo=t61rcWkgMzE")
	ctx = Propagator{}.Extract(context.Background(), HeaderCarrier(h))
	h = http.Header{}
	Propagator{}.Inject(ctx, HeaderCarrier(h))

	// A trace that starts here is sampled, and its ID random.
	sc := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), propagation.HeaderCarrier(h)))
	if !sc.IsValid() || !sc.IsRemote() || !sc.IsSampled() || !sc.TraceFlags().IsRandom() {
		t.Fatalf("OpenTelemetry refused %q: %+v", h.Get("traceparent"), sc)
	}
	if [16]byte(sc.TraceID()) != [16]byte(tr) {
		t.Fatalf("trace %s, want %s", sc.TraceID(), tr)
	}
	if [8]byte(sc.SpanID()) != [8]byte(parent[:8]) {
		t.Fatalf("span %s, want the first 8 bytes of %s", sc.SpanID(), parent)
	}
	if got := sc.TraceState().Get("scopemesh"); got != parent.String() {
		t.Fatalf("tracestate scopemesh=%q, want %s", got, parent)
	}
	if got := sc.TraceState().Get("congo"); got != "t61rcWkgMzE" {
		t.Fatalf("tracestate congo=%q", got)
	}

	// Through an OpenTelemetry hop that keeps the span, the parent survives.
	h2 := http.Header{}
	propagation.TraceContext{}.Inject(trace.ContextWithSpanContext(context.Background(), sc), propagation.HeaderCarrier(h2))
	back := Propagator{}.Extract(context.Background(), HeaderCarrier(h2))
	if p, _ := ParentFromContext(back); p != parent {
		t.Fatalf("parent %s after an OpenTelemetry hop, want %s", p, parent)
	}
	// One that starts a child span changes parent-id: the parent event is
	// unknown, and the child span the remote parent.
	child := trace.NewSpanContext(trace.SpanContextConfig{TraceID: sc.TraceID(), SpanID: trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8}, TraceFlags: sc.TraceFlags(), TraceState: sc.TraceState()})
	h3 := http.Header{}
	propagation.TraceContext{}.Inject(trace.ContextWithSpanContext(context.Background(), child), propagation.HeaderCarrier(h3))
	back = Propagator{}.Extract(context.Background(), HeaderCarrier(h3))
	if p, ok := ParentFromContext(back); ok {
		t.Fatalf("parent %s after a span that OpenTelemetry changed", p)
	}
	if span, ok := RemoteSpanFromContext(back, tr); !ok || [8]byte(span) != [8]byte(child.SpanID()) {
		t.Fatalf("remote span %s, %v; want %s", span, ok, child.SpanID())
	}
	if got, _ := TraceFromContext(back); got != tr {
		t.Fatalf("trace %s after an OpenTelemetry hop, want %s", got, tr)
	}
}
