package query

import (
	"container/heap"
	"time"

	"github.com/scopemesh/scopemesh/crdt"
	"github.com/scopemesh/scopemesh/events"
)

// Result is the answer to a cluster query: the matching events of every
// replica that answered, and what those cut off sent before, merged.
type Result struct {
	// Events are the matching events, without duplicates, in (HLC, ID)
	// order (newest first for a descending filter), at most the filter's
	// limit.
	Events []events.Event
	// Complete is true when every peer asked answered in full, so Events
	// are what the whole reachable cluster holds.
	Complete bool
	// Peers are the peers asked, by ID.
	Peers []PeerAnswer
	// Next resumes the listing after Events (set it as Filter.After); zero
	// when Events holds fewer than the limit, so there is nothing more.
	Next crdt.Key
}

// PeerAnswer is one peer's part in a cluster query.
type PeerAnswer struct {
	ID       string
	Answered bool          // the peer answered in full
	Count    int           // events it returned, before it was cut off if it was
	Err      string        // why it did not answer in full, if it did not
	Latency  time.Duration // from asking to its last byte
}

// Merge combines the answers of several replicas to the same filter f:
// each answer lists, in f's order, the first matching events its replica
// holds. The result lists the first f.Limit events of their union in the
// same order, each once, and the cursor of the next page.
func Merge(f Filter, answers ...[]events.Event) ([]events.Event, crdt.Key) {
	m := NewMerger(f)
	for _, a := range answers {
		for _, e := range a {
			m.Add(e)
		}
	}
	return m.Result()
}

// Merger merges answers to one filter as their events arrive, from any
// number of replicas and in any order: it keeps the first events of their
// union in the filter's order, each once, as many as the filter's limit,
// and forgets the rest. So what it holds is bounded by the limit, however
// much the answers hold. It is not safe for concurrent use.
type Merger struct {
	kept  keyHeap[keyed]         // the last kept on top: the next to drop
	ids   map[events.ID]struct{} // of the kept events
	limit int
}

// NewMerger returns a Merger for answers to f.
func NewMerger(f Filter) *Merger {
	return &Merger{kept: keyHeap[keyed]{descending: f.Descending, last: true}, ids: make(map[events.ID]struct{}), limit: f.limit()}
}

// Add offers e, an event that matches the filter.
func (m *Merger) Add(e events.Event) {
	if _, ok := m.ids[e.ID]; ok {
		return
	}
	k := crdt.KeyOf(e)
	if m.kept.Len() < m.limit {
		heap.Push(&m.kept, keyed{k, e})
	} else if before(k, m.kept.items[0].key, m.kept.descending) {
		delete(m.ids, m.kept.items[0].e.ID)
		m.kept.items[0] = keyed{k, e}
		heap.Fix(&m.kept, 0)
	} else {
		return
	}
	m.ids[e.ID] = struct{}{}
}

// Result returns the events kept, in the filter's order, and the cursor of
// the next page: zero when fewer than the limit were kept, so there is
// nothing more.
func (m *Merger) Result() ([]events.Event, crdt.Key) {
	out := make([]events.Event, len(m.kept.items))
	for i, x := range m.kept.items {
		out[i] = x.e
	}
	Sort(out, m.kept.descending)
	if len(out) < m.limit {
		return out, crdt.Key{}
	}
	return out, CursorOf(out[len(out)-1])
}

// keyed is an event and its key.
type keyed struct {
	key crdt.Key
	e   events.Event
}

func (x keyed) heapKey() crdt.Key { return x.key }
