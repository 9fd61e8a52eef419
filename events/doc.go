// Package events defines the scopemesh event, its content-derived ID, its
// canonical and wire encodings, the batch format peers exchange, and the
// propagation of a trace, its parent event and the hybrid logical time
// across process boundaries (HTTP, gRPC metadata, libp2p stream frames).
//
// # Usage
//
// Seal sets an event's ID to the SHA-256 of the canonical CBOR encoding of
// its other fields; equal content always gets the same ID, whatever the
// order in which Attrs was filled:
//
//	e, err := events.Seal(events.Event{
//		Time:  clock.Now(),
//		Node:  host.ID().String(),
//		Kind:  "http.request",
//		Attrs: map[string]string{"method": "GET", "path": "/orders"},
//	})
//	b, err := events.Marshal(e)      // the wire form, for storage
//	e, err = events.Unmarshal(b)     // checks limits and the ID
//	batch, err := events.EncodeBatch(evs)
//	evs, err = events.DecodeBatch(batch)
//
// An Encoded value carries an event together with its checked wire form, so
// that what is stored or sent on is encoded and hashed only once:
//
//	x, err := events.DefaultLimits.SealEncoded(e) // seal and encode in one pass
//	batch, err = events.DefaultLimits.EncodeBatchEncoded(xs)
//	xs, err = events.DefaultLimits.DecodeBatchEncoded(batch)
//
// The package-level functions apply DefaultLimits; the methods of a Limits
// value apply other bounds. Every function that reads input from elsewhere
// (Unmarshal, DecodeBatch) checks sizes before it allocates, accepts only
// the canonical encoding, and rejects an event whose ID does not match its
// content with ErrIDMismatch. All functions are safe for concurrent use.
//
// A Propagator carries the trace between processes, in W3C Trace Context
// fields that OpenTelemetry understands, plus an HLC field:
//
//	p := events.Propagator{Clock: clock}
//	http.Handle("/", p.Middleware(handler))               // server side
//	client := &http.Client{Transport: p.Transport(nil)}   // client side
//
//	// Inside handler: the trace, and the event to name as parent.
//	trace, _ := events.TraceFromContext(r.Context())
//	ctx := events.ContextWithParent(r.Context(), e.ID)
//	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
//	resp, err := client.Do(req) // carries trace, parent and clock.Now()
//
//	// Elsewhere: gRPC metadata or a stream frame's header map.
//	p.Inject(ctx, events.MetadataCarrier(md))
//	ctx = p.Extract(ctx, events.MapCarrier(frame.Headers))
//
// The flags a caller sent go on unchanged, and a parent-id that names no
// event (an OpenTelemetry caller's span) stays in the context as the
// remote parent span (RemoteSpanFromContext). Events that stand for spans
// carry AttrSpanID, AttrParentSpanID, AttrStart and AttrDuration, by which
// a trace joins them to their causes and shows how long they took.
//
// NewSlogHandler adds the trace ID to every log record logged with a
// context that carries one.
//
// # Encodings
//
// The content of an event (every field but the ID) is encoded as a CBOR map
// with integer keys 1 to 8 in RFC 8949 core deterministic form; zero
// optional fields are left out, so nil and empty Attrs or Payload encode
// alike. The wire form adds the ID under key 0. canonical.go documents the
// layout, batch.go the batch header.
package events
