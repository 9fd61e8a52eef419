package crdt

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/scopemesh/scopemesh/events"
)

// DefaultWatchBuffer is the buffer of a Watch made with a non-positive size.
const DefaultWatchBuffer = 4096

// GapError reports events a Watch dropped because its reader fell behind.
// Every dropped event has a key at or after From, so the reader recovers by
// scanning the set from From (it may see again some events it already had)
// or, for a WatchNode, the node's index from From.
type GapError struct {
	From    Key // the smallest key among the dropped events
	Dropped int // how many events were dropped
	// Expired is set when From lies below the set's horizon by the time
	// the reader learns of the gap: some dropped events have expired, and
	// a query from From gets only those at or above the horizon.
	Expired bool
}

func (e *GapError) Error() string {
	msg := fmt.Sprintf("crdt: watch fell behind: %d events dropped, all at or after key %v", e.Dropped, e.From)
	if e.Expired {
		msg += "; some have expired since"
	}
	return msg
}

// Is makes errors.Is(err, ErrGap) true for a *GapError.
func (e *GapError) Is(target error) bool { return target == ErrGap }

// Watch delivers every event newly added to a set, local or merged (or,
// made by WatchNode, those of one origin), in the order they were added.
// Its buffer is bounded: writers never wait for a reader. When the buffer
// is full, the Watch drops new events and, once the reader has taken the
// events buffered before them, Next returns a *GapError saying where to
// re-read from; delivery then resumes.
//
// A Watch is safe for concurrent use, but events are meant for one reader.
type Watch struct {
	set    *Set
	notify chan struct{} // has a token when there is something to read
	// node, when byNode, is the digest of the only origin whose events
	// the Watch takes.
	node   uint64
	byNode bool

	// mu is taken by every writer that adds an event the Watch takes,
	// and by the reader.
	mu struct {
		sync.Mutex
		ring   []events.Encoded // a FIFO of n events starting at head; grows up to limit
		limit  int
		head   int
		n      int
		gap    *GapError // pending, delivered after the FIFO drains
		closed bool
	}
}

// Watch returns a Watch with room for buffer events (DefaultWatchBuffer if
// buffer ≤ 0). Close it when done.
func (s *Set) Watch(buffer int) *Watch { return s.watch(buffer, &Watch{}) }

// WatchNode returns a Watch, as Watch does, of the events node originated.
// Writers skip the others as they add them, so a node that publishes its
// own events does not wake for every event it merges. An event of another
// node whose name has the same 64-bit digest comes through too, very
// rarely: the reader checks Event().Node.
func (s *Set) WatchNode(buffer int, node string) *Watch {
	return s.watch(buffer, &Watch{node: digest(node), byNode: true})
}

func (s *Set) watch(buffer int, w *Watch) *Watch {
	if buffer <= 0 {
		buffer = DefaultWatchBuffer
	}
	w.set, w.notify = s, make(chan struct{}, 1)
	// The ring starts small and doubles as needed: a generous limit costs
	// memory only when a reader actually falls that far behind.
	w.mu.ring = make([]events.Encoded, min(buffer, 64))
	w.mu.limit = buffer
	if !s.watches.add(w) {
		w.mu.closed = true
	}
	return w
}

// Next returns the next added event. It blocks until there is one, ctx is
// done, or the Watch or its Set is closed (then the error matches
// ErrClosed). After dropping events it returns a *GapError once.
func (w *Watch) Next(ctx context.Context) (events.Event, error) {
	x, err := w.NextEncoded(ctx)
	return x.Event(), err
}

// NextEncoded is Next returning the event with its wire form, as the set
// stored it, for a reader that sends it on.
func (w *Watch) NextEncoded(ctx context.Context) (events.Encoded, error) {
	for {
		var one [1]events.Encoded
		xs, err := w.Available(one[:0], 1)
		if len(xs) == 1 || err != nil {
			return one[0], err
		}
		select {
		case <-w.notify:
		case <-ctx.Done():
			return events.Encoded{}, ctx.Err()
		}
	}
}

