package otelbridge

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"unicode/utf8"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/scopemesh/scopemesh/events"
)

// ErrShutdown reports an export after Shutdown.
var ErrShutdown = errors.New("otelbridge: exporter shut down")

// Recorder records events: a *scopemesh.Node.
type Recorder interface {
	// Record stores e, stamping its Time, Node and ID, and returns it as
	// stored.
	Record(ctx context.Context, e events.Event) (events.Event, error)
}

// Config configures an Exporter. The zero Config is ready to use.
type Config struct {
	// Limits are the limits of the node's events (scopemesh.Config.Limits):
	// the exporter fits each span's attributes within them. Zero fields
	// mean the defaults, as in events.Limits.
	Limits events.Limits
}

// Exporter is an OpenTelemetry SDK SpanExporter that records each span it
// is given as an event (see the package doc). It is safe for concurrent
// use.
type Exporter struct {
	rec       Recorder
	limits    events.Limits // resolved
	limitsErr error         // the limits are invalid: every export fails with it
	shutdown  atomic.Bool
}

var _ sdktrace.SpanExporter = (*Exporter)(nil)

// New returns an Exporter that records spans on rec. If cfg.Limits has a
// negative field, every export fails saying so.
func New(rec Recorder, cfg Config) *Exporter {
	x := &Exporter{rec: rec}
	x.limits, x.limitsErr = cfg.Limits.Resolve()
	return x
}

// Attribute keys the bridge writes besides the events.Attr* keys, named as
// OpenTelemetry names them for exporters to other systems.
const (
	attrSpanKind          = "span.kind"
	attrStatusCode        = "otel.status_code"
	attrStatusDescription = "otel.status_description"
	attrDroppedAttributes = "otel.dropped_attributes"
	attrExceptionType     = string(semconv.ExceptionTypeKey)
	attrExceptionMessage  = string(semconv.ExceptionMessageKey)
	attrServiceName       = string(semconv.ServiceNameKey)
)

// ExportSpans records each span as an event. It goes on past a span that
// fails to record, and returns the failures joined; it stops early if ctx
// ends.
func (x *Exporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	if x.shutdown.Load() {
		return ErrShutdown
	}
	if x.limitsErr != nil {
		return fmt.Errorf("otelbridge: %w", x.limitsErr)
	}
	var errs []error
	for _, s := range spans {
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, err)...)
		}
		if _, err := x.rec.Record(ctx, x.event(s)); err != nil {
			errs = append(errs, fmt.Errorf("otelbridge: recording span %s %q: %w", s.SpanContext().SpanID(), s.Name(), err))
		}
	}
	return errors.Join(errs...)
}

// Shutdown makes further exports fail with ErrShutdown. The node is the
// application's to close.
func (x *Exporter) Shutdown(context.Context) error {
	x.shutdown.Store(true)
	return nil
}

// event returns the event that stands for s.
func (x *Exporter) event(s sdktrace.ReadOnlySpan) events.Event {
	sc := s.SpanContext()
	e := events.Event{
		Kind:        fitText(s.Name(), x.limits.MaxKindBytes),
		Correlation: events.TraceID(sc.TraceID()),
		Attrs:       make(map[string]string, 8+len(s.Attributes())),
	}
	if e.Kind == "" {
		e.Kind = "span"
	}
	a := attrSet{m: e.Attrs, limits: x.limits, budget: attrBudget(x.limits, len(e.Kind))}
	a.put(events.AttrSpanID, sc.SpanID().String())
	if p := s.Parent(); p.IsValid() {
		a.put(events.AttrParentSpanID, p.SpanID().String())
	}
	start, dur := events.IntervalAttrs(s.StartTime(), max(s.EndTime().Sub(s.StartTime()), 0))
	a.put(events.AttrStart, start)
	a.put(events.AttrDuration, dur)
	a.put(attrSpanKind, s.SpanKind().String())
	if st := s.Status(); st.Code != codes.Unset {
		a.put(attrStatusCode, strings.ToUpper(st.Code.String()))
		if st.Description != "" {
			a.put(attrStatusDescription, st.Description)
		}
	}
	for _, ev := range s.Events() {
		if ev.Name != semconv.ExceptionEventName {
			continue
		}
		for _, kv := range ev.Attributes {
			if k := string(kv.Key); k == attrExceptionType || k == attrExceptionMessage {
				a.put(k, kv.Value.Emit())
			}
		}
		break
	}
	if res := s.Resource(); res != nil {
		if v, ok := res.Set().Value(semconv.ServiceNameKey); ok {
			a.put(attrServiceName, v.Emit())
		}
	}
	dropped := s.DroppedAttributes()
	for _, kv := range s.Attributes() {
		if !a.put(string(kv.Key), kv.Value.Emit()) {
			dropped++
		}
	}
	if dropped > 0 {
		a.m[attrDroppedAttributes] = strconv.Itoa(dropped) // in the entry and bytes put keeps back
	}
	return e
}

// eventOverhead bounds the bytes of an event's encoding outside its
// attributes, kind and node: ID, time, trace, parent, signature and
// framing. The node's ID counts up to the node limit.
const eventOverhead = 256

// attrOverhead bounds the framing of one attribute in the encoding.
const attrOverhead = 10

// attrBudget returns the bytes the attributes of an event whose kind has
// kindLen bytes may take.
func attrBudget(l events.Limits, kindLen int) int {
	return l.MaxEventBytes - eventOverhead - l.MaxNodeBytes - kindLen
}

// attrSet fills an event's attributes within its limits, which leave room
// for the keys the bridge writes (a key limit of 23 bytes at least).
type attrSet struct {
	m      map[string]string
	limits events.Limits
	budget int // bytes left
}

// put sets k to v, cut to the value limit, unless k is taken, empty or
// over the key limit, or the event has no room left; it reports whether
// it did. The first value put under a key stays.
func (a *attrSet) put(k, v string) bool {
	if _, taken := a.m[k]; taken || k == "" || len(k) > a.limits.MaxAttrKeyBytes || !utf8.ValidString(k) {
		return false
	}
	v = fitText(v, a.limits.MaxAttrValueBytes)
	// One entry, and its bytes, are kept back for the count of those
	// dropped.
	if len(a.m) >= a.limits.MaxAttrs-1 || len(k)+len(v)+attrOverhead > a.budget-droppedEntryBytes {
		return false
	}
	a.m[k] = v
	a.budget -= len(k) + len(v) + attrOverhead
	return true
}

// droppedEntryBytes bounds the bytes of the entry that counts the
// attributes left out.
const droppedEntryBytes = len(attrDroppedAttributes) + 20 + attrOverhead

// fitText returns s as valid UTF-8 of at most n bytes, cut at a character
// boundary.
func fitText(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
