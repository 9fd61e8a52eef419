package query

import (
	"slices"

	"github.com/scopemesh/scopemesh/crdt"
	"github.com/scopemesh/scopemesh/events"
)

// Sort orders evs by key, or by reverse key if descending.
func Sort(evs []events.Event, descending bool) {
	slices.SortFunc(evs, func(a, b events.Event) int {
		c := crdt.KeyOf(a).Compare(crdt.KeyOf(b))
		if descending {
			return -c
		}
		return c
	})
}

// before reports whether key a comes before key b in key order, or in
// reverse key order if descending.
func before(a, b crdt.Key, descending bool) bool {
	if descending {
		return a.Compare(b) > 0
	}
	return a.Compare(b) < 0
}

// keyHeap is a container/heap of items by their keys: the first in key
// order on top, or the last if last is set; reversed if descending.
type keyHeap[T interface{ heapKey() crdt.Key }] struct {
	items      []T
	descending bool
	last       bool
}

func (h *keyHeap[T]) Len() int { return len(h.items) }

func (h *keyHeap[T]) Less(i, j int) bool {
	a, b := h.items[i].heapKey(), h.items[j].heapKey()
	if h.last {
		a, b = b, a
	}
	return before(a, b, h.descending)
}

func (h *keyHeap[T]) Swap(i, j int) { h.items[i], h.items[j] = h.items[j], h.items[i] }
func (h *keyHeap[T]) Push(x any)    { h.items = append(h.items, x.(T)) }

func (h *keyHeap[T]) Pop() any {
	x := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	return x
}
