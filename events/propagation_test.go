package events

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scopemesh/scopemesh/hlc"
)

var epoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// manualClock returns an HLC over a manual wall clock offset from epoch.
func manualClock(t testing.TB, offset time.Duration) (*hlc.Clock, *hlc.ManualClock) {
	t.Helper()
	wall := hlc.NewManualClock(epoch.Add(offset))
	c, err := hlc.NewClock(hlc.Config{WallClock: wall})
	if err != nil {
		t.Fatal(err)
	}
	return c, wall
}

func tracedContext(parent ID) (context.Context, TraceID) {
	tr := NewTraceID()
	ctx := ContextWithTrace(context.Background(), tr)
	return ContextWithParent(ctx, parent), tr
}

func TestInjectExtractCarriers(t *testing.T) {
	parent := mustSeal(t, typicalEvent()).ID
	carriers := map[string]func() TextMapCarrier{
		"map":      func() TextMapCarrier { return MapCarrier{} },
		"header":   func() TextMapCarrier { return HeaderCarrier(http.Header{}) },
		"metadata": func() TextMapCarrier { return MetadataCarrier{} },
	}
	for name, newCarrier := range carriers {
		t.Run(name, func(t *testing.T) {
			sender, _ := manualClock(t, 0)
			receiver, _ := manualClock(t, -100*time.Millisecond)
			ctx, tr := tracedContext(parent)
			c := newCarrier()
			Propagator{Clock: sender}.Inject(ctx, c)

			// A trace that starts here is sampled, and its ID random.
			want := fmt.Sprintf("00-%s-%s-03", tr, parent.String()[:16])
			if got := c.Get("traceparent"); got != want {
				t.Fatalf("traceparent %q, want %q", got, want)
			}
			if got := c.Get("tracestate"); got != "scopemesh="+parent.String() {
				t.Fatalf("tracestate %q", got)
			}
			sent, err := hlc.Parse(c.Get("scopemesh-hlc"))
			if err != nil {
				t.Fatalf("scopemesh-hlc: %v", err)
			}

			got := Propagator{Clock: receiver}.Extract(context.Background(), c)
			if gt, _ := TraceFromContext(got); gt != tr {
				t.Fatalf("trace %s, want %s", gt, tr)
			}
			if gp, _ := ParentFromContext(got); gp != parent {
				t.Fatalf("parent %s, want %s", gp, parent)
			}
			if next := receiver.Now(); !sent.Less(next) {
				t.Fatalf("receiver's next timestamp %v is not after the sender's %v", next, sent)
			}
		})
	}
}

func TestInjectWithoutTraceOrParent(t *testing.T) {
	c := MapCarrier{}
	clock, _ := manualClock(t, 0)
	Propagator{Clock: clock}.Inject(context.Background(), c)
	if _, ok := c["traceparent"]; ok {
		t.Fatalf("traceparent written without a trace: %v", c)
	}
	if c["scopemesh-hlc"] == "" {
		t.Fatal("no HLC field")
	}

	c = MapCarrier{}
	ctx, tr := tracedContext(ID{})
	Propagator{}.Inject(ctx, c)
	if _, ok := c["tracestate"]; ok {
		t.Fatalf("tracestate written without a parent: %v", c)
	}
	if _, ok := c["scopemesh-hlc"]; ok {
		t.Fatalf("HLC field written without a clock: %v", c)
	}
	gt, span, flags, ok := parseTraceparent(c["traceparent"])
	if !ok || gt != tr || span.IsZero() || flags != 3 {
		t.Fatalf("traceparent %q", c["traceparent"])
	}
	got := Propagator{}.Extract(context.Background(), c)
	if gt, _ := TraceFromContext(got); gt != tr {
		t.Fatalf("trace %s, want %s", gt, tr)
	}
	if _, ok := ParentFromContext(got); ok {
		t.Fatal("parent from a traceparent without tracestate")
	}

	// A parent whose first 8 bytes are zero cannot be a parent-id.
	c = MapCarrier{}
	ctx, _ = tracedContext(ID{8: 1})
	Propagator{}.Inject(ctx, c)
	if _, _, _, ok := parseTraceparent(c["traceparent"]); !ok {
		t.Fatalf("traceparent %q", c["traceparent"])
	}
	if _, ok := c["tracestate"]; ok {
		t.Fatalf("tracestate for a parent that traceparent cannot name: %v", c)
	}
}

