package crdt

import (
	"context"
	"slices"
	"sync"
)

// addGroup gathers concurrent Adds into shared commits, so that callers
// recording at once pay for one store commit, one index update and one
// watch notification between them instead of one each.
//
// The first Add to find no commit under way leads: it commits every event
// waiting, its own included, then hands the lead to the first Add that
// arrived meanwhile, which commits everything that gathered by then, and so
// on. A leader commits one group and returns, so no caller's Add waits for
// more than two commits.
type addGroup struct {
	mu      sync.Mutex
	leading bool          // a commit is under way
	waiting []*pendingAdd // Adds for the next commit, in arrival order
}

// pendingAdd is one Add's event and, once committed, its outcome.
type pendingAdd struct {
	rec   record
	added bool
	err   error
	// wake tells a waiting Add what to do: true to lead the next commit,
	// false once its event is committed (added and err are then set).
	wake chan bool
}

// add commits rec, alone or with the events of concurrent Adds, and reports
// whether it was new. The commit runs without ctx's cancellation: it may
// carry other callers' events.
func (g *addGroup) add(ctx context.Context, s *Set, rec record) (bool, error) {
	p := &pendingAdd{rec: rec}
	g.mu.Lock()
	g.waiting = append(g.waiting, p)
	if g.leading {
		p.wake = make(chan bool, 1)
		g.mu.Unlock()
		if lead := <-p.wake; !lead {
			return p.added, p.err
		}
		g.mu.Lock()
	}
	g.leading = true
	group := g.waiting
	g.waiting = nil
	g.mu.Unlock()

	commitGroup(context.WithoutCancel(ctx), s, group)

	g.mu.Lock()
	if len(g.waiting) > 0 {
		g.waiting[0].wake <- true
	} else {
		g.leading = false
	}
	g.mu.Unlock()
	for _, q := range group {
		if q != p {
			q.wake <- false
		}
	}
	return p.added, p.err
}

// commitGroup commits the events of group and sets each Add's outcome. Two
// Adds of one event in a group get one report that it was new.
func commitGroup(ctx context.Context, s *Set, group []*pendingAdd) {
	recs := make([]record, len(group))
	for i, q := range group {
		recs[i] = q.rec
	}
	added, err := s.commit(ctx, recs)
	reported := make([]bool, len(added))
	for _, q := range group {
		q.err = err
		i, found := slices.BinarySearchFunc(added, q.rec.key, func(r record, k Key) int { return r.key.Compare(k) })
		if found && !reported[i] {
			q.added, reported[i] = true, true
		}
	}
}
