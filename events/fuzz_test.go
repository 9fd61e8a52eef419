package events

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/scopemesh/scopemesh/hlc"
)

// isSentinel reports whether err wraps one of the package's sentinels, as
// every error from decoding must.
func isSentinel(err error) bool {
	return errors.Is(err, ErrInvalid) || errors.Is(err, ErrTooLarge) || errors.Is(err, ErrIDMismatch) || errors.Is(err, ErrVersion)
}

// FuzzDecodeBatch feeds arbitrary bytes to DecodeBatch. It must not panic,
// must fail with a sentinel, and what it accepts must be valid events that
// encode and decode again to the same events. Tighter limits may only
// refuse more.
func FuzzDecodeBatch(f *testing.F) {
	small := sealedBatch(f, 3)
	f.Add(mustEncodeBatch(f, Limits{}))
	f.Add(mustEncodeBatch(f, Limits{}, small...))
	f.Add(mustEncodeBatch(f, Limits{}, sealedBatch(f, 40)...)) // compressed
	f.Add(header(1, 0, 1<<60, 1<<30))
	f.Add(header(1, 1, 2, 200))
	f.Add(append(header(1, 0, 1, uint64(len(mustMarshal(f, small[0])))), mustMarshal(f, small[0])...))
	tight := Limits{MaxEventBytes: 200, MaxKindBytes: 8, MaxAttrs: 2, MaxAttrKeyBytes: 8, MaxAttrValueBytes: 16, MaxBatchEvents: 4, MaxBatchBytes: 1 << 10}
	f.Fuzz(func(t *testing.T, b []byte) {
		xs, err := DefaultLimits.DecodeBatchEncoded(b)
		evs := make([]Event, len(xs))
		for i, x := range xs {
			evs[i] = x.Event()
			if wire, err := Marshal(x.Event()); err != nil || !bytes.Equal(wire, x.Wire()) {
				t.Fatalf("event %d: the wire form decoded with it is not its encoding (%v)", i, err)
			}
			if h, err := UnmarshalHeader(x.Wire()); err != nil || !reflect.DeepEqual(h, x.Header()) {
				t.Fatalf("event %d: its header reads back as %+v, %v; want %+v", i, h, err, x.Header())
			}
		}
		if err != nil {
			if !isSentinel(err) {
				t.Fatalf("error without a sentinel: %v", err)
			}
			if _, terr := tight.DecodeBatch(b); terr == nil {
				t.Fatalf("tight limits accept what the defaults refuse: %v", err)
			}
			return
		}
		for i, e := range evs {
			if err := Verify(e); err != nil {
				t.Fatalf("event %d does not verify: %v", i, err)
			}
			e.Attrs, e.Payload = nil, nil
			if !reflect.DeepEqual(xs[i].Header(), e) {
				t.Fatalf("event %d: Header is not the event without Attrs and Payload", i)
			}
		}
		if eager, err := DecodeBatch(b); err != nil || !reflect.DeepEqual(eager, evs) {
			t.Fatalf("DecodeBatch and DecodeBatchEncoded decode differently (%v)", err)
		}
		var scratch []byte
		if inPlace, err := DefaultLimits.AppendBatchInPlace(nil, b, &scratch); err != nil || !reflect.DeepEqual(inPlace, xs) {
			t.Fatalf("AppendBatchInPlace and DecodeBatchEncoded decode differently (%v)", err)
		}
		again, err := EncodeBatch(evs)
		if err != nil {
			t.Fatalf("re-encoding: %v", err)
		}
		if fromWire, err := DefaultLimits.EncodeBatchEncoded(xs); err != nil || !bytes.Equal(fromWire, again) {
			t.Fatalf("encoding the wire forms gives another batch than encoding the events (%v)", err)
		}
		back, err := DecodeBatch(again)
		if err != nil {
			t.Fatalf("decoding the re-encoding: %v", err)
		}
		if len(evs) != len(back) || (len(evs) > 0 && !reflect.DeepEqual(evs, back)) {
			t.Fatalf("re-encoding changed the events")
		}
		if tevs, err := tight.DecodeBatch(b); err == nil && !reflect.DeepEqual(tevs, evs) {
			t.Fatal("tight limits decode differently")
		}
	})
}