func TestParseTraceparent(t *testing.T) {
	const tr, span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	valid := []string{
		"00-" + tr + "-" + span + "-01",
		"00-" + tr + "-" + span + "-00",
		"00-" + tr + "-" + span + "-ff", // unknown flags are kept, not refused
		"01-" + tr + "-" + span + "-01",
		"cc-" + tr + "-" + span + "-01-what-the-future-will-be-like",
		"fe-" + tr + "-" + span + "-01-",
	}
	invalid := []string{
		"",
		"00-" + tr + "-" + span + "-01-", // version 00 has exactly 55 characters
		"00-" + tr + "-" + span + "-1",
		"00-" + tr + "-" + span,
		"ff-" + tr + "-" + span + "-01",
		"cc-" + tr + "-" + span + "-01.what",
		"00-" + strings.ToUpper(tr) + "-" + span + "-01",
		"00-" + tr + "-" + strings.ToUpper(span) + "-01",
		"0A-" + tr + "-" + span + "-01",
		"00-" + tr + "-" + span + "-0A",
		"00-00000000000000000000000000000000-" + span + "-01",
		"00-" + tr + "-0000000000000000-01",
		"00_" + tr + "-" + span + "-01",
		"00-" + tr + "_" + span + "-01",
		"00-" + tr + "-" + span + "_01",
		" 00-" + tr + "-" + span + "-01",
		"00-" + tr[:31] + "g-" + span + "-01",
		"00-" + tr + "0-" + span[1:] + "-01",
	}
	for _, s := range valid {
		if _, _, _, ok := parseTraceparent(s); !ok {
			t.Errorf("%q refused", s)
		}
	}
	for _, s := range invalid {
		if _, _, _, ok := parseTraceparent(s); ok {
			t.Errorf("%q accepted", s)
		}
	}
}

func TestExtractInvalidStartsFreshTrace(t *testing.T) {
	ctx := ContextWithParent(ContextWithTrace(context.Background(), NewTraceID()), ID{1})
	seen := map[TraceID]bool{}
	for _, tp := range []string{"", "garbage", "00-00000000000000000000000000000000-00f067aa0ba902b7-01"} {
		got := Propagator{}.Extract(ctx, MapCarrier{"traceparent": tp, "tracestate": "scopemesh=" + strings.Repeat("a", 64)})
		tr, ok := TraceFromContext(got)
		if !ok || seen[tr] {
			t.Fatalf("traceparent %q: trace %s, %v", tp, tr, ok)
		}
		seen[tr] = true
		if old, _ := TraceFromContext(ctx); tr == old {
			t.Fatalf("traceparent %q: kept the context's trace", tp)
		}
		if _, ok := ParentFromContext(got); ok {
			t.Fatalf("traceparent %q: parent kept", tp)
		}
	}
}

func TestExtractRepeatedTraceparent(t *testing.T) {
	ctx, tr := tracedContext(ID{1})
	h := http.Header{}
	Propagator{}.Inject(ctx, HeaderCarrier(h))
	h.Add("traceparent", h.Get("traceparent"))
	got := Propagator{}.Extract(context.Background(), HeaderCarrier(h))
	if gt, _ := TraceFromContext(got); gt == tr {
		t.Fatal("a repeated traceparent was accepted")
	}
}

