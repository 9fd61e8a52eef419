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
// links between them: each event's Parent is the event that caused it.
type Trace struct {
	ID events.TraceID
	// Events are the trace's events in causal order: every event after its
	// parent, and otherwise in (HLC, ID) order.
	Events []events.Event
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
	t := &Trace{ID: id, Events: causalOrder(evs)}
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

// causalOrder sorts evs so that every event follows its parent, breaking
// ties by key. Clocks normally give that order already: a child's node has
// seen its parent's timestamp. Sorting by links as well keeps the order
// causal when one hop did not carry the clock.
func causalOrder(evs []events.Event) []events.Event {
	byID := make(map[events.ID]events.Event, len(evs))
	for _, e := range evs {
		byID[e.ID] = e
	}
	children := make(map[events.ID][]events.Event)
	ready := &keyHeap[keyed]{}
	for _, e := range byID {
		if _, ok := byID[e.Parent]; ok && !e.Parent.IsZero() {
			children[e.Parent] = append(children[e.Parent], e)
		} else {
			heap.Push(ready, keyed{crdt.KeyOf(e), e})
		}
	}
	out := make([]events.Event, 0, len(byID))
	for ready.Len() > 0 {
		e := heap.Pop(ready).(keyed).e
		out = append(out, e)
		for _, c := range children[e.ID] {
			heap.Push(ready, keyed{crdt.KeyOf(c), c})
		}
	}
	return out
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

// Children returns the events whose parent is id, in causal order.
func (t *Trace) Children(id events.ID) []events.Event {
	var out []events.Event
	for _, e := range t.Events {
		if e.Parent == id {
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
		if !t.Has(e.Parent) {
			out = append(out, e)
		}
	}
	return out
}

// HappenedBefore reports whether a is a causal ancestor of b: b, or its
// parent, or its parent's parent ..., names a as parent.
func (t *Trace) HappenedBefore(a, b events.ID) bool {
	// Parents are content hashes, so links cannot loop; the bound only
	// guards against a store that lies.
	e, ok := t.Event(b)
	for steps := 0; ok && steps < len(t.Events); steps++ {
		if e.Parent == a {
			return true
		}
		e, ok = t.Event(e.Parent)
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
