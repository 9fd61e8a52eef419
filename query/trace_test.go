package query

import (
	"bytes"
	"strings"
	"testing"
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
	if err := trace.Render(&out, RenderOptions{Names: map[string]string{"edge": "edge-1"}}); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{"6 events on 4 nodes", "A = edge-1", "╰─▶●", "◀─╯", "? retry", "missing"} {
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
