package query

import (
	"container/heap"
	"slices"
	"time"

	"github.com/scopemesh/scopemesh/crdt"
	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/hlc"
)

// Trace is one trace's events across the cluster, arranged by the causal
// links between them: each event's Parent is the event that caused it; an
// event that names no parent event but a parent span
// (events.AttrParentSpanID), such as an OpenTelemetry span's, is the child
// of the event of that span (events.SpanOf), if the trace holds it.
type Trace struct {
	ID events.TraceID
	// Events are the trace's events in causal order: every event after its
	// parent, and otherwise in order of their start (events.Interval, else
	// their HLC wall time) and then (HLC, ID).
	Events []events.Event
	// Joined are the parents found by span: for each event whose parent is
	// the event of its parent span, that event's ID.
	Joined map[events.ID]events.ID `json:",omitempty"`
	// Gaps are parents that events name but that no replica asked holds,
	// and that cannot have expired (see Expired).
	Gaps []events.ID
	// Horizon is the retention horizon of the replica that asked: events
	// before it have expired there, and likely everywhere.
	Horizon hlc.Timestamp
	// Expired are parents that no replica asked holds, of events recorded
	// within expiredWindow after the horizon: the older part of the trace,
	// gone with retention rather than missing.
	Expired []events.ID
	// Complete and Peers say which replicas answered, as in Result.
	Complete bool
	Peers    []PeerAnswer
	// Names are the names of the nodes, by ID, that the asking replica
	// knows (Config.Name): lanes are labelled with them.
	Names map[string]string `json:",omitempty"`

	index map[events.ID]int // position in Events
}

// Lane is one node's part of a trace.
type Lane struct {
	Node   string
	Events []events.Event // in HLC order
}

// NewTrace arranges the events of trace id.
func NewTrace(id events.TraceID, evs []events.Event) *Trace {
	byID := make(map[events.ID]events.Event, len(evs))
	for _, e := range evs {
		byID[e.ID] = e
	}
	t := &Trace{ID: id, Joined: joinSpans(byID)}
	t.Events = causalOrder(byID, t.parentOf)
	t.index = make(map[events.ID]int, len(t.Events))
	for i, e := range t.Events {
		t.index[e.ID] = i
	}
	for _, e := range t.Events {
		if !e.Parent.IsZero() && !t.Has(e.Parent) && !slices.Contains(t.Gaps, e.Parent) {
			t.Gaps = append(t.Gaps, e.Parent)
		}
	}
	return t
}

// joinSpans returns, for each event of byID that names no parent event but
// a parent span, the event of that span, when byID holds it. Links that
// would close a loop — span IDs, unlike event IDs, can be named in circles
// — are left out, the first in key order kept, so every replica joins
// alike.
func joinSpans(byID map[events.ID]events.Event) map[events.ID]events.ID {
	var spanLinked int
	for _, e := range byID {
		if _, ok := events.ParentSpanOf(e); ok && e.Parent.IsZero() {
			spanLinked++
		}
	}
	if spanLinked == 0 {
		return nil // most traces: the cost of a scan
	}
	ordered := make([]startedEvent, 0, len(byID))
	for _, e := range byID {
		ordered = append(ordered, startedEvent{key: crdt.KeyOf(e), e: e})
	}
	slices.SortFunc(ordered, func(a, b startedEvent) int { return a.key.Compare(b.key) })
	bySpan := make(map[events.SpanID]events.ID, len(ordered))
	for _, x := range ordered {
		if _, taken := bySpan[events.SpanOf(x.e)]; !taken {
			bySpan[events.SpanOf(x.e)] = x.e.ID
		}
	}
	// A forest of the links so far, its trees' roots found by union-find:
	// a link from a root to an event of its own tree would close a loop.
	f := newForest()
	for _, x := range ordered {
		if _, ok := byID[x.e.Parent]; ok && !x.e.Parent.IsZero() {
			f.link(x.e.ID, x.e.Parent)
		}
	}
	joined := make(map[events.ID]events.ID, spanLinked)
	for _, x := range ordered {
		span, ok := events.ParentSpanOf(x.e)
		if !ok || !x.e.Parent.IsZero() {
			continue
		}
		parent, ok := bySpan[span]
		if !ok || f.root(parent) == x.e.ID {
			continue
		}
		f.link(x.e.ID, parent)
		joined[x.e.ID] = parent
	}
	if len(joined) == 0 {
		return nil
	}
	return joined
}

// forest is a union-find over trees of events, each set knowing the root of
// its tree.
type forest struct {
	up    map[events.ID]events.ID // union-find parent; absent: a set's representative
	roots map[events.ID]events.ID // of a representative: its tree's root, if not itself
}

func newForest() *forest {
	return &forest{up: map[events.ID]events.ID{}, roots: map[events.ID]events.ID{}}
}

func (f *forest) find(id events.ID) events.ID {
	for {
		next, ok := f.up[id]
		if !ok {
			return id
		}
		if grand, ok := f.up[next]; ok {
			f.up[id] = grand // path halving
		}
		id = next
	}
}

// root returns the root of id's tree.
func (f *forest) root(id events.ID) events.ID {
	rep := f.find(id)
	if r, ok := f.roots[rep]; ok {
		return r
	}
	return rep
}

// link makes child, the root of its tree, a child of parent.
func (f *forest) link(child, parent events.ID) {
	treeRoot := f.root(parent)
	c, p := f.find(child), f.find(parent)
	f.up[c] = p
	delete(f.roots, c)
	f.roots[p] = treeRoot
}

// Parent returns the parent of event id: the event it names as Parent, or
// the one Joined found by span; and whether the trace holds one.
func (t *Trace) Parent(id events.ID) (events.Event, bool) {
	e, ok := t.Event(id)
	if !ok {
		return events.Event{}, false
	}
	return t.Event(t.parentOf(e))
}