func TestTracestate(t *testing.T) {
	parent := mustSeal(t, typicalEvent()).ID
	own := "scopemesh=" + parent.String()
	other := parent
	other[0] ^= 1
	cases := []struct {
		name        string
		state       string
		wantParent  ID
		wantMembers []string // nil: the field is discarded
	}{
		{"own only", own, parent, []string{own}},
		{"with others", "congo=t61rcWkgMzE, " + own + " ,\trojo=00f067aa0ba902b7", parent, []string{"congo=t61rcWkgMzE", own, "rojo=00f067aa0ba902b7"}},
		{"empty members", ",," + own + ",", parent, []string{own}},
		{"stale parent", "scopemesh=" + other.String(), ID{}, []string{"scopemesh=" + other.String()}},
		{"uppercase parent", "scopemesh=" + strings.ToUpper(parent.String()), ID{}, []string{"scopemesh=" + strings.ToUpper(parent.String())}},
		{"short parent", "scopemesh=" + parent.String()[:62], ID{}, []string{"scopemesh=" + parent.String()[:62]}},
		{"leftmost own member counts", own + ",scopemesh=" + other.String(), parent, []string{own, "scopemesh=" + other.String()}},
		{"leftmost own member is stale", "scopemesh=" + other.String() + "," + own, ID{}, []string{"scopemesh=" + other.String(), own}},
		// Level 2 keys: a digit may start one, '@' may be anywhere but first.
		{"multi-tenant key", "tenant1@sys=x," + own, parent, []string{"tenant1@sys=x", own}},
		{"digit first", "1congo=x", ID{}, []string{"1congo=x"}},
		{"at signs", "foo@=1,foo@@bar=2,foo@bar@baz=3,t@vvvvvvvvvvvvvvv=4", ID{}, []string{"foo@=1", "foo@@bar=2", "foo@bar@baz=3", "t@vvvvvvvvvvvvvvv=4"}},
		{"256-character key", strings.Repeat("z", 256) + "=1", ID{}, []string{strings.Repeat("z", 256) + "=1"}},
		{"257-character key", "foo=1," + strings.Repeat("z", 257) + "=1", ID{}, nil},
		{"at sign first", "@foo=1,bar=2", ID{}, nil},
		// Level 2 lets duplicate keys through.
		{"duplicate key", own + "," + own, parent, []string{own, own}},
		{"duplicate other key", "a=1,a=2," + own, parent, []string{"a=1", "a=2", own}},
		{"uppercase key", "Congo=1," + own, ID{}, nil},
		{"dot in key", "foo.bar=1", ID{}, nil},
		{"no equals", "congo," + own, ID{}, nil},
		{"empty value", "congo=," + own, ID{}, nil},
		{"value with space at end", "congo=a b ," + own, parent, []string{"congo=a b", own}}, // the trailing space is OWS
		{"value with comma-like char", "congo=a=b," + own, ID{}, nil},
		{"33 members", members(32) + "," + own, ID{}, nil},
		{"32 members", members(31) + "," + own, parent, append(strings.Split(members(31), ","), own)},
	}
	for _, c := range cases {
		gotParent, gotMembers := parseTracestate(c.state, parent.Span())
		if gotParent != c.wantParent || !slices.Equal(gotMembers, c.wantMembers) {
			t.Errorf("%s: parent %s, members %q; want %s, %q", c.name, gotParent, gotMembers, c.wantParent, c.wantMembers)
		}
	}
}

// members returns n distinct valid tracestate members.
func members(n int) string {
	m := make([]string, n)
	for i := range m {
		m[i] = fmt.Sprintf("k%d=v", i)
	}
	return strings.Join(m, ",")
}

func TestTracestatePassesOthersOn(t *testing.T) {
	parent := mustSeal(t, typicalEvent()).ID
	ctx, _ := tracedContext(parent)
	in := MapCarrier{}
	Propagator{}.Inject(ctx, in)
	in["tracestate"] = "congo=t61rcWkgMzE," + in["tracestate"] + ",rojo=00f067aa0ba902b7"

	got := Propagator{}.Extract(context.Background(), in)
	next := mustSeal(t, Event{Node: "n", Kind: "k"}).ID
	out := MapCarrier{}
	Propagator{}.Inject(ContextWithParent(got, next), out)
	// Our member, updated, goes first, as W3C asks of a modified member.
	want := "scopemesh=" + next.String() + ",congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
	if out["tracestate"] != want {
		t.Fatalf("tracestate %q, want %q", out["tracestate"], want)
	}
	// A different trace does not inherit them.
	out = MapCarrier{}
	Propagator{}.Inject(ContextWithTrace(got, NewTraceID()), out)
	if strings.Contains(out["tracestate"], "congo") {
		t.Fatalf("tracestate %q carried to another trace", out["tracestate"])
	}
	// Split over several header fields, tracestate is read whole.
	h := http.Header{}
	Propagator{}.Inject(ctx, HeaderCarrier(h))
	h.Add("tracestate", "congo=t61rcWkgMzE")
	got = Propagator{}.Extract(context.Background(), HeaderCarrier(h))
	if p, _ := ParentFromContext(got); p != parent {
		t.Fatalf("parent %s from split tracestate, want %s", p, parent)
	}
	out = MapCarrier{}
	Propagator{}.Inject(got, out)
	if !strings.HasSuffix(out["tracestate"], ",congo=t61rcWkgMzE") {
		t.Fatalf("tracestate %q lost the second field", out["tracestate"])
	}
}

