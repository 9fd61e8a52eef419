package otelbridge_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/internal/testcluster"
	"github.com/scopemesh/scopemesh/otelbridge"
)

// noopExporter exports nowhere: the SDK's batch processor's own cost.
type noopExporter struct{}

func (noopExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (noopExporter) Shutdown(context.Context) error                             { return nil }

// discard records nothing: the bridge's cost without the node's.
type discard struct{}

func (discard) Record(_ context.Context, e events.Event) (events.Event, error) { return e, nil }

// BenchmarkSpan measures the cost of a span — started, ended and exported
// — the way an HTTP server span is: a name, a kind and 9 attributes.
// Batched runs block rather than drop when the queue is full, and flush
// before the timer stops, so every span is exported within the time
// measured.
func BenchmarkSpan(b *testing.B) {
	node := testcluster.Open(b, "cart") // in memory
	batched := func(x sdktrace.SpanExporter) sdktrace.TracerProviderOption {
		return sdktrace.WithBatcher(x, sdktrace.WithBlocking())
	}
	// A provider's Shutdown shuts its exporter down: each run has its own.
	for _, c := range []struct {
		name     string
		exporter func() sdktrace.TracerProviderOption
		recorded bool // the node must hold every span
	}{
		{"sdk-batch-noop", func() sdktrace.TracerProviderOption { return batched(noopExporter{}) }, false},
		{"bridge-batch", func() sdktrace.TracerProviderOption { return batched(otelbridge.New(node, otelbridge.Config{})) }, true},
		{"bridge-sync", func() sdktrace.TracerProviderOption {
			return sdktrace.WithSyncer(otelbridge.New(node, otelbridge.Config{}))
		}, true},
		{"bridge-sync-discard", func() sdktrace.TracerProviderOption {
			return sdktrace.WithSyncer(otelbridge.New(discard{}, otelbridge.Config{}))
		}, false},
	} {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			tp := sdktrace.NewTracerProvider(c.exporter(), sdktrace.WithResource(resource.NewSchemaless(semconv.ServiceName("cart"))))
			defer tp.Shutdown(ctx)
			tracer := tp.Tracer("bench")
			attrs := []attribute.KeyValue{
				attribute.String("http.request.method", "GET"), attribute.String("url.path", "/cart/42"),
				attribute.String("url.scheme", "http"), attribute.String("server.address", "127.0.0.1"),
				attribute.Int("server.port", 8080), attribute.String("client.address", "10.0.0.12"),
				attribute.String("network.protocol.version", "1.1"), attribute.String("user_agent.original", "curl/8.5.0"),
				attribute.Int("http.response.status_code", 200),
			}
			before := node.Status().Events
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				_, s := tracer.Start(ctx, "GET /cart/{id}", trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...))
				s.End()
			}
			if err := tp.ForceFlush(ctx); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if got := node.Status().Events - before; c.recorded && got != b.N {
				b.Fatalf("the node holds %d new events for %d spans", got, b.N)
			}
		})
	}
}
