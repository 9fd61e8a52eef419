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
	// OpenTelemetry sends no scopemesh parent: the span is not an event.
	if _, ok := ParentFromContext(ctx); ok {
		t.Fatal("parent from an OpenTelemetry span")
	}
	// Its tracestate travels on.
	out := MapCarrier{}
	Propagator{}.Inject(ctx, out)
	if out["tracestate"] != "congo=t61rcWkgMzE" {
		t.Fatalf("tracestate %q", out["tracestate"])
	}
}

func TestWeInjectOTelExtracts(t *testing.T) {
	parent := mustSeal(t, typicalEvent()).ID
	ctx, tr := tracedContext(parent)
	ctx = contextWithForeignState(ctx, foreignState{trace: tr, members: []string{"congo=t61rcWkgMzE"}})
	h := http.Header{}
	Propagator{}.Inject(ctx, HeaderCarrier(h))

	sc := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), propagation.HeaderCarrier(h)))
	if !sc.IsValid() || !sc.IsRemote() || !sc.IsSampled() {
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
	// One that starts a child span changes parent-id: the parent is unknown.
	child := trace.NewSpanContext(trace.SpanContextConfig{TraceID: sc.TraceID(), SpanID: trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8}, TraceFlags: sc.TraceFlags(), TraceState: sc.TraceState()})
	h3 := http.Header{}
	propagation.TraceContext{}.Inject(trace.ContextWithSpanContext(context.Background(), child), propagation.HeaderCarrier(h3))
	back = Propagator{}.Extract(context.Background(), HeaderCarrier(h3))
	if p, ok := ParentFromContext(back); ok {
		t.Fatalf("parent %s after a span that OpenTelemetry changed", p)
	}
	if got, _ := TraceFromContext(back); got != tr {
		t.Fatalf("trace %s after an OpenTelemetry hop, want %s", got, tr)
	}
}
