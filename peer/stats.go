package peer

import (
	"slices"
	"sync/atomic"
	"time"
)

// SyncStats counts the sync sessions that ended on a node since it
// started, one side of them: those it started (Initiated) or those peers
// started (Served).
type SyncStats struct {
	Sessions       uint64    // sessions that ended
	Failed         uint64    // of them, those that ended with an error
	EventsSent     uint64    // events pushed to the peers
	EventsReceived uint64    // events from the peers that were new here
	BytesSent      uint64    // bytes written to the sessions' streams
	BytesReceived  uint64    // bytes read from them
	Durations      Histogram // the sessions' durations
}

// QueryStats counts one side of the cluster queries since a node
// started: the queries it answered for peers (Served), or asked of its
// peers (Asked).
type QueryStats struct {
	Queries   uint64    // queries that ended
	Failed    uint64    // of them, those that ended with an error
	Latencies Histogram // from the query's start to its end
}

// Histogram counts durations in buckets.
type Histogram struct {
	// Bounds are the buckets' upper bounds, inclusive, in increasing
	// order; a last bucket, past the last bound, holds the rest.
	Bounds []time.Duration
	Counts []uint64      // per bucket, not cumulative: len(Bounds)+1 of them
	Sum    time.Duration // of every duration counted
}

// Count returns how many durations h counted.
func (h Histogram) Count() uint64 {
	var n uint64
	for _, c := range h.Counts {
		n += c
	}
	return n
}

// durationBounds are the bucket bounds of every Histogram a node keeps:
// from a query answered from memory to a sync session of a million
// events.
var durationBounds = [...]time.Duration{
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond, 10 * time.Millisecond,
	25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond,
	500 * time.Millisecond, time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second,
	30 * time.Second, time.Minute,
}

// durations is a Histogram over durationBounds that many goroutines add
// to at once.
type durations struct {
	counts [len(durationBounds) + 1]atomic.Uint64
	sum    atomic.Int64
}

func (d *durations) observe(v time.Duration) {
	i := 0
	for i < len(durationBounds) && v > durationBounds[i] {
		i++
	}
	d.counts[i].Add(1)
	d.sum.Add(int64(v))
}

func (d *durations) snapshot() Histogram {
	h := Histogram{Bounds: slices.Clone(durationBounds[:]), Counts: make([]uint64, len(d.counts)), Sum: time.Duration(d.sum.Load())}
	for i := range h.Counts {
		h.Counts[i] = d.counts[i].Load()
	}
	return h
}

// syncCounters keeps one side's SyncStats.
type syncCounters struct {
	sessions, failed, eventsSent, eventsReceived, bytesSent, bytesReceived atomic.Uint64
	durations                                                              durations
}

func (c *syncCounters) ended(res SyncResult) {
	c.sessions.Add(1)
	if res.Err != nil {
		c.failed.Add(1)
	}
	c.eventsSent.Add(uint64(res.Sent))
	c.eventsReceived.Add(uint64(res.Received))
	c.bytesSent.Add(uint64(res.BytesSent))
	c.bytesReceived.Add(uint64(res.BytesReceived))
	c.durations.observe(res.Duration)
}

func (c *syncCounters) snapshot() SyncStats {
	return SyncStats{
		Sessions:       c.sessions.Load(),
		Failed:         c.failed.Load(),
		EventsSent:     c.eventsSent.Load(),
		EventsReceived: c.eventsReceived.Load(),
		BytesSent:      c.bytesSent.Load(),
		BytesReceived:  c.bytesReceived.Load(),
		Durations:      c.durations.snapshot(),
	}
}

// queryCounters keeps one side's QueryStats.
type queryCounters struct {
	queries, failed atomic.Uint64
	latencies       durations
}

func (c *queryCounters) ended(d time.Duration, failed bool) {
	c.queries.Add(1)
	if failed {
		c.failed.Add(1)
	}
	c.latencies.observe(d)
}

func (c *queryCounters) snapshot() QueryStats {
	return QueryStats{Queries: c.queries.Load(), Failed: c.failed.Load(), Latencies: c.latencies.snapshot()}
}

// hostStats are the counters a Host keeps for Status besides gossip's.
// They move once per session or query, never per event recorded.
type hostStats struct {
	syncInitiated, syncServed   syncCounters
	queriesServed, queriesAsked queryCounters
}
