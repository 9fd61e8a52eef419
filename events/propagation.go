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
//	traceparent:   00-<trace ID>-<first 8 bytes of the parent event ID>-01
//	tracestate:    scopemesh=<the full parent event ID>[,<other members>]
//	scopemesh-hlc: <wall>.<logical> (hlc.Timestamp.String)
//
// traceparent and tracestate follow W3C Trace Context, so tracing systems
// such as OpenTelemetry continue the same trace. A parent-id has only 8
// bytes, so the full parent event ID travels in tracestate; a receiver uses
// it only if its first 8 bytes still match traceparent, since a hop that
// rewrote traceparent without knowing of scopemesh makes it stale.
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

// Inject writes the trace and parent that ctx carries into c, and the time
// of p.Clock if set. Without a trace in ctx it writes no trace fields. With
// no parent, traceparent gets a random parent-id, as W3C requires a non-zero
// one, and tracestate gets no scopemesh member.
func (p Propagator) Inject(ctx context.Context, c TextMapCarrier) {
	if t, ok := TraceFromContext(ctx); ok {
		parent, _ := ParentFromContext(ctx)
		span, full := spanID(parent)
		c.Set(traceparentField, formatTraceparent(t, span))
		var members []string
		if full {
			members = append(members, tracestateKey+"="+parent.String())
		}
		for _, m := range foreignStateFromContext(ctx, t) {
			if len(members) == maxTracestateMembers {
				break
			}
			members = append(members, m)
		}
		if len(members) > 0 {
			c.Set(tracestateField, strings.Join(members, ","))
		}
	}
	if p.Clock != nil {
		c.Set(hlcField, p.Clock.Now().String())
	}
}

// Extract returns a copy of ctx carrying the trace and parent found in c,
// and first updates p.Clock from c's HLC field if both are there. A missing
// or invalid traceparent is ignored and a new trace started (NewTraceID), so
// the returned context always carries a trace; the parent is zero unless
// tracestate holds one that matches traceparent. Other members of tracestate
// are kept in the context and written out again by Inject.
func (p Propagator) Extract(ctx context.Context, c TextMapCarrier) context.Context {
	if p.Clock != nil {
		if v := c.Get(hlcField); v != "" {
			p.updateClock(v)
		}
	}
	t, span, ok := parseTraceparent(singleValue(c, traceparentField))
	if !ok {
		ctx = ContextWithTrace(ctx, NewTraceID())
		return ContextWithParent(ctx, ID{})
	}
	parent, foreign := parseTracestate(allValues(c, tracestateField), span)
	ctx = ContextWithTrace(ctx, t)
	ctx = ContextWithParent(ctx, parent)
	if len(foreign) > 0 {
		ctx = contextWithForeignState(ctx, foreignState{trace: t, members: foreign})
	}
	return ctx
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

// spanID returns the parent-id for traceparent: the first 8 bytes of
// parent, and true; or, if those are zero, which W3C forbids, random bytes
// and false.
func spanID(parent ID) ([8]byte, bool) {
	var s [8]byte
	copy(s[:], parent[:])
	if s != ([8]byte{}) {
		return s, true
	}
	for s == ([8]byte{}) {
		rand.Read(s[:])
	}
	return s, false
}

func formatTraceparent(t TraceID, span [8]byte) string {
	var b [55]byte
	copy(b[:], "00-")
	hex.Encode(b[3:35], t[:])
	b[35] = '-'
	hex.Encode(b[36:52], span[:])
	copy(b[52:], "-01")
	return string(b[:])
}

// parseTraceparent reads a traceparent field as W3C Trace Context
// prescribes: lowercase hex only, exact lengths, version ff invalid, zero
// trace and parent IDs invalid, and a version above 00 read as 00 if the
// field is at least as long and, if longer, continues with '-'.
func parseTraceparent(s string) (t TraceID, span [8]byte, ok bool) {
	const n = 55
	if len(s) < n || s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return t, span, false
	}
	var v [1]byte
	if !decodeLowerHex(v[:], s[0:2]) || v[0] == 0xff {
		return t, span, false
	}
	switch {
	case v[0] == 0 && len(s) != n:
		return t, span, false
	case len(s) > n && s[n] != '-':
		return t, span, false
	}
	var flags [1]byte
	if !decodeLowerHex(t[:], s[3:35]) || !decodeLowerHex(span[:], s[36:52]) || !decodeLowerHex(flags[:], s[53:55]) {
		return t, span, false
	}
	if t.IsZero() || span == ([8]byte{}) {
		return t, span, false
	}
	return t, span, true
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

// parseTracestate reads a tracestate field and returns the parent event it
// names, if its first 8 bytes equal span, and the members of other systems
// in order. A field that breaks the W3C grammar, repeats a key or has more
// than 32 members is discarded whole, as the specification asks.
func parseTracestate(s string, span [8]byte) (ID, []string) {
	var (
		parent  ID
		found   bool
		foreign []string
		keys    []string
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
		for _, k := range keys {
			if k == key {
				return ID{}, nil
			}
		}
		keys = append(keys, key)
		if len(keys) > maxTracestateMembers {
			return ID{}, nil
		}
		if key != tracestateKey {
			foreign = append(foreign, m)
			continue
		}
		found = decodeLowerHex(parent[:], value) && [8]byte(parent[:8]) == span
	}
	if !found {
		parent = ID{}
	}
	return parent, foreign
}

// validTracestateKey reports whether k is a W3C tracestate key: a simple
// key, lowercase letter first, or a multi-tenant key tenant@system.
func validTracestateKey(k string) bool {
	if len(k) == 0 || len(k) > maxTracestateKey {
		return false
	}
	tenant, system, multi := strings.Cut(k, "@")
	if !multi {
		return isLower(k[0]) && allKeyChars(k[1:])
	}
	return len(tenant) >= 1 && len(tenant) <= 241 && (isLower(tenant[0]) || isDigit(tenant[0])) && allKeyChars(tenant[1:]) &&
		len(system) >= 1 && len(system) <= 14 && isLower(system[0]) && allKeyChars(system[1:])
}

func allKeyChars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isLower(c) && !isDigit(c) && c != '_' && c != '-' && c != '*' && c != '/' {
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
