// Package otelbridge records OpenTelemetry spans as scopemesh events: an
// application already instrumented with OpenTelemetry adds one line to its
// tracer provider, and every span it ends lands in the node's
// cluster-wide, partition-tolerant log, joined to the spans and events of
// the same request on other nodes.
//
// # Usage
//
//	tp := sdktrace.NewTracerProvider(
//		sdktrace.WithBatcher(otelbridge.New(node, otelbridge.Config{})), // the one line
//		sdktrace.WithResource(res),
//	)
//
// Exporter is an OpenTelemetry SDK SpanExporter. Under WithBatcher, spans
// are recorded in batches on the SDK's own goroutine, off the request's
// path; call the provider's ForceFlush or Shutdown to have every ended span
// recorded. WithSyncer records each span as it ends, at the cost of a
// Node.Record in the goroutine that ends it.
//
// # What a span becomes
//
// One event per span, recorded when the span ends, on the node the
// exporter was given:
//
//   - Kind: the span's name (cut to the node's limits; "span" if empty);
//     Correlation: its trace ID, so OpenTelemetry's trace is scopemesh's.
//   - events.AttrSpanID and events.AttrParentSpanID: its span ID and its
//     parent's, in hex; events.AttrStart and events.AttrDuration: when it
//     started and how long it took, which trace renderings show.
//   - span.kind (server, client, internal, producer, consumer);
//     otel.status_code (OK or ERROR) and otel.status_description when the
//     status is set; exception.type and exception.message from its first
//     exception event; the resource's service.name.
//   - Its attributes, each value as attribute.Value.Emit writes it, in the
//     order the span holds them, as many as the limits (events.Limits)
//     leave room for: a key over the key limit is dropped, a value over the
//     value limit cut at a character boundary, and otel.dropped_attributes
//     counts what was left out, with what the SDK dropped itself.
//
// # How a span finds its parent
//
// An event's ID is the hash of its content, known only once it is
// recorded, and a span ends — and is recorded — after the spans it
// caused, often on another node: a child cannot name its parent's event.
// So the bridge names spans instead: every event carries its span ID and
// its parent's span ID, and a trace (query.Trace, Node.Trace) makes each
// event that names no parent event the child of the event whose span ID
// its parent span ID is. The join happens whenever a trace is read, from
// the events the reading replica holds; nothing is coordinated, so
// concurrent spans on different nodes need no agreement, and the same
// events give the same tree on every node. During a partition, a span
// whose parent's event has not arrived is a root of its own; once the
// partition heals and the event arrives, the next read joins them.
//
// The same join links the two kinds of instrumentation: an event that
// events.Propagator sent on names itself in traceparent by its ID's first
// 8 bytes (events.ID.Span), which an OpenTelemetry server span takes as its
// parent span ID; and an event recorded for a request from an
// OpenTelemetry client names the client span in events.AttrParentSpanID
// (Node.Record does so from the context events.Propagator extracted).
package otelbridge