// parentOf returns the ID of e's parent, named or joined; zero if none.
func (t *Trace) parentOf(e events.Event) events.ID {
	if !e.Parent.IsZero() {
		return e.Parent
	}
	return t.Joined[e.ID]
}

// expiredWindow is how long after the horizon an event may have been
// recorded for its missing parent to count as expired rather than missing:
// the hops of a request's trace follow each other within seconds or
// minutes.
const expiredWindow = 10 * time.Minute

// SetHorizon records the asking replica's retention horizon and moves to
// Expired the gaps whose children were recorded within expiredWindow of
// it.
func (t *Trace) SetHorizon(h hlc.Timestamp) {
	t.Horizon = h
	if h.IsZero() {
		return
	}
	limit := h.Wall + int64(expiredWindow)
	recent := func(parent events.ID) bool {
		for _, e := range t.Events {
			if e.Parent == parent && e.Time.Wall < limit {
				return true
			}
		}
		return false
	}
	gaps := t.Gaps[:0]
	for _, p := range t.Gaps {
		if recent(p) {
			t.Expired = append(t.Expired, p)
		} else {
			gaps = append(gaps, p)
		}
	}
	t.Gaps = gaps
}

// causalOrder sorts the events so that every event follows its parent,
// and otherwise by start (the order of a waterfall) and then key. Clocks
// normally give that order already: a child's node has seen its parent's
// timestamp. Sorting by links as well keeps the order causal when one hop
// did not carry the clock, and puts an OpenTelemetry span, recorded when
// it ends, before the spans it caused.
func causalOrder(byID map[events.ID]events.Event, parentOf func(events.Event) events.ID) []events.Event {
	children := make(map[events.ID][]events.Event)
	ready := &startHeap{}
	for _, e := range byID {
		if p := parentOf(e); !p.IsZero() && hasEvent(byID, p) {
			children[p] = append(children[p], e)
		} else {
			heap.Push(ready, started(e))
		}
	}
	out := make([]events.Event, 0, len(byID))
	for ready.Len() > 0 {
		e := heap.Pop(ready).(startedEvent).e
		out = append(out, e)
		for _, c := range children[e.ID] {
			heap.Push(ready, started(c))
		}
	}
	return out
}

func hasEvent(byID map[events.ID]events.Event, id events.ID) bool {
	_, ok := byID[id]
	return ok
}

// startedEvent is an event with the keys it is ordered by.
type startedEvent struct {
	begin int64
	key   crdt.Key
	e     events.Event
}

func started(e events.Event) startedEvent {
	begin, _ := events.Extent(e)
	return startedEvent{begin, crdt.KeyOf(e), e}
}

// startHeap is a container/heap of events, the earliest begin, then key,
// on top.
type startHeap []startedEvent

func (h startHeap) Len() int { return len(h) }
func (h startHeap) Less(i, j int) bool {
	if h[i].begin != h[j].begin {
		return h[i].begin < h[j].begin
	}
	return h[i].key.Compare(h[j].key) < 0
}
func (h startHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *startHeap) Push(x any)   { *h = append(*h, x.(startedEvent)) }
func (h *startHeap) Pop() any {
	x := (*h)[len(*h)-1]
	*h = (*h)[:len(*h)-1]
	return x
}

// Has reports whether the trace holds the event id.
func (t *Trace) Has(id events.ID) bool {
	_, ok := t.index[id]
	return ok
}

// Event returns the event id of the trace.
func (t *Trace) Event(id events.ID) (events.Event, bool) {
	i, ok := t.index[id]
	if !ok {
		return events.Event{}, false
	}
	return t.Events[i], true
}

// Children returns the events whose parent is id, named or joined, in
// causal order.
func (t *Trace) Children(id events.ID) []events.Event {
	var out []events.Event
	for _, e := range t.Events {
		if t.parentOf(e) == id {
			out = append(out, e)
		}
	}
	return out
}

// Roots returns the events whose parent is not in the trace: the requests'
// entry points, and the events below a gap.
func (t *Trace) Roots() []events.Event {
	var out []events.Event
	for _, e := range t.Events {
		if !t.Has(t.parentOf(e)) {
			out = append(out, e)
		}
	}
	return out
}

// HappenedBefore reports whether a is a causal ancestor of b: b's parent,
// named or joined, or its parent's parent ..., is a.
func (t *Trace) HappenedBefore(a, b events.ID) bool {
	// Named parents are content hashes and joined ones never close a
	// loop; the bound only guards against a store that lies.
	e, ok := t.Event(b)
	for steps := 0; ok && steps < len(t.Events); steps++ {
		p := t.parentOf(e)
		if p == a {
			return true
		}
		e, ok = t.Event(p)
	}
	return false
}

// Concurrent reports whether a and b are two events of the trace neither of
// which happened before the other.
func (t *Trace) Concurrent(a, b events.ID) bool {
	return a != b && t.Has(a) && t.Has(b) && !t.HappenedBefore(a, b) && !t.HappenedBefore(b, a)
}

// Lanes returns the trace's events grouped by node, nodes in order of their
// first event.
func (t *Trace) Lanes() []Lane {
	var lanes []Lane
	at := map[string]int{}
	for _, e := range t.Events {
		i, ok := at[e.Node]
		if !ok {
			i = len(lanes)
			at[e.Node] = i
			lanes = append(lanes, Lane{Node: e.Node})
		}
		lanes[i].Events = append(lanes[i].Events, e)
	}
	for _, l := range lanes {
		slices.SortFunc(l.Events, func(a, b events.Event) int { return crdt.KeyOf(a).Compare(crdt.KeyOf(b)) })
	}
	return lanes
}