// Available appends to dst, without waiting, up to max of the events the
// Watch holds (all of them if max ≤ 0). With none to take, it returns the
// pending *GapError, or an error matching ErrClosed once the Watch is
// closed. A reader that gathers events for a while, rather than waking for
// each as Next does, takes them with Available.
func (w *Watch) Available(dst []events.Encoded, max int) ([]events.Encoded, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := w.mu.n
	if max > 0 {
		n = min(n, max)
	}
	switch {
	case n > 0:
		for range n {
			dst = append(dst, w.mu.ring[w.mu.head])
			w.mu.ring[w.mu.head] = events.Encoded{} // let it be collected
			w.mu.head = (w.mu.head + 1) % len(w.mu.ring)
		}
		w.mu.n -= n
		return dst, nil
	case w.mu.gap != nil:
		gap := w.mu.gap
		w.mu.gap = nil
		gap.Expired = gap.From.Compare(w.set.Horizon()) < 0
		return dst, gap
	case w.mu.closed:
		return dst, ErrClosed
	}
	return dst, nil
}

// Close stops the Watch; a blocked Next returns ErrClosed.
func (w *Watch) Close() error {
	w.set.watches.remove(w)
	w.close()
	return nil
}

func (w *Watch) close() {
	w.mu.Lock()
	w.mu.closed = true
	w.mu.Unlock()
	w.wake()
}

func (w *Watch) wake() {
	select {
	case w.notify <- struct{}{}:
	default:
	}
}

// offer queues recs' events for the reader, or records them in the pending
// gap.
func (w *Watch) offer(recs []record) {
	if !w.takesAny(recs) {
		return // without taking the lock: a node merges far more than it records
	}
	w.mu.Lock()
	if w.mu.closed {
		w.mu.Unlock()
		return // a publish that raced with Close
	}
	for i := range recs {
		r := &recs[i]
		if !w.takes(r) {
			continue
		}
		// While a gap is pending, later events join it rather than the
		// buffer, so the reader sees the gap right after the events that
		// came before it.
		if w.mu.gap == nil && w.mu.n == len(w.mu.ring) && len(w.mu.ring) < w.mu.limit {
			w.growLocked()
		}
		if w.mu.gap == nil && w.mu.n < len(w.mu.ring) {
			w.mu.ring[(w.mu.head+w.mu.n)%len(w.mu.ring)] = r.X
			w.mu.n++
			continue
		}
		k := r.Key
		if w.mu.gap == nil {
			w.mu.gap = &GapError{From: k}
		} else if k.Compare(w.mu.gap.From) < 0 {
			w.mu.gap.From = k
		}
		w.mu.gap.Dropped++
	}
	w.mu.Unlock()
	w.wake()
}

// takes reports whether the Watch takes r's event.
func (w *Watch) takes(r *record) bool { return !w.byNode || r.Node == w.node }

// takesAny reports whether the Watch takes any of recs' events.
func (w *Watch) takesAny(recs []record) bool {
	for i := range recs {
		if w.takes(&recs[i]) {
			return true
		}
	}
	return false
}

// growLocked doubles the ring, up to its limit, keeping its order.
//
// REQUIRES: w.mu
func (w *Watch) growLocked() {
	ring := make([]events.Encoded, min(2*len(w.mu.ring), w.mu.limit))
	for i := range w.mu.n {
		ring[i] = w.mu.ring[(w.mu.head+i)%len(w.mu.ring)]
	}
	w.mu.ring, w.mu.head = ring, 0
}

// watchList is the set of a Set's open watches. Every commit publishes to
// it, and watches come and go rarely: publish reads a copy of the list
// without a lock, and add and remove replace the copy.
type watchList struct {
	mu      sync.Mutex // serialises add, remove and closeAll
	watches atomic.Pointer[[]*Watch]
	closed  bool
}

// add registers w, or reports false if the list is closed.
func (l *watchList) add(w *Watch) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	var ws []*Watch
	if p := l.watches.Load(); p != nil {
		ws = *p
	}
	ws = append(slices.Clip(ws), w)
	l.watches.Store(&ws)
	return true
}

func (l *watchList) remove(w *Watch) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if p := l.watches.Load(); p != nil {
		ws := slices.DeleteFunc(slices.Clone(*p), func(o *Watch) bool { return o == w })
		l.watches.Store(&ws)
	}
}

func (l *watchList) publish(recs []record) {
	if len(recs) == 0 {
		return
	}
	if p := l.watches.Load(); p != nil {
		for _, w := range *p {
			w.offer(recs)
		}
	}
}

func (l *watchList) closeAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if p := l.watches.Swap(nil); p != nil {
		for _, w := range *p {
			w.close()
		}
	}
	l.closed = true
}