func TestExtractClockErrors(t *testing.T) {
	receiver, _ := manualClock(t, 0)
	before := receiver.Last()
	var reports []error
	p := Propagator{Clock: receiver, OnClockError: func(remote string, err error) { reports = append(reports, err) }}

	ahead := hlc.Timestamp{Wall: epoch.Add(time.Second).UnixNano()}
	ctx, tr := tracedContext(ID{1})
	c := MapCarrier{}
	Propagator{}.Inject(ctx, c)
	c["scopemesh-hlc"] = ahead.String()
	got := p.Extract(context.Background(), c)
	if gt, _ := TraceFromContext(got); gt != tr {
		t.Fatal("a clock error lost the trace")
	}
	if len(reports) != 1 || !errors.Is(reports[0], hlc.ErrClockOffset) {
		t.Fatalf("reports %v, want one ErrClockOffset", reports)
	}
	if receiver.Last() != before {
		t.Fatalf("clock moved to %v on a rejected timestamp", receiver.Last())
	}

	for _, bad := range []string{"x", "1.", "1.-1", "1.99999999999"} {
		reports = nil
		p.Extract(context.Background(), MapCarrier{"scopemesh-hlc": bad})
		if len(reports) != 1 || !errors.Is(reports[0], hlc.ErrInvalidTimestamp) {
			t.Errorf("%q: reports %v, want one ErrInvalidTimestamp", bad, reports)
		}
	}

	// Without OnClockError a bad field is ignored.
	Propagator{Clock: receiver}.Extract(context.Background(), MapCarrier{"scopemesh-hlc": "x"})
	// Without Clock the field is not read.
	reports = nil
	Propagator{OnClockError: p.OnClockError}.Extract(context.Background(), MapCarrier{"scopemesh-hlc": "x"})
	if len(reports) != 0 {
		t.Fatal("field read without a clock")
	}
}

func TestNewTraceID(t *testing.T) {
	seen := map[TraceID]bool{}
	for range 1000 {
		tr := NewTraceID()
		if tr.IsZero() || seen[tr] {
			t.Fatalf("NewTraceID returned %s twice or zero", tr)
		}
		seen[tr] = true
	}
}

func TestContextValues(t *testing.T) {
	ctx := context.Background()
	if _, ok := TraceFromContext(ctx); ok {
		t.Fatal("trace in an empty context")
	}
	if _, ok := ParentFromContext(ctx); ok {
		t.Fatal("parent in an empty context")
	}
	tr := NewTraceID()
	ctx = ContextWithParent(ContextWithTrace(ctx, tr), ID{7})
	if got, ok := TraceFromContext(ctx); !ok || got != tr {
		t.Fatal("trace lost")
	}
	if got, ok := ParentFromContext(ctx); !ok || got != (ID{7}) {
		t.Fatal("parent lost")
	}
	ctx = ContextWithParent(ContextWithTrace(ctx, TraceID{}), ID{})
	if _, ok := TraceFromContext(ctx); ok {
		t.Fatal("zero trace did not remove the trace")
	}
	if _, ok := ParentFromContext(ctx); ok {
		t.Fatal("zero parent did not remove the parent")
	}
}