// FuzzExtract feeds arbitrary fields to Extract. It must always produce a
// trace, agree with OpenTelemetry on which traceparent fields are valid and
// what they hold, only report clock errors for an HLC field that is present,
// pass the known flags on unchanged, and survive a round trip through
// Inject.
func FuzzExtract(f *testing.F) {
	parent := mustSeal(f, typicalEvent()).ID
	ctx, _ := tracedContext(parent)
	good := MapCarrier{}
	Propagator{}.Inject(ctx, good)
	f.Add(good["traceparent"], good["tracestate"], "1767323045000000000.0")
	f.Add(good["traceparent"], "congo=t61rcWkgMzE,"+good["tracestate"], "x")
	f.Add("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future", "a@b=c", "")
	f.Add("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09", "", "-1.4294967295")
	f.Add("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", ",,", "9223372036854775807.0")
	f.Add(" 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-02\t", "1a=b,1a=c,@d=e", "")
	f.Fuzz(func(t *testing.T, traceparent, tracestate, stamp string) {
		clock, _ := manualClock(t, 0)
		var clockErrs int
		p := Propagator{Clock: clock, OnClockError: func(string, error) { clockErrs++ }}
		c := MapCarrier{}
		for k, v := range map[string]string{"traceparent": traceparent, "tracestate": tracestate, "scopemesh-hlc": stamp} {
			if v != "" {
				c[k] = v
			}
		}
		ctx := p.Extract(context.Background(), c)

		tr, ok := TraceFromContext(ctx)
		if !ok {
			t.Fatal("no trace")
		}
		parsed, span, flags, valid := parseTraceparent(strings.Trim(traceparent, " \t"))
		if valid && tr != parsed {
			t.Fatalf("trace %s, traceparent holds %s", tr, parsed)
		}
		parent, hasParent := ParentFromContext(ctx)
		if hasParent && (!valid || parent.Span() != span) {
			t.Fatalf("parent %s does not match traceparent %q", parent, traceparent)
		}
		if remote, ok := RemoteSpanFromContext(ctx, tr); ok != (valid && !hasParent) || ok && remote != span {
			t.Fatalf("remote span %s, %v from %q with parent %v", remote, ok, traceparent, hasParent)
		}
		if ts, err := hlc.Parse(stamp); stamp == "" && clockErrs != 0 ||
			err != nil && stamp != "" && clockErrs != 1 ||
			err == nil && ts.Wall <= epoch.UnixNano() && clockErrs != 0 {
			t.Fatalf("%d clock errors for %q", clockErrs, stamp)
		}

		// OpenTelemetry agrees on validity, except that it refuses flag
		// bits it does not know in version 00, which W3C says to ignore.
		sc := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{"traceparent": traceparent}))
		rawValid := valid && strings.Trim(traceparent, " \t") == traceparent
		otelFlagsOnly := rawValid && strings.HasPrefix(traceparent, "00-") && traceparent[53:55] > "03"
		if sc.IsValid() != rawValid && !otelFlagsOnly {
			t.Fatalf("%q: valid %v, OpenTelemetry says %v", traceparent, rawValid, sc.IsValid())
		}
		if sc.IsValid() && ([16]byte(sc.TraceID()) != [16]byte(tr) || [8]byte(sc.SpanID()) != span) {
			t.Fatalf("%q: OpenTelemetry reads %s/%s", traceparent, sc.TraceID(), sc.SpanID())
		}

		// Passed on without a new event, the context is what came in.
		out := MapCarrier{}
		Propagator{}.Inject(ctx, out)
		_, outSpan, outFlags, _ := parseTraceparent(out["traceparent"])
		if valid && (outSpan != span || outFlags != flags&knownFlags) {
			t.Fatalf("passed on %q as %q", traceparent, out["traceparent"])
		}
		if !valid && outFlags != startFlags {
			t.Fatalf("a trace started here goes out as %q", out["traceparent"])
		}
		again := Propagator{}.Extract(context.Background(), out)
		tr2, _ := TraceFromContext(again)
		p2, _ := ParentFromContext(again)
		if tr2 != tr || parent != p2 {
			t.Fatalf("round trip: trace %s→%s, parent %s→%s (%v)", tr, tr2, parent, p2, out)
		}
		if in, back := receivedFromContext(ctx, tr), receivedFromContext(again, tr); valid && !reflect.DeepEqual(in, back) {
			t.Fatalf("round trip changed what was received: %+v, then %+v", in, back)
		}
	})
}

