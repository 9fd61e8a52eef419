package nemesis

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/scopemesh/scopemesh/crdt"
	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/hlc"
	"github.com/scopemesh/scopemesh/query"
)

func keyOf(e events.Event) crdt.Key { return crdt.KeyOf(e) }

// verdict collects the checker's findings, a few examples of each.
type verdict struct {
	problems []string
	counts   map[string]int
}

// maxExamples is how many findings of one kind the report lists.
const maxExamples = 5

func (v *verdict) add(kind, format string, args ...any) {
	if v.counts == nil {
		v.counts = map[string]int{}
	}
	v.counts[kind]++
	if v.counts[kind] <= maxExamples {
		v.problems = append(v.problems, kind+": "+fmt.Sprintf(format, args...))
	}
}

// ok reports whether the verdict holds no finding.
func (v *verdict) ok() bool { return len(v.counts) == 0 }

func (v *verdict) String() string {
	var b strings.Builder
	for _, p := range v.problems {
		b.WriteString(p + "\n")
	}
	for _, kind := range slices.Sorted(maps.Keys(v.counts)) {
		if n := v.counts[kind]; n > maxExamples {
			fmt.Fprintf(&b, "%s: %d more\n", kind, n-maxExamples)
		}
	}
	return b.String()
}

// checkOptions tune the checker.
type checkOptions struct {
	// maxTraces bounds the traces reconstructed through the cluster on
	// every node; the others are checked from the local replicas only.
	maxTraces int
	// maxLead is the furthest ahead of its physical clock a node's hybrid
	// clock may run.
	maxLead time.Duration
	// membership is how long every node may take to see every other as a
	// connected member again: reconnection after a heal waits for
	// redial backoffs.
	membership time.Duration
}

// check verifies what the cluster must guarantee once healed and synced:
//
//   - every acknowledged event is on every node, and nothing else is but
//     indeterminate events (recorded as a crash struck), above the
//     retention horizon the nodes agree on; nothing is below it;
//   - no node lists an event twice or out of (HLC, ID) order, and every
//     event verifies against its ID;
//   - every node lists the identical sequence;
//   - each node's own events have strictly increasing clocks: within each
//     writer in recording order, and from one incarnation to the next;
//   - every trace reconstructs identically on every node, complete, each
//     event after its parent, with gaps only where a parent was never
//     acknowledged;
//   - every node lists every other as a connected member in its view of
//     the cluster, and no one else;
//   - no node's clock starts an incarnation further ahead of its physical
//     clock than the persisted lead and skew explain.
func (c *cluster) check(ctx context.Context, opts checkOptions) *verdict {
	v := &verdict{}
	h := c.hist
	for _, f := range h.failed {
		v.add("record failed", "%s", f)
	}
	nodes := c.nodes()
	if len(nodes) != len(c.slots) {
		v.add("nodes down", "%d of %d nodes are up after the heal", len(nodes), len(c.slots))
		return v
	}
	// What lies below the horizon has expired: nowhere, and not lost.
	horizon, agreed := horizonOf(nodes)
	if !agreed {
		v.add("horizons", "the nodes disagree on the retention horizon")
	}
	logs := make([][]events.Event, len(nodes))
	for i, n := range nodes {
		if err := scanAll(ctx, n, func(e events.Event) { logs[i] = append(logs[i], e) }); err != nil {
			v.add("query failed", "n%d: %v", i, err)
			return v
		}
	}

	for i, log := range logs {
		held := make(map[events.ID]bool, len(log))
		for j, e := range log {
			if j > 0 && keyOf(log[j-1]).Compare(keyOf(e)) >= 0 {
				v.add("order", "n%d lists %v (%v) at position %d after %v (%v)", i, e.ID, e.Time, j, log[j-1].ID, log[j-1].Time)
			}
			if held[e.ID] {
				v.add("duplicate", "n%d lists %v twice", i, e.ID)
			}
			held[e.ID] = true
			if err := events.Verify(e); err != nil {
				v.add("corrupt", "n%d holds %v, which does not verify: %v", i, e.ID, err)
			}
			if _, _, ok := h.known(e.ID); !ok {
				v.add("phantom", "n%d holds %v (%s), which no Record returned", i, e.ID, describe(e))
			}
			if e.Time.Less(horizon) {
				v.add("expired kept", "n%d holds %v (%v), below the horizon %v", i, e.ID, e.Time, horizon)
			}
		}
		h.mu.Lock()
		for id, r := range h.acked {
			if !held[id] && !r.time.Less(horizon) {
				v.add("lost", "n%d lacks acknowledged %v (%v)", i, id, r)
			}
		}
		h.mu.Unlock()
	}

	for i, log := range logs[1:] {
		if d := firstDifference(logs[0], log); d >= 0 {
			v.add("diverged", "n%d and n0 differ from position %d on (%d and %d events)", i+1, d, len(log), len(logs[0]))
		}
	}

	if err := c.waitConnected(ctx, opts.membership); err != nil {
		v.add("membership", "%v", err)
	}
	c.checkClocks(v, logs[0])
	c.checkTraces(ctx, v, logs, opts.maxTraces, horizon)

	c.stats.mu.Lock()
	for _, l := range c.stats.restartLead {
		if l.lead > opts.maxLead {
			v.add("clock ahead", "n%d's clock ran %v ahead of its physical clock when incarnation %d started, more than %v",
				l.node, l.lead, l.inc, opts.maxLead)
		}
	}
	c.stats.mu.Unlock()
	return v
}

