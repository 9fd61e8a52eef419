package query

import (
	"slices"
	"time"

	"github.com/scopemesh/scopemesh/crdt"
	"github.com/scopemesh/scopemesh/events"
)

// Result is the answer to a cluster query: the matching events of every
// replica that answered, merged.
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
	Count    int           // events it returned
	Err      string        // why it did not answer, if it did not
	Latency  time.Duration // from asking to its last byte
}

// Merge combines the answers of several replicas to the same filter f:
// each answer lists, in f's order, the first matching events its replica
// holds. The result lists the first f.Limit events of their union in the
// same order, each once, and the cursor of the next page.
func Merge(f Filter, answers ...[]events.Event) ([]events.Event, crdt.Key) {
	var all []events.Event
	for _, a := range answers {
		all = append(all, a...)
	}
	Sort(all, f.Descending)
	all = slices.CompactFunc(all, func(a, b events.Event) bool { return a.ID == b.ID })
	limit := f.limit()
	if len(all) < limit {
		return all, crdt.Key{}
	}
	all = all[:limit]
	return all, CursorOf(all[limit-1])
}
