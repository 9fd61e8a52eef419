package events

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"

	"github.com/scopemesh/scopemesh/hlc"
)

// Field names, in lower case as HTTP/2 and gRPC metadata require.
const (
	traceparentField = "traceparent"
	tracestateField  = "tracestate"
	hlcField         = "scopemesh-hlc"

	// tracestateKey is this package's key in W3C tracestate.
	tracestateKey = "scopemesh"
)

// W3C Trace Context bounds tracestate to 32 members, keys to 256 bytes and
// values to 256 bytes.
const (
	maxTracestateMembers = 32
	maxTracestateKey     = 256
	maxTracestateValue   = 256
)

// Propagator carries the trace, the parent event and the sender's hybrid
// logical time from one process to another through a TextMapCarrier, in
// these fields:
//
//	traceparent:   00-<trace ID>-<first 8 bytes of the parent event ID>-<flags>
//	tracestate:    scopemesh=<the full parent event ID>[,<other members>]
//	scopemesh-hlc: <wall>.<logical> (hlc.Timestamp.String)
//
// traceparent and tracestate follow W3C Trace Context Level 2, so tracing
// systems such as OpenTelemetry continue the same trace. A parent-id has
// only 8 bytes, so the full parent event ID travels in tracestate; a
// receiver uses it only if its first 8 bytes still match traceparent, since
// a hop that rewrote traceparent without knowing of scopemesh makes it
// stale. A parent-id that names no event of scopemesh — an OpenTelemetry
// caller's span — is kept as the remote parent span (RemoteSpanFromContext),
// which Node.Record writes into the events it records for the request
// (AttrParentSpanID), so the two join in a trace.
//
// The trace flags are the caller's: scopemesh records what its application
// records whatever the sampled flag says, and passes the caller's sampling
// decision and random flag on unchanged, so downstream samplers decide as
// the caller did; flags beyond those two, which W3C reserves, go out as
// zero. A trace that starts here (NewTraceID, or an invalid traceparent) is
// sent as sampled and random (03): its ID is random. Since the flags never
// change on the way through, a hop that records no event may, and does,
// pass the caller's parent-id and tracestate on unchanged.
//
// The zero Propagator carries trace and parent only. A Propagator is safe
// for concurrent use if OnClockError is.
type Propagator struct {
	// Clock, if set, is read (Now) into every outgoing carrier and updated
	// (Update) from every incoming one, so that what a receiver records
	// after a message is ordered after what the sender recorded before it.
	// Nil means the HLC field is neither written nor read.
	Clock *hlc.Clock

	// OnClockError, if set, is called by Extract with the raw field and the
	// error when an incoming HLC field does not parse or Clock.Update
	// rejects it (hlc.ErrClockOffset for a clock too far ahead). Extract
	// then goes on without the remote time: one node's bad clock must not
	// fail requests. It may be called from many goroutines at once and must
	// not block.
	OnClockError func(remote string, err error)
}

// Trace flags of W3C Trace Context Level 2.
const (
	flagSampled = 0x01 // the caller may have recorded the trace
	flagRandom  = 0x02 // at least the trace ID's last 7 bytes are random
	knownFlags  = flagSampled | flagRandom

	// startFlags are those of a trace that starts here: NewTraceID's IDs
	// are random, and scopemesh records every trace.
	startFlags = flagSampled | flagRandom
)

// Inject writes the trace and parent that ctx carries into c, and the time
// of p.Clock if set. Without a trace in ctx it writes no trace fields.
//
// traceparent names the parent event if ctx carries one; else the span
// Extract received for this trace, passed on unchanged with its
// tracestate, as by a hop that records nothing; else a random parent-id,
// as W3C requires a non-zero one. tracestate leads with this package's
// member when it names a new parent, followed by the members received with
// the trace, in order, up to 32 in all.
func (p Propagator) Inject(ctx context.Context, c TextMapCarrier) {
	if t, ok := TraceFromContext(ctx); ok {
		in := receivedFromContext(ctx, t)
		flags := byte(startFlags)
		if in != nil {
			flags = in.flags
		}
		parent, _ := ParentFromContext(ctx)
		span, named := parent.Span(), true
		switch {
		case !span.IsZero():
		case in != nil:
			span, named = in.span, false
		default:
			span, named = randomSpan(), false
		}
		c.Set(traceparentField, formatTraceparent(t, span, flags))
		if state := outgoingState(in, span, named, parent); state != "" {
			c.Set(tracestateField, state)
		}
	}
	if p.Clock != nil {
		c.Set(hlcField, p.Clock.Now().String())
	}
}