func TestCarriers(t *testing.T) {
	h := http.Header{}
	HeaderCarrier(h).Set("TraceParent", "x")
	if h.Get("traceparent") != "x" || HeaderCarrier(h).Get("TRACEPARENT") != "x" {
		t.Fatal("HeaderCarrier is case-sensitive")
	}
	md := map[string][]string{}
	MetadataCarrier(md).Set("TraceParent", "x")
	if md["traceparent"][0] != "x" || MetadataCarrier(md).Get("TRACEPARENT") != "x" {
		t.Fatalf("MetadataCarrier keys: %v", md)
	}
	if got := MetadataCarrier(md).Keys(); len(got) != 1 || got[0] != "traceparent" {
		t.Fatalf("Keys %v", got)
	}
	if MetadataCarrier(md).Get("missing") != "" || len(MetadataCarrier(md).Values("missing")) != 0 {
		t.Fatal("missing key")
	}
	m := MapCarrier{}
	m.Set("a", "b")
	if m.Get("a") != "b" || len(m.Keys()) != 1 || len(HeaderCarrier(h).Keys()) != 1 {
		t.Fatal("MapCarrier")
	}
}

// The flags a caller sent go on unchanged, on a hop that records an event
// and on one that records nothing, so the parent-id never has to change
// because a flag did; reserved bits go out as zero.
func TestFlagsPassOnUnchanged(t *testing.T) {
	const tr, span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	e := mustSeal(t, typicalEvent())
	for in, want := range map[string]string{"00": "00", "01": "01", "02": "02", "03": "03", "04": "00", "ff": "03", "0b": "03"} {
		ctx := Propagator{}.Extract(context.Background(), MapCarrier{"traceparent": "00-" + tr + "-" + span + "-" + in, "tracestate": "congo=1"})
		if in == "04" || in == "ff" || in == "0b" {
			// Version 00 with reserved bits is still valid: W3C says to
			// ignore them.
			if got, _ := TraceFromContext(ctx); got.String() != tr {
				t.Fatalf("flags %s refused", in)
			}
		}
		passed := MapCarrier{}
		Propagator{}.Inject(ctx, passed)
		if want := "00-" + tr + "-" + span + "-" + want; passed["traceparent"] != want || passed["tracestate"] != "congo=1" {
			t.Errorf("flags %s passed on as %v, want traceparent %s", in, passed, want)
		}
		recorded := MapCarrier{}
		Propagator{}.Inject(ContextWithParent(ctx, e.ID), recorded)
		if want := "00-" + tr + "-" + e.ID.Span().String() + "-" + want; recorded["traceparent"] != want {
			t.Errorf("flags %s sent on with an event as %q, want %q", in, recorded["traceparent"], want)
		}
	}
}

// A hop that records nothing passes traceparent on as it came, and so must
// pass tracestate on unmodified: ours where it was, duplicates and all.
func TestPassThroughKeepsTracestate(t *testing.T) {
	parent := mustSeal(t, typicalEvent()).ID
	tp := "00-4bf92f3577b34da6a3ce929d0e0e4736-" + parent.Span().String() + "-01"
	state := "congo=1,scopemesh=" + parent.String() + ",congo=2,rojo=x"
	ctx := Propagator{}.Extract(context.Background(), MapCarrier{"traceparent": tp, "tracestate": state})
	if p, _ := ParentFromContext(ctx); p != parent {
		t.Fatalf("parent %s, want %s", p, parent)
	}
	out := MapCarrier{}
	Propagator{}.Inject(ctx, out)
	if out["traceparent"] != tp || out["tracestate"] != state {
		t.Fatalf("passed on as %v", out)
	}

	// A new event moves our member to the front, and drops the old one.
	next := mustSeal(t, Event{Node: "n", Kind: "k"}).ID
	out = MapCarrier{}
	Propagator{}.Inject(ContextWithParent(ctx, next), out)
	if want := "scopemesh=" + next.String() + ",congo=1,congo=2,rojo=x"; out["tracestate"] != want {
		t.Fatalf("tracestate %q, want %q", out["tracestate"], want)
	}

	// With 32 members received, ours pushes the rightmost out.
	full := members(32)
	ctx = Propagator{}.Extract(context.Background(), MapCarrier{"traceparent": tp, "tracestate": full})
	out = MapCarrier{}
	Propagator{}.Inject(ContextWithParent(ctx, next), out)
	got := strings.Split(out["tracestate"], ",")
	if len(got) != 32 || got[0] != "scopemesh="+next.String() || got[31] != "k30=v" {
		t.Fatalf("tracestate %q", out["tracestate"])
	}
}

