package nemesis

import (
	"fmt"
	"strconv"
	"sync"

	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/hlc"
)

// Attributes every recorded event carries, so that the checker can tell
// where and when it was recorded from the event alone.
const (
	attrSlot   = "nemesis.node"   // the node's index in the cluster
	attrInc    = "nemesis.inc"    // its incarnation: 0, then one more per restart
	attrWriter = "nemesis.writer" // which writer of the node recorded it
	attrSeq    = "nemesis.seq"    // the writer's sequence number within the incarnation
	attrStep   = "nemesis.step"   // the step of the plan
)

// Writers of a node. Each records sequentially, so its events' clocks must
// strictly increase in sequence order.
const (
	writerLocal   = "local"   // the node's own events
	writerRequest = "request" // hops of requests that cross nodes
)

// origin is where an event was recorded, read back from its attributes.
type origin struct {
	slot, inc, seq, step int
	writer               string
}

func originOf(e events.Event) (origin, error) {
	var o origin
	var err error
	num := func(key string) int {
		v, convErr := strconv.Atoi(e.Attrs[key])
		if convErr != nil && err == nil {
			err = fmt.Errorf("event %v: attribute %s = %q", e.ID, key, e.Attrs[key])
		}
		return v
	}
	o.slot, o.inc, o.seq, o.step = num(attrSlot), num(attrInc), num(attrSeq), num(attrStep)
	o.writer = e.Attrs[attrWriter]
	return o, err
}

func (o origin) String() string {
	return fmt.Sprintf("n%d incarnation %d, %s writer #%d, step %d", o.slot, o.inc, o.writer, o.seq, o.step)
}

// recorded is what the history keeps of an event: enough to say where it
// came from, small enough for a soak run's millions.
type recorded struct {
	origin origin
	trace  events.TraceID
	time   hlc.Timestamp
}

func (r recorded) String() string { return fmt.Sprintf("%v at %v", r.origin, r.time) }

// stamp is an acknowledged event's ID and time, in acknowledgement order.
type stamp struct {
	id   events.ID
	time hlc.Timestamp
}

// history is what the test knows of every Record call: the events
// acknowledged (Record returned them) and the indeterminate ones (Record
// returned them, but the node crashed before the test could count the
// acknowledgement, so they may or may not have survived).
type history struct {
	mu     sync.Mutex
	acked  map[events.ID]recorded
	maybe  map[events.ID]recorded
	order  []stamp // acknowledged events in the order Record returned them
	traces map[events.TraceID]bool
	failed []string // Record calls that failed on a node that was up
}

func newHistory() *history {
	return &history{
		acked:  map[events.ID]recorded{},
		maybe:  map[events.ID]recorded{},
		traces: map[events.TraceID]bool{},
	}
}

func recordOf(e events.Event) recorded {
	o, _ := originOf(e)
	return recorded{origin: o, trace: e.Correlation, time: e.Time}
}

func (h *history) ack(e events.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.acked[e.ID] = recordOf(e)
	h.order = append(h.order, stamp{e.ID, e.Time})
	if !e.Correlation.IsZero() {
		h.traces[e.Correlation] = true
	}
}

func (h *history) indeterminate(e events.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.maybe[e.ID] = recordOf(e)
	if !e.Correlation.IsZero() {
		h.traces[e.Correlation] = true
	}
}

func (h *history) fail(what string, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failed = append(h.failed, fmt.Sprintf("%s: %v", what, err))
}

// known returns what is known of the event id, and whether its Record was
// acknowledged.
func (h *history) known(id events.ID) (r recorded, acked, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if r, ok := h.acked[id]; ok {
		return r, true, true
	}
	r, ok = h.maybe[id]
	return r, false, ok
}

func (h *history) counts() (acked, maybe int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.acked), len(h.maybe)
}

// ackedFrom returns how many acknowledged events lie at or after h: those
// retention has not let go.
func (h *history) ackedFrom(horizon hlc.Timestamp) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, r := range h.acked {
		if !r.time.Less(horizon) {
			n++
		}
	}
	return n
}

// ackedSince returns the events acknowledged after the first mark ones,
// and the mark to pass next time.
func (h *history) ackedSince(mark int) ([]stamp, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]stamp(nil), h.order[mark:]...), len(h.order)
}
