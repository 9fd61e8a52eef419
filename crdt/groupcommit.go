package crdt

import (
	"runtime"
	"sync"
)

// groupCommit lets concurrent writers share datastore commits. A writer
// that finds fewer than maxLeaders commits under way leads one: if another
// is under way, it yields the processor once, so that writers about to
// arrive can queue (a lone writer does not wait for anyone), then commits
// its records together with those of the writers queued by then,
// tells each of them how the commit went, and hands the lead to the next
// writer in line, if any. Much of a Pebble commit's cost is per commit,
// not per event — a batch, a write-ahead log record, a wait for the log
// writer, a wake-up, and, for each run of neighbouring keys, a search of
// the memtable from the top — so concurrent Records share it instead of
// paying it each.
//
// Each writer's records are all in one batch, so a writer's commit stays
// atomic; a failed commit fails every writer of its group.
type groupCommit struct {
	mu      sync.Mutex
	queue   []*groupWriter // writers waiting for a commit, oldest first
	leaders int            // commits under way
}

// maxLeaders is how many group commits may be under way at once: while
// one waits for the write-ahead log, the next applies to the memtable.
const maxLeaders = 2

// maxGroupRecords bounds the records a leader takes from the queue: a group
// still holds at least the leader's own, however many.
const maxGroupRecords = 1024

// groupWriter is one writer in a groupCommit.
type groupWriter struct {
	recs []record
	err  error
	lead bool          // the writer is to lead the next group, not done
	done chan struct{} // receives once the writer is done or leads
}

var groupWriters = sync.Pool{New: func() any { return &groupWriter{done: make(chan struct{}, 1)} }}

// write passes recs to commit, alone or with the records of concurrent
// writers, and returns commit's error once they are committed. Alone, recs
// is what commit gets: whatever order commit leaves it in is the caller's.
func (g *groupCommit) write(recs []record, commit func([]record) error) error {
	w := groupWriters.Get().(*groupWriter)
	defer func() {
		*w = groupWriter{done: w.done}
		groupWriters.Put(w)
	}()
	w.recs = recs

	g.mu.Lock()
	if g.leaders < maxLeaders {
		g.leaders++
		if g.leaders > 1 {
			g.mu.Unlock()
			runtime.Gosched()
			g.mu.Lock()
		}
	} else {
		g.queue = append(g.queue, w)
		g.mu.Unlock()
		<-w.done
		if !w.lead {
			return w.err
		}
		g.mu.Lock()
	}
	group := g.takeLocked(len(recs))
	g.mu.Unlock()

	all := recs
	if len(group) > 0 {
		// A pooled slice: a group's records are a few hundred bytes
		// each, and most of what recording on Pebble would allocate.
		pooled := getRecords(groupSize(recs, group))
		defer putRecords(pooled)
		all = append((*pooled)[:0], recs...)
		for _, f := range group {
			all = append(all, f.recs...)
		}
	}
	err := commit(all)

	g.mu.Lock()
	for _, f := range group {
		f.err = err
		f.done <- struct{}{}
	}
	if len(g.queue) > 0 {
		next := g.queue[0]
		g.queue = g.queue[1:]
		next.lead = true
		next.done <- struct{}{}
	} else {
		g.leaders--
	}
	g.mu.Unlock()
	return err
}

// takeLocked removes from the queue the writers that join a leader holding
// n records, oldest first, up to maxGroupRecords in all.
//
// REQUIRES: g.mu
func (g *groupCommit) takeLocked(n int) []*groupWriter {
	k := 0
	for ; k < len(g.queue) && n+len(g.queue[k].recs) <= maxGroupRecords; k++ {
		n += len(g.queue[k].recs)
	}
	group := g.queue[:k:k]
	if g.queue = g.queue[k:]; len(g.queue) == 0 {
		g.queue = nil
	}
	return group
}

// groupSize returns the number of records of a leader's recs and its group.
func groupSize(recs []record, group []*groupWriter) int {
	n := len(recs)
	for _, f := range group {
		n += len(f.recs)
	}
	return n
}