func TestRemoteSpan(t *testing.T) {
	const tr = "4bf92f3577b34da6a3ce929d0e0e4736"
	parent := mustSeal(t, typicalEvent()).ID
	span := parent.Span().String()
	trace, _ := ParseTraceID(tr)
	for _, c := range []struct {
		name, state string
		remote      bool
	}{
		{"no tracestate", "", true},
		{"another system's", "congo=1", true},
		{"a stale member of ours", "scopemesh=" + strings.Repeat("ab", 32), true},
		{"our parent event", "scopemesh=" + parent.String(), false},
	} {
		ctx := Propagator{}.Extract(context.Background(), MapCarrier{"traceparent": "00-" + tr + "-" + span + "-01", "tracestate": c.state})
		got, ok := RemoteSpanFromContext(ctx, trace)
		if ok != c.remote || ok && got.String() != span {
			t.Errorf("%s: remote span %s, %v", c.name, got, ok)
		}
		if _, ok := RemoteSpanFromContext(ctx, NewTraceID()); ok {
			t.Errorf("%s: a remote span for another trace", c.name)
		}
	}
}

// Spaces and tabs around traceparent are not part of it.
func TestExtractTrimsTraceparent(t *testing.T) {
	const tr = "4bf92f3577b34da6a3ce929d0e0e4736"
	for _, tp := range []string{" 00-" + tr + "-00f067aa0ba902b7-01", "\t00-" + tr + "-00f067aa0ba902b7-01 \t"} {
		ctx := Propagator{}.Extract(context.Background(), MapCarrier{"traceparent": tp})
		if got, _ := TraceFromContext(ctx); got.String() != tr {
			t.Errorf("%q: trace %s", tp, got)
		}
	}
}

func TestSpanID(t *testing.T) {
	for _, bad := range []string{"", "00f067aa0ba902b", "00F067AA0BA902B7", "00f067aa0ba902b7a", "00f067aa0ba902bg"} {
		if _, err := ParseSpanID(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseSpanID(%q): %v", bad, err)
		}
	}
	s, err := ParseSpanID("00f067aa0ba902b7")
	if err != nil || s.String() != "00f067aa0ba902b7" || s.IsZero() {
		t.Fatalf("ParseSpanID: %s, %v", s, err)
	}
	e := mustSeal(t, typicalEvent())
	if SpanOf(e) != e.ID.Span() {
		t.Fatal("an event without AttrSpanID is not its own span")
	}
	e.Attrs = map[string]string{AttrSpanID: "00f067aa0ba902b7", AttrParentSpanID: "0102030405060708"}
	if SpanOf(e) != s {
		t.Fatal("AttrSpanID ignored")
	}
	if p, ok := ParentSpanOf(e); !ok || p.String() != "0102030405060708" {
		t.Fatalf("ParentSpanOf: %s, %v", p, ok)
	}
	e.Attrs[AttrParentSpanID] = "0000000000000000"
	if _, ok := ParentSpanOf(e); ok {
		t.Fatal("a zero parent span accepted")
	}
}

func TestInterval(t *testing.T) {
	start := time.Date(2026, 3, 4, 5, 6, 7, 891, time.FixedZone("x", 3600))
	s, d := IntervalAttrs(start, 1500*time.Microsecond)
	e := Event{Attrs: map[string]string{AttrStart: s, AttrDuration: d}}
	gotStart, gotD, ok := Interval(e)
	if !ok || !gotStart.Equal(start) || gotD != 1500*time.Microsecond || s != "2026-03-04T04:06:07.000000891Z" || d != "1.5ms" {
		t.Fatalf("Interval: %v %v %v from %q %q", gotStart, gotD, ok, s, d)
	}
	for _, attrs := range []map[string]string{
		{AttrStart: s},
		{AttrDuration: d},
		{AttrStart: "yesterday", AttrDuration: d},
		{AttrStart: s, AttrDuration: "long"},
		{AttrStart: s, AttrDuration: "-1ms"},
	} {
		if _, _, ok := Interval(Event{Attrs: attrs}); ok {
			t.Errorf("Interval accepted %v", attrs)
		}
	}
}
