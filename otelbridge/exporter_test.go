package otelbridge

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/hlc"
)

// recorder keeps what it is given, sealed as a node would, or fails with
// err.
type recorder struct {
	mu     sync.Mutex
	events []events.Event
	err    error
	limits events.Limits
}

func (r *recorder) Record(_ context.Context, e events.Event) (events.Event, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return events.Event{}, r.err
	}
	// A signing node's ID and signature take the most room an event
	// leaves besides its content.
	e.Node = strings.Repeat("n", r.limits.MaxNodeBytes)
	e.Time = hlc.Timestamp{Wall: time.Now().UnixNano()}
	sealed, err := r.limits.Seal(e)
	if err != nil {
		return events.Event{}, err
	}
	sealed.Signature = make([]byte, events.SignatureLen)
	if err := r.limits.Validate(sealed); err != nil {
		return events.Event{}, err
	}
	r.events = append(r.events, sealed)
	return sealed, nil
}

// provider returns a tracer provider that exports to x as spans end.
func provider(t *testing.T, x *Exporter) trace.Tracer {
	t.Helper()
	res := resource.NewSchemaless(semconv.ServiceName("cart"), attribute.String("host.name", "h1"))
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(x), sdktrace.WithResource(res))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	return tp.Tracer("test")
}

func TestSpanBecomesEvent(t *testing.T) {
	rec := &recorder{limits: events.DefaultLimits}
	tracer := provider(t, New(rec, Config{}))
	ctx, parent := tracer.Start(context.Background(), "GET /cart", trace.WithSpanKind(trace.SpanKindServer))
	start := time.Now()
	_, child := tracer.Start(ctx, "db.query", trace.WithTimestamp(start),
		trace.WithAttributes(attribute.String("db.table", "carts"), attribute.Int("rows", 3), attribute.StringSlice("tags", []string{"a", "b"})))
	child.RecordError(errors.New("connection reset"))
	child.SetStatus(codes.Error, "query failed")
	child.End(trace.WithTimestamp(start.Add(1500 * time.Microsecond)))
	parent.End()

	if len(rec.events) != 2 {
		t.Fatalf("%d events", len(rec.events))
	}
	e, p := rec.events[0], rec.events[1]
	sc, psc := child.SpanContext(), parent.SpanContext()
	want := map[string]string{
		events.AttrSpanID:         sc.SpanID().String(),
		events.AttrParentSpanID:   psc.SpanID().String(),
		events.AttrDuration:       "1.5ms",
		"span.kind":               "internal",
		"otel.status_code":        "ERROR",
		"otel.status_description": "query failed",
		"exception.message":       "connection reset",
		"exception.type":          "*errors.errorString",
		"service.name":            "cart",
		"db.table":                "carts",
		"rows":                    "3",
		"tags":                    `["a","b"]`,
	}
	for k, v := range want {
		if e.Attrs[k] != v {
			t.Errorf("%s = %q, want %q", k, e.Attrs[k], v)
		}
	}
	if _, ok := e.Attrs["host.name"]; ok {
		t.Error("resource attributes other than service.name recorded")
	}
	if gotStart, d, ok := events.Interval(e); !ok || !gotStart.Equal(start) || d != 1500*time.Microsecond {
		t.Errorf("Interval %v %v %v", gotStart, d, ok)
	}
	if e.Kind != "db.query" || [16]byte(e.Correlation) != [16]byte(sc.TraceID()) || !e.Parent.IsZero() {
		t.Errorf("event %+v", e)
	}
	if p.Kind != "GET /cart" || p.Attrs["span.kind"] != "server" || p.Attrs[events.AttrParentSpanID] != "" || p.Attrs["otel.status_code"] != "" {
		t.Errorf("parent event %+v", p)
	}
}

// Whatever a span holds, its event fits the node's limits, and says what
// it left out.
func TestSpanFitsTheLimits(t *testing.T) {
	for _, limits := range []events.Limits{
		events.DefaultLimits,
		{MaxEventBytes: 2048, MaxNodeBytes: 128, MaxKindBytes: 16, MaxAttrs: 12, MaxAttrKeyBytes: 32, MaxAttrValueBytes: 100, MaxBatchEvents: 1, MaxBatchBytes: 4096},
	} {
		t.Run(fmt.Sprint(limits.MaxEventBytes), func(t *testing.T) {
			rec := &recorder{limits: limits}
			tracer := provider(t, New(rec, Config{Limits: limits}))
			var attrs []attribute.KeyValue
			for i := range 100 {
				attrs = append(attrs, attribute.String(fmt.Sprintf("key.%03d", i), strings.Repeat("é", 3000)))
			}
			attrs = append(attrs, attribute.String(strings.Repeat("k", 200), "long key"), attribute.String("bad", "\xff\xfe"))
			_, s := tracer.Start(context.Background(), strings.Repeat("ü", 200), trace.WithAttributes(attrs...))
			s.End()
			if len(rec.events) != 1 {
				t.Fatal("the span was not recorded")
			}
			e := rec.events[0]
			if len(e.Kind) > limits.MaxKindBytes || !strings.HasPrefix(e.Kind, "ü") {
				t.Errorf("kind %q", e.Kind)
			}
			kept := 0
			for k, v := range e.Attrs {
				if strings.HasPrefix(k, "key.") {
					kept++
					if len(v) > limits.MaxAttrValueBytes || !strings.HasPrefix(v, "é") {
						t.Errorf("%s cut to %d bytes: %q…", k, len(v), v[:10])
					}
				}
			}
			bad, badKept := e.Attrs["bad"]
			if badKept {
				kept++
				if bad != "\uFFFD" {
					t.Errorf("invalid UTF-8 recorded as %q", bad)
				}
			}
			if e.Attrs["otel.dropped_attributes"] != fmt.Sprint(102-kept) || kept == 0 {
				t.Errorf("kept %d, dropped %q", kept, e.Attrs["otel.dropped_attributes"])
			}
			if e.Attrs[events.AttrSpanID] == "" || e.Attrs[events.AttrDuration] == "" {
				t.Error("the span's identity or interval gave way to its attributes")
			}
		})
	}
}

func TestExportErrors(t *testing.T) {
	rec := &recorder{limits: events.DefaultLimits, err: errors.New("disk full")}
	x := New(rec, Config{})
	tp := sdktrace.NewTracerProvider()
	_, s := tp.Tracer("t").Start(context.Background(), "a")
	s.End()
	spans := []sdktrace.ReadOnlySpan{s.(sdktrace.ReadOnlySpan), s.(sdktrace.ReadOnlySpan)}
	if err := x.ExportSpans(context.Background(), spans); err == nil || strings.Count(err.Error(), "disk full") != 2 {
		t.Fatalf("ExportSpans = %v, want both failures", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := x.ExportSpans(ctx, spans); !errors.Is(err, context.Canceled) {
		t.Fatalf("ExportSpans after cancel = %v", err)
	}
	if err := New(rec, Config{Limits: events.Limits{MaxAttrs: -1}}).ExportSpans(context.Background(), spans); !errors.Is(err, events.ErrInvalid) {
		t.Fatalf("negative limits: %v", err)
	}
	x.Shutdown(context.Background())
	if err := x.ExportSpans(context.Background(), spans); !errors.Is(err, ErrShutdown) {
		t.Fatalf("ExportSpans after Shutdown = %v", err)
	}
}