// outgoingState returns the tracestate to send with parent-id span: the
// one received, unchanged, if span is the one received, as W3C requires of
// a traceparent passed on unchanged; else ours first, if it names parent,
// then the received members but ours.
func outgoingState(in *received, span SpanID, named bool, parent ID) string {
	if in != nil && span == in.span {
		return strings.Join(in.members, ",")
	}
	var members []string
	if named {
		members = append(members, tracestateKey+"="+parent.String())
	}
	if in != nil {
		for _, m := range in.members {
			if len(members) == maxTracestateMembers {
				break
			}
			if key, _, _ := strings.Cut(m, "="); key != tracestateKey {
				members = append(members, m)
			}
		}
	}
	return strings.Join(members, ",")
}

// Extract returns a copy of ctx carrying the trace and parent found in c,
// and first updates p.Clock from c's HLC field if both are there. A missing
// or invalid traceparent is ignored and a new trace started (NewTraceID), so
// the returned context always carries a trace; the parent is zero unless
// tracestate holds one that matches traceparent, and the caller's span is
// then the remote parent span (RemoteSpanFromContext). The flags and
// tracestate members received are kept in the context and written out again
// by Inject.
func (p Propagator) Extract(ctx context.Context, c TextMapCarrier) context.Context {
	if p.Clock != nil {
		if v := c.Get(hlcField); v != "" {
			p.updateClock(v)
		}
	}
	// Spaces and tabs around a field value are not part of it (RFC 9110).
	t, span, flags, ok := parseTraceparent(strings.Trim(singleValue(c, traceparentField), " \t"))
	if !ok {
		ctx = ContextWithTrace(ctx, NewTraceID())
		return ContextWithParent(ctx, ID{})
	}
	parent, members := parseTracestate(allValues(c, tracestateField), span)
	ctx = ContextWithTrace(ctx, t)
	ctx = ContextWithParent(ctx, parent)
	return contextWithReceived(ctx, &received{
		trace:   t,
		span:    span,
		flags:   flags & knownFlags,
		members: members,
		event:   !parent.IsZero(),
	})
}

func (p Propagator) updateClock(v string) {
	ts, err := hlc.Parse(v)
	if err == nil {
		err = p.Clock.Update(ts)
	}
	if err != nil && p.OnClockError != nil {
		p.OnClockError(v, err)
	}
}

// singleValue returns the value of key, or "" if c holds several: W3C
// treats a repeated traceparent as invalid.
func singleValue(c TextMapCarrier, key string) string {
	if vg, ok := c.(ValuesGetter); ok {
		vs := vg.Values(key)
		if len(vs) != 1 {
			return ""
		}
		return vs[0]
	}
	return c.Get(key)
}

// allValues returns the values of key joined by commas, as HTTP joins
// repeated fields that hold lists.
func allValues(c TextMapCarrier, key string) string {
	if vg, ok := c.(ValuesGetter); ok {
		return strings.Join(vg.Values(key), ",")
	}
	return c.Get(key)
}

// randomSpan returns a random non-zero parent-id.
func randomSpan() SpanID {
	var s SpanID
	for s.IsZero() {
		rand.Read(s[:]) // never fails: it crashes the program instead
	}
	return s
}

func formatTraceparent(t TraceID, span SpanID, flags byte) string {
	var b [55]byte
	copy(b[:], "00-")
	hex.Encode(b[3:35], t[:])
	b[35] = '-'
	hex.Encode(b[36:52], span[:])
	b[52] = '-'
	hex.Encode(b[53:55], []byte{flags})
	return string(b[:])
}

