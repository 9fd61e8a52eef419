package query

import (
	"bytes"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/hlc"
)

// span records one event of a trace with an explicit time and parent.
func span(t *testing.T, trace events.TraceID, node, kind string, wall int64, parent events.ID) events.Event {
	t.Helper()
	e, err := events.Seal(events.Event{Time: hlc.Timestamp{Wall: wall}, Node: node, Correlation: trace, Kind: kind, Parent: parent})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestTraceCausality(t *testing.T) {
	tr := events.NewTraceID()
	const ms = 1_000_000
	req := span(t, tr, "edge", "http.request", 100*ms, events.ID{})
	call := span(t, tr, "svc", "rpc.call", 101*ms, req.ID)
	q1 := span(t, tr, "db", "db.query", 102*ms, call.ID)
	q2 := span(t, tr, "cache", "cache.get", 102*ms+5, call.ID) // a concurrent branch
	// A reply whose clock ran behind its cause: causal order still puts it
	// after its parent.
	reply := span(t, tr, "svc", "rpc.reply", 101*ms+1, q1.ID)
	var orphanParent events.ID
	orphanParent[0] = 7
	orphan := span(t, tr, "svc", "retry", 103*ms, orphanParent)

	trace := NewTrace(tr, []events.Event{orphan, reply, q2, q1, call, req})
	pos := map[events.ID]int{}
	for i, e := range trace.Events {
		pos[e.ID] = i
	}
	for _, e := range trace.Events {
		if trace.Has(e.Parent) && pos[e.Parent] > pos[e.ID] {
			t.Fatalf("%s listed before its parent", e.Kind)
		}
	}
	for _, c := range []struct {
		a, b               events.Event
		before, concurrent bool
	}{
		{req, reply, true, false},
		{call, q2, true, false},
		{q1, q2, false, true},
		{q2, reply, false, true},
		{reply, req, false, false},
	} {
		if got := trace.HappenedBefore(c.a.ID, c.b.ID); got != c.before {
			t.Errorf("HappenedBefore(%s, %s) = %v", c.a.Kind, c.b.Kind, got)
		}
		if got := trace.Concurrent(c.a.ID, c.b.ID); got != c.concurrent {
			t.Errorf("Concurrent(%s, %s) = %v", c.a.Kind, c.b.Kind, got)
		}
	}
	if len(trace.Gaps) != 1 || trace.Gaps[0] != orphanParent {
		t.Fatalf("Gaps = %v, want the orphan's parent", trace.Gaps)
	}
	roots := trace.Roots()
	if len(roots) != 2 || roots[0].ID != req.ID || roots[1].ID != orphan.ID {
		t.Fatalf("Roots = %d events", len(roots))
	}
	if kids := trace.Children(call.ID); len(kids) != 2 {
		t.Fatalf("Children(call) = %d events, want 2", len(kids))
	}
	lanes := trace.Lanes()
	if len(lanes) != 4 || lanes[0].Node != "edge" || len(lanes[1].Events) != 3 {
		t.Fatalf("Lanes = %+v", lanes)
	}

	var out bytes.Buffer
	// A node named "" (Config.Name unset) is shown by its ID.
	if err := trace.Render(&out, RenderOptions{Names: map[string]string{"edge": "edge-1", "svc": ""}}); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{"6 events on 4 nodes", "A = edge-1", "B = svc", "╰─▶●", "◀─╯", "? retry", "missing"} {
		if !strings.Contains(text, want) {
			t.Errorf("rendering lacks %q:\n%s", want, text)
		}
	}
	for _, line := range strings.Split(text, "\n") {
		if utf8.RuneCountInString(line) > 80 {
			t.Errorf("line wider than 80 columns: %q", line)
		}
	}
}

// TestTraceHorizonTellsExpiredFromMissing: a parent missing from an event
// recorded just after the horizon expired with the trace's older part; one
// missing from an event recorded long after is a gap.
func TestTraceHorizonTellsExpiredFromMissing(t *testing.T) {
	tr := events.NewTraceID()
	const minute = int64(60_000_000_000)
	var lost, never events.ID
	lost[0], never[0] = 1, 2
	early := span(t, tr, "svc", "rpc.reply", 100*minute+1, lost)
	late := span(t, tr, "svc", "retry", 200*minute, never)
	trace := NewTrace(tr, []events.Event{early, late})
	trace.SetHorizon(hlc.Timestamp{Wall: 100 * minute})
	if len(trace.Expired) != 1 || trace.Expired[0] != lost || len(trace.Gaps) != 1 || trace.Gaps[0] != never {
		t.Fatalf("expired %v, gaps %v; want the early event's parent expired and the late one's missing", trace.Expired, trace.Gaps)
	}
	var b bytes.Buffer
	if err := trace.Render(&b, RenderOptions{}); err != nil || !strings.Contains(b.String(), "expired with the part of the trace before") {
		t.Fatalf("rendering:\n%s", b.String())
	}
}

// spanEvent records an event standing for a span that began at startMs and
// took durMs, recorded (as an OpenTelemetry exporter does) when it ended.
func spanEvent(t *testing.T, trace events.TraceID, node, kind, id, parentSpan string, startMs, durMs int64) events.Event {
	t.Helper()
	const ms = int64(time.Millisecond)
	start, dur := events.IntervalAttrs(time.Unix(0, startMs*ms), time.Duration(durMs*ms))
	attrs := map[string]string{events.AttrSpanID: id, events.AttrStart: start, events.AttrDuration: dur}
	if parentSpan != "" {
		attrs[events.AttrParentSpanID] = parentSpan
	}
	e, err := events.Seal(events.Event{Time: hlc.Timestamp{Wall: (startMs + durMs) * ms}, Node: node, Correlation: trace, Kind: kind, Attrs: attrs})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// Spans are joined by their span IDs, whichever node recorded them and
// whatever order they ended in; an event recorded for a request from a
// span joins it, and a span sent from an event joins the event.
func TestTraceJoinsSpans(t *testing.T) {
	tr := events.NewTraceID()
	const ms = int64(time.Millisecond)
	server := spanEvent(t, tr, "a", "GET /checkout", "0000000000000001", "feedfacefeedface", 100, 50) // its caller was not recorded
	client := spanEvent(t, tr, "a", "GET /cart", "0000000000000002", "0000000000000001", 110, 30)
	cart := spanEvent(t, tr, "b", "GET /cart server", "0000000000000003", "0000000000000002", 112, 25)
	// An event the cart service recorded itself, for the request.
	note, err := events.Seal(events.Event{Time: hlc.Timestamp{Wall: 113 * ms}, Node: "b", Correlation: tr, Kind: "cart.load",
		Attrs: map[string]string{events.AttrParentSpanID: "0000000000000003"}})
	if err != nil {
		t.Fatal(err)
	}
	// A span whose caller was that event, through scopemesh's propagator.
	stock := spanEvent(t, tr, "c", "GET /stock", "0000000000000004", note.ID.Span().String(), 114, 5)
	// A second child of the client span that began later but ended first.
	retry := spanEvent(t, tr, "a", "GET /cart retry", "0000000000000005", "0000000000000001", 141, 2)

	all := []events.Event{server, client, cart, note, stock, retry}
	trace := NewTrace(tr, all)
	wantParent := map[events.ID]events.ID{client.ID: server.ID, cart.ID: client.ID, note.ID: cart.ID, stock.ID: note.ID, retry.ID: server.ID}
	if len(trace.Joined) != len(wantParent) {
		t.Fatalf("Joined %v", trace.Joined)
	}
	for child, parent := range wantParent {
		if got, ok := trace.Parent(child); !ok || got.ID != parent || trace.Joined[child] != parent {
			t.Errorf("parent of %s: %s, %v", trace.Events[trace.index[child]].Kind, got.Kind, ok)
		}
	}
	if roots := trace.Roots(); len(roots) != 1 || roots[0].ID != server.ID || len(trace.Gaps) != 0 {
		t.Fatalf("roots %d, gaps %v", len(roots), trace.Gaps)
	}
	if !trace.HappenedBefore(server.ID, stock.ID) || trace.HappenedBefore(stock.ID, server.ID) || !trace.Concurrent(retry.ID, cart.ID) {
		t.Fatal("causality across joins")
	}
	if kids := trace.Children(server.ID); len(kids) != 2 || kids[0].ID != client.ID || kids[1].ID != retry.ID {
		t.Fatalf("children of the server span: %v", kids)
	}
	// A waterfall: each after its parent, siblings by start.
	var order []string
	for _, e := range trace.Events {
		order = append(order, e.Kind)
	}
	if want := []string{"GET /checkout", "GET /cart", "GET /cart server", "cart.load", "GET /stock", "GET /cart retry"}; !slices.Equal(order, want) {
		t.Fatalf("order %q, want %q", order, want)
	}
	// Every replica arranges the same events alike.
	for range 5 {
		rand.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
		again := NewTrace(tr, all)
		if !reflect.DeepEqual(again.Events, trace.Events) || !reflect.DeepEqual(again.Joined, trace.Joined) {
			t.Fatal("another order of the same events arranges differently")
		}
	}

	var out bytes.Buffer
	if err := trace.Render(&out, RenderOptions{Width: 120}); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{"   +0.000ms  ●          A GET /checkout [50ms]\n", "  +10.000ms  ●          A GET /cart [30ms]\n", "╰─▶●       B GET /cart server [25ms]\n", "│  ╰─▶●    C GET /stock [5ms]\n", "  +41.000ms  ●          A GET /cart retry [2ms]\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("rendering lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "span.") {
		t.Errorf("rendering shows the span attributes:\n%s", text)
	}
}

// Span IDs, unlike event IDs, can be named in a circle; the join leaves
// the loop open, and keeps every event. Of two events of one span, the
// first in key order is the one joined to.
func TestTraceSpanLoopsAndDuplicates(t *testing.T) {
	tr := events.NewTraceID()
	a := spanEvent(t, tr, "n", "a", "000000000000000a", "000000000000000b", 1, 1)
	b := spanEvent(t, tr, "n", "b", "000000000000000b", "000000000000000a", 2, 1)
	self := spanEvent(t, tr, "n", "self", "000000000000000c", "000000000000000c", 3, 1)
	trace := NewTrace(tr, []events.Event{a, b, self})
	if len(trace.Events) != 3 || len(trace.Joined) != 1 || trace.Joined[a.ID] != b.ID {
		t.Fatalf("events %d, joined %v", len(trace.Events), trace.Joined)
	}
	if roots := trace.Roots(); len(roots) != 2 {
		t.Fatalf("roots %v", roots)
	}

	first := spanEvent(t, tr, "n", "x", "00000000000000dd", "", 10, 1)
	again := spanEvent(t, tr, "m", "x", "00000000000000dd", "", 10, 2) // exported twice
	child := spanEvent(t, tr, "n", "child", "00000000000000ee", "00000000000000dd", 10, 1)
	trace = NewTrace(tr, []events.Event{child, again, first})
	if trace.Joined[child.ID] != first.ID {
		t.Fatalf("joined to %v, want the first of the span's events", trace.Joined)
	}
}

func TestRoundDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		1234567890 * time.Nanosecond: "1.235s",
		2029039 * time.Nanosecond:    "2.029ms",
		800331 * time.Nanosecond:     "800.331µs",
		37 * time.Nanosecond:         "37ns",
	} {
		if got := roundDuration(d).String(); got != want {
			t.Errorf("%v rounds to %s, want %s", d, got, want)
		}
	}
}