// FuzzCanonical checks the hand-written encoder against the reference
// encoder on arbitrary events, and that Unmarshal inverts Marshal.
func FuzzCanonical(f *testing.F) {
	f.Add(int64(0), uint32(0), "n", "k", []byte(nil), []byte(nil), "", []byte(nil))
	f.Add(int64(-1), uint32(1), "12D3KooWGzh5sBvXh3ax1W3kG3sUqk8JcS2oD4ziLBEX5WwFMaYq", "http.request",
		[]byte("0123456789abcdef"), []byte("0123456789abcdef0123456789abcdef"),
		"method=GET\x00path=/x\x00status=200\x00a=\x00=b", []byte("payload"))
	f.Add(int64(1<<40), uint32(1<<31), "é", strings.Repeat("k", 24), []byte{1}, []byte{2}, strings.Repeat("k=v\x00", 30), make([]byte, 256))
	f.Fuzz(func(t *testing.T, wall int64, logical uint32, node, kind string, corr, parent []byte, attrs string, payload []byte) {
		e := Event{Time: hlc.Timestamp{Wall: wall, Logical: logical}, Node: node, Kind: kind, Payload: payload}
		copy(e.Correlation[:], corr)
		copy(e.Parent[:], parent)
		if attrs != "" {
			e.Attrs = map[string]string{}
			for kv := range strings.SplitSeq(attrs, "\x00") {
				k, v, _ := strings.Cut(kv, "=")
				e.Attrs[k] = v
			}
		}
		l := Limits{MaxEventBytes: 1 << 30, MaxNodeBytes: 1 << 30, MaxKindBytes: 1 << 30, MaxAttrs: 1 << 30, MaxAttrKeyBytes: 1 << 30, MaxAttrValueBytes: 1 << 30}
		s, err := l.Seal(e)
		valid := node != "" && kind != "" && utf8.ValidString(node) && utf8.ValidString(kind)
		for k, v := range e.Attrs {
			valid = valid && utf8.ValidString(k) && utf8.ValidString(v)
		}
		if !valid {
			if err == nil {
				t.Fatalf("Seal accepted an invalid event %+v", e)
			}
			return
		}
		if err != nil {
			t.Fatalf("Seal: %v", err)
		}
		if got, want := appendContent(nil, e, sortedAttrs(nil, e.Attrs)), refMarshalContent(t, e); !bytes.Equal(got, want) {
			t.Fatalf("content\n got %x\nwant %x", got, want)
		}
		wire, err := l.Marshal(s)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		if want := refMarshalWire(t, s); !bytes.Equal(wire, want) {
			t.Fatalf("wire\n got %x\nwant %x", wire, want)
		}
		back, err := l.Unmarshal(wire)
		if err != nil {
			t.Fatalf("Unmarshal: %v", err)
		}
		if !reflect.DeepEqual(back, s) {
			t.Fatalf("round trip\n got %+v\nwant %+v", back, s)
		}
	})
}

// FuzzUnmarshal checks the hand-written decoder against the reference
// decoder on arbitrary bytes: each accepts exactly what the other accepts,
// and they agree on the result.
func FuzzUnmarshal(f *testing.F) {
	for _, e := range []Event{typicalEvent(), minimalEvent(), {Node: "n", Kind: "k", Time: hlc.Timestamp{Wall: -5, Logical: 9}}} {
		f.Add(mustMarshal(f, mustSeal(f, e)))
	}
	f.Add([]byte{0xa0})
	f.Add([]byte{0xbf, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		// Random bytes almost never carry the right hash, which would hide
		// every other difference behind ErrIDMismatch. Where the input has
		// the shape of a wire form, give it the ID of what follows.
		if len(b) >= wirePrefixLen && b[0] > majorMap && b[0] <= majorMap|23 &&
			b[1] == keyID && b[2] == majorBytes|24 && b[3] == 32 {
			content := append([]byte{b[0] - 1}, b[wirePrefixLen:]...)
			sum := sha256.Sum256(content)
			copy(b[4:wirePrefixLen], sum[:])
		}
		l := Limits{MaxEventBytes: 1 << 30, MaxNodeBytes: 1 << 30, MaxKindBytes: 1 << 30, MaxAttrs: 1 << 30, MaxAttrKeyBytes: 1 << 30, MaxAttrValueBytes: 1 << 30}
		got, err := l.Unmarshal(b)
		want, ok := refUnmarshal(t, b)
		if (err == nil) != ok {
			t.Fatalf("Unmarshal error %v, reference accepts: %v (%+v)", err, ok, want)
		}
		if ok && !reflect.DeepEqual(got, want) {
			t.Fatalf("decoded\n got %+v\nwant %+v", got, want)
		}
	})
}