// describe names where an event was recorded.
func describe(e events.Event) string {
	o, err := originOf(e)
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("%v at %v", o, e.Time)
}

// firstDifference returns the first position where a and b list different
// events, or -1 if they are the same.
func firstDifference(a, b []events.Event) int {
	for i := range min(len(a), len(b)) {
		if a[i].ID != b[i].ID {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}

// checkClocks checks that each node's own events have strictly increasing
// clocks: a writer's events in the order it recorded them, and every event
// of an incarnation after every event of the incarnations before it. The
// node's identity is the same in every incarnation, and its clock bound is
// persisted in its store, so both must hold across restarts and crashes.
func (c *cluster) checkClocks(v *verdict, log []events.Event) {
	type writerKey struct {
		slot, inc int
		writer    string
	}
	type span struct{ first, last hlc.Timestamp }
	byWriter := map[writerKey][]events.Event{}
	incs := map[[2]int]*span{}
	for _, e := range log {
		o, err := originOf(e)
		if err != nil || o.slot < 0 || o.slot >= len(c.slots) {
			v.add("attributes", "%v: %v", e.ID, err)
			continue
		}
		if e.Node != c.slots[o.slot].id {
			v.add("origin", "%v recorded on n%d names node %s, want %s", e.ID, o.slot, e.Node, c.slots[o.slot].id)
		}
		k := writerKey{o.slot, o.inc, o.writer}
		byWriter[k] = append(byWriter[k], e)
		sp := incs[[2]int{o.slot, o.inc}]
		if sp == nil {
			sp = &span{first: e.Time, last: e.Time}
			incs[[2]int{o.slot, o.inc}] = sp
		}
		sp.first, sp.last = minTime(sp.first, e.Time), maxTime(sp.last, e.Time)
	}
	for k, evs := range byWriter {
		slices.SortFunc(evs, func(a, b events.Event) int {
			oa, _ := originOf(a)
			ob, _ := originOf(b)
			return oa.seq - ob.seq
		})
		for j := 1; j < len(evs); j++ {
			if !evs[j-1].Time.Less(evs[j].Time) {
				v.add("clock order", "n%d incarnation %d, %s writer: event %s at %v is not after the one before it at %v",
					k.slot, k.inc, k.writer, evs[j].Attrs[attrSeq], evs[j].Time, evs[j-1].Time)
			}
		}
	}
	for slot := range c.slots {
		var prev *span
		prevInc := -1
		for inc := range c.slots[slot].incs {
			sp := incs[[2]int{slot, inc}]
			if sp == nil {
				continue
			}
			if prev != nil && !prev.last.Less(sp.first) {
				v.add("clock across restart", "n%d: incarnation %d starts at %v, not after incarnation %d's last event at %v",
					slot, inc, sp.first, prevInc, prev.last)
			}
			prev, prevInc = sp, inc
		}
	}
}

func minTime(a, b hlc.Timestamp) hlc.Timestamp {
	if b.Less(a) {
		return b
	}
	return a
}

func maxTime(a, b hlc.Timestamp) hlc.Timestamp {
	if a.Less(b) {
		return b
	}
	return a
}

// checkTraces reconstructs traces on every node. Each node's cluster-wide
// trace (Node.Trace, which asks every peer) must match what its own
// replica alone gives, and the same on every node: the same events in the
// same causal order, complete, each event after its parent, with gaps
// only at parents that were never acknowledged. At most maxTraces traces
// go through the cluster path, the ones listed first; all go through the
// local one.
func (c *cluster) checkTraces(ctx context.Context, v *verdict, logs [][]events.Event, maxTraces int, horizon hlc.Timestamp) {
	nodes := c.nodes()
	byTrace := make([]map[events.TraceID][]events.Event, len(logs))
	for i, log := range logs {
		byTrace[i] = map[events.TraceID][]events.Event{}
		for _, e := range log {
			if !e.Correlation.IsZero() {
				byTrace[i][e.Correlation] = append(byTrace[i][e.Correlation], e)
			}
		}
	}
	c.hist.mu.Lock()
	traces := slices.SortedFunc(maps.Keys(c.hist.traces), func(a, b events.TraceID) int { return strings.Compare(a.String(), b.String()) })
	c.hist.mu.Unlock()
	for t, id := range traces {
		var want []events.ID
		for i := range nodes {
			local := query.NewTrace(id, byTrace[i][id])
			got := traceIDs(local)
			c.checkTrace(v, i, local, horizon)
			if i == 0 {
				want = got
			} else if !slices.Equal(got, want) {
				v.add("trace differs", "trace %v from n%d's replica: %d events, from n0's: %d", id, i, len(got), len(want))
			}
			if t >= maxTraces {
				continue
			}
			tr, err := nodes[i].Trace(ctx, id)
			if err != nil {
				v.add("trace failed", "trace %v on n%d: %v", id, i, err)
				continue
			}
			if !tr.Complete {
				v.add("trace incomplete", "trace %v on n%d: not every member answered: %+v", id, i, tr.Peers)
			}
			if got := traceIDs(&tr); !slices.Equal(got, want) {
				v.add("trace differs", "trace %v through the cluster on n%d: %d events, from n0's replica: %d", id, i, len(got), len(want))
			}
		}
	}
}

func traceIDs(t *query.Trace) []events.ID {
	ids := make([]events.ID, len(t.Events))
	for i, e := range t.Events {
		ids[i] = e.ID
	}
	return ids
}

// checkTrace checks one node's reconstruction of one trace.
func (c *cluster) checkTrace(v *verdict, node int, t *query.Trace, horizon hlc.Timestamp) {
	for i, e := range t.Events {
		if e.Parent.IsZero() {
			continue
		}
		if p, ok := t.Event(e.Parent); ok {
			if !slices.ContainsFunc(t.Events[:i], func(x events.Event) bool { return x.ID == p.ID }) {
				v.add("trace order", "trace %v on n%d: %v comes before its parent %v", t.ID, node, e.ID, p.ID)
			}
		}
	}
	for _, gap := range append(t.Gaps, t.Expired...) {
		if r, acked, ok := c.hist.known(gap); ok && acked && !r.time.Less(horizon) {
			v.add("trace gap", "trace %v on n%d lacks acknowledged %v (%v)", t.ID, node, gap, r)
		}
	}
}
