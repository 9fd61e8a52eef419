package events

import (
	"context"
	"errors"
	"fmt"
	"net/http"
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

			want := fmt.Sprintf("00-%s-%s-01", tr, parent.String()[:16])
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
	gt, span, ok := parseTraceparent(c["traceparent"])
	if !ok || gt != tr || span == ([8]byte{}) {
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
	if _, _, ok := parseTraceparent(c["traceparent"]); !ok {
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
		if _, _, ok := parseTraceparent(s); !ok {
			t.Errorf("%q refused", s)
		}
	}
	for _, s := range invalid {
		if _, _, ok := parseTraceparent(s); ok {
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
	var span [8]byte
	copy(span[:], parent[:])
	own := "scopemesh=" + parent.String()
	other := parent
	other[0] ^= 1
	cases := []struct {
		name       string
		state      string
		wantParent ID
		wantOthers []string
	}{
		{"own only", own, parent, nil},
		{"with others", "congo=t61rcWkgMzE, " + own + " ,\trojo=00f067aa0ba902b7", parent, []string{"congo=t61rcWkgMzE", "rojo=00f067aa0ba902b7"}},
		{"empty members", ",," + own + ",", parent, nil},
		{"stale parent", "scopemesh=" + other.String(), ID{}, nil},
		{"uppercase parent", "scopemesh=" + strings.ToUpper(parent.String()), ID{}, nil},
		{"short parent", "scopemesh=" + parent.String()[:62], ID{}, nil},
		{"multi-tenant key", "tenant1@sys=x," + own, parent, []string{"tenant1@sys=x"}},
		{"duplicate key", own + "," + own, ID{}, nil},
		{"duplicate other key", "a=1,a=2," + own, ID{}, nil},
		{"uppercase key", "Congo=1," + own, ID{}, nil},
		{"no equals", "congo," + own, ID{}, nil},
		{"empty value", "congo=," + own, ID{}, nil},
		{"value with space at end", "congo=a b ," + own, parent, []string{"congo=a b"}}, // the trailing space is OWS
		{"value with comma-like char", "congo=a=b," + own, ID{}, nil},
		{"33 members", members(32) + "," + own, ID{}, nil},
		{"32 members", members(31) + "," + own, parent, strings.Split(members(31), ",")},
	}
	for _, c := range cases {
		gotParent, gotOthers := parseTracestate(c.state, span)
		if gotParent != c.wantParent || strings.Join(gotOthers, "|") != strings.Join(c.wantOthers, "|") {
			t.Errorf("%s: parent %s, others %q; want %s, %q", c.name, gotParent, gotOthers, c.wantParent, c.wantOthers)
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