// parseTraceparent reads a traceparent field as W3C Trace Context
// prescribes: lowercase hex only, exact lengths, version ff invalid, zero
// trace and parent IDs invalid, and a version above 00 read as 00 if the
// field is at least as long and, if longer, continues with '-'. It returns
// the flags as sent, unknown bits included.
func parseTraceparent(s string) (t TraceID, span SpanID, flags byte, ok bool) {
	const n = 55
	if len(s) < n || s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return t, span, 0, false
	}
	var v [1]byte
	if !decodeLowerHex(v[:], s[0:2]) || v[0] == 0xff {
		return t, span, 0, false
	}
	switch {
	case v[0] == 0 && len(s) != n:
		return t, span, 0, false
	case len(s) > n && s[n] != '-':
		return t, span, 0, false
	}
	var f [1]byte
	if !decodeLowerHex(t[:], s[3:35]) || !decodeLowerHex(span[:], s[36:52]) || !decodeLowerHex(f[:], s[53:55]) {
		return t, span, 0, false
	}
	if t.IsZero() || span.IsZero() {
		return t, span, 0, false
	}
	return t, span, f[0], true
}

// decodeLowerHex decodes s into dst, accepting only lowercase hex digits
// and exactly 2*len(dst) of them.
func decodeLowerHex(dst []byte, s string) bool {
	if len(s) != 2*len(dst) {
		return false
	}
	for i := range dst {
		hi, ok1 := lowerHexDigit(s[2*i])
		lo, ok2 := lowerHexDigit(s[2*i+1])
		if !ok1 || !ok2 {
			return false
		}
		dst[i] = hi<<4 | lo
	}
	return true
}

func lowerHexDigit(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// parseTracestate reads a tracestate field and returns the parent event
// its first scopemesh member names, if that event's first 8 bytes equal
// span, and every member in order, ours included. A field that breaks the
// W3C grammar or has more than 32 members is discarded whole, as the
// specification asks; a repeated key is kept, as Level 2 allows.
func parseTracestate(s string, span SpanID) (ID, []string) {
	var (
		parent  ID
		seen    bool
		members []string
	)
	for m := range strings.SplitSeq(s, ",") {
		m = strings.Trim(m, " \t")
		if m == "" {
			continue // W3C allows empty list members
		}
		key, value, ok := strings.Cut(m, "=")
		if !ok || !validTracestateKey(key) || !validTracestateValue(value) {
			return ID{}, nil
		}
		if members = append(members, m); len(members) > maxTracestateMembers {
			return ID{}, nil
		}
		if key == tracestateKey && !seen {
			// The leftmost member is the latest, as a modified member
			// moves to the front.
			seen = true
			if !decodeLowerHex(parent[:], value) || parent.Span() != span {
				parent = ID{}
			}
		}
	}
	return parent, members
}

// validTracestateKey reports whether k is a W3C Trace Context Level 2
// tracestate key: a lowercase letter or a digit, then up to 255 of those
// and '_', '-', '*', '/' and '@'.
func validTracestateKey(k string) bool {
	if len(k) == 0 || len(k) > maxTracestateKey || (!isLower(k[0]) && !isDigit(k[0])) {
		return false
	}
	for i := 1; i < len(k); i++ {
		switch c := k[i]; {
		case isLower(c), isDigit(c), c == '_', c == '-', c == '*', c == '/', c == '@':
		default:
			return false
		}
	}
	return true
}

func isLower(c byte) bool { return 'a' <= c && c <= 'z' }
func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// validTracestateValue reports whether v is a W3C tracestate value: 1 to
// 256 printable ASCII characters other than ',' and '=', not ending in a
// space.
func validTracestateValue(v string) bool {
	if len(v) == 0 || len(v) > maxTracestateValue || v[len(v)-1] == ' ' {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c > 0x7e || c == ',' || c == '=' {
			return false
		}
	}
	return true
}
