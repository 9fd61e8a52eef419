package cluster

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/scopemesh/scopemesh/bench/internal/report"
	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/peer"
	"github.com/scopemesh/scopemesh/query"
)

// ReplicateConfig describes a replication workload.
type ReplicateConfig struct {
	// Events is how many events are recorded in all.
	Events int `json:"events"`
	// AllWriters spreads the recording over every node; otherwise node 0
	// records everything.
	AllWriters bool `json:"all_writers"`
	// Recorders is how many goroutines call Record on each writing node.
	// Zero means 4.
	Recorders int `json:"recorders"`
	// Rate, if positive, paces the writers to this many events a second in
	// all, and the run measures record-to-visible latency. Zero records as
	// fast as the writers can, for throughput.
	Rate float64 `json:"rate"`
	// Timeout bounds the wait for every node to hold every event. Zero
	// means two minutes.
	Timeout time.Duration `json:"timeout_ns"`
	// Progress, if set, is told how many events the slowest node holds.
	Progress func(least int) `json:"-"`
}

// ReplicateResult is what a replication run measured.
type ReplicateResult struct {
	Nodes      int     `json:"nodes"`
	Writers    int     `json:"writers"`
	Events     int     `json:"events"`
	Rate       float64 `json:"rate"` // offered events/s; 0: unpaced
	RecordSecs float64 `json:"record_seconds"`
	// Seconds runs from the first Record to the moment the last node held
	// every event; EventsPerSec is Events over it: the rate at which
	// events reached every node.
	Seconds      float64 `json:"seconds"`
	EventsPerSec float64 `json:"events_per_sec"`
	// CPUPerEvent is the CPU time of the whole process, every node's, in
	// µs per event, over the same stretch.
	CPUPerEvent float64 `json:"cpu_us_per_event"`
	// Latency is record-to-visible: from when an event was due to be
	// recorded (paced runs) to when a Subscribe on another node returned
	// it, over every (event, other node) pair.
	Latency     report.Latencies `json:"latency"`
	LatencyLost int              `json:"latency_lost"` // deliveries a subscriber missed (a gap)
	// Gossip sums the nodes' gossip counters.
	Gossip peer.GossipStats `json:"gossip"`
	// BySync is how many deliveries gossip did not make, so sync did:
	// events × (nodes − 1) − events merged from gossip.
	BySync  int     `json:"by_sync"`
	Traffic Traffic `json:"traffic"` // bytes every host sent, during the run
	// BytesPerEvent is every byte sent over events × (nodes − 1).
	BytesPerEvent float64 `json:"bytes_per_event"`
	// EventBytes is an event's size in the batches gossip published,
	// encoded and compressed: what each node must receive of it at least.
	EventBytes float64 `json:"event_bytes"`
}

// Replicate runs a replication workload on the cluster and measures it.
// The cluster should hold no events yet, or the same number on every node.
func (c *Cluster) Replicate(ctx context.Context, cfg ReplicateConfig) (ReplicateResult, error) {
	if cfg.Recorders == 0 {
		cfg.Recorders = 4
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 2 * time.Minute
	}
	writers := []int{0}
	if cfg.AllWriters {
		writers = All(len(c.Nodes))
	}
	base := c.Counts()
	for _, n := range base {
		if n != base[0] {
			return ReplicateResult{}, fmt.Errorf("nodes hold different numbers of events before the run: %v", base)
		}
	}
	res := ReplicateResult{Nodes: len(c.Nodes), Writers: len(writers), Events: cfg.Events, Rate: cfg.Rate}
	gossip0, traffic0 := c.gossip(), c.Traffic()

	var subs *subscribers
	if cfg.Rate > 0 {
		var err error
		if subs, err = c.subscribe(ctx, cfg.Events); err != nil {
			return res, err
		}
		defer subs.close()
	}

	if cfg.Progress != nil {
		stop := c.watchProgress(func(least int) { cfg.Progress(least - base[0]) })
		defer stop()
	}
	w := NewWorkload(ctx, cfg.Events)
	cpu := report.CPUPerEvent()
	start := time.Now()
	due, err := c.record(w, writers, cfg, start)
	if err != nil {
		return res, err
	}
	res.RecordSecs = time.Since(start).Seconds()
	reached, err := c.WaitEvents(ctx, All(len(c.Nodes)), base[0]+cfg.Events, cfg.Timeout, 5*time.Millisecond, nil)
	if err != nil {
		return res, fmt.Errorf("%w (holding %v)", err, c.Counts())
	}
	res.CPUPerEvent = cpu(cfg.Events)
	res.Seconds = latest(reached).Sub(start).Seconds()
	res.EventsPerSec = float64(cfg.Events) / res.Seconds
	res.Gossip = subGossip(c.gossip(), gossip0)
	res.BySync = cfg.Events*(len(c.Nodes)-1) - int(res.Gossip.EventsMerged)
	res.Traffic = c.Traffic().Sub(traffic0)
	if d := cfg.Events * (len(c.Nodes) - 1); d > 0 {
		res.BytesPerEvent = float64(res.Traffic.Total()) / float64(d)
	}
	if res.Gossip.EventsPublished > 0 {
		res.EventBytes = float64(res.Gossip.BytesPublished) / float64(res.Gossip.EventsPublished)
	}
	if subs != nil {
		res.Latency, res.LatencyLost = subs.latencies(due)
	}
	return res, nil
}

// watchProgress calls report with the fewest events a node holds, twice a
// second, until the returned function is called.
func (c *Cluster) watchProgress(report func(least int)) (stop func()) {
	return every(500*time.Millisecond, func() { report(slices.Min(c.Counts())) })
}

// every calls fn every period, in a goroutine of its own, until the
// returned function is called; that function returns once fn no longer
// runs.
func every(period time.Duration, fn func()) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				fn()
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// record has the writers record cfg.Events events of w between them and returns,
// for paced runs, when each event was due.
func (c *Cluster) record(w *Workload, writers []int, cfg ReplicateConfig, start time.Time) (map[events.ID]time.Time, error) {
	var mu sync.Mutex
	var due map[events.ID]time.Time
	if cfg.Rate > 0 {
		due = make(map[events.ID]time.Time, cfg.Events)
	}
	callers := len(writers) * cfg.Recorders
	var wg sync.WaitGroup
	errs := make([]error, callers)
	for k := range callers {
		node := c.Nodes[writers[k%len(writers)]]
		wg.Add(1)
		go func() {
			defer wg.Done()
			// In a paced run each event waits for its time, so the
			// callers interleave into one even stream.
			for i := range Share(k, callers, cfg.Events) {
				var at time.Time
				if cfg.Rate > 0 {
					at = start.Add(time.Duration(float64(i) / cfg.Rate * float64(time.Second)))
					if wait := time.Until(at); wait > 0 {
						time.Sleep(wait)
					}
				}
				e, err := node.Record(w.Event(i))
				if err != nil {
					errs[k] = fmt.Errorf("recording event %d: %w", i, err)
					return
				}
				if due != nil {
					mu.Lock()
					due[e.ID] = at
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return due, nil
}

// subscribers note when each event becomes visible on each node.
type subscribers struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	seen   [][]arrival // by node
	origin []string    // by node: its ID, to skip its own events
}

type arrival struct {
	id events.ID
	at time.Time
}

func (c *Cluster) subscribe(ctx context.Context, expect int) (*subscribers, error) {
	ctx, cancel := context.WithCancel(ctx)
	s := &subscribers{cancel: cancel, seen: make([][]arrival, len(c.Nodes))}
	for i, m := range c.Nodes {
		sub, err := m.Subscribe(ctx, query.Filter{})
		if err != nil {
			cancel()
			return nil, err
		}
		s.origin = append(s.origin, m.ID())
		s.seen[i] = make([]arrival, 0, expect)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer sub.Close()
			for {
				e, err := sub.Next(ctx)
				if ctx.Err() != nil {
					return
				}
				if err != nil {
					// A gap: the events the subscriber skipped have no
					// sample, and latencies counts them as missed.
					continue
				}
				if e.Node != s.origin[i] {
					s.seen[i] = append(s.seen[i], arrival{e.ID, time.Now()})
				}
			}
		}()
	}
	return s, nil
}

func (s *subscribers) close() {
	s.cancel()
	s.wg.Wait()
}

// latencies stops the subscribers and returns the record-to-visible times
// of the events in due, and how many deliveries went unobserved.
func (s *subscribers) latencies(due map[events.ID]time.Time) (report.Latencies, int) {
	s.close()
	var sample []time.Duration
	for _, seen := range s.seen {
		for _, a := range seen {
			if t, ok := due[a.id]; ok {
				sample = append(sample, a.at.Sub(t))
			}
		}
	}
	want := len(due) * (len(s.seen) - 1)
	return report.Summarise(sample), want - len(sample)
}

func (c *Cluster) gossip() peer.GossipStats {
	var g peer.GossipStats
	for _, m := range c.Nodes {
		s := m.Status().Gossip
		g.BatchesPublished += s.BatchesPublished
		g.EventsPublished += s.EventsPublished
		g.BytesPublished += s.BytesPublished
		g.FetchesFailed += s.FetchesFailed
		g.BatchesServed += s.BatchesServed
		g.BatchesReceived += s.BatchesReceived
		g.EventsMerged += s.EventsMerged
		g.BatchesRejected += s.BatchesRejected
		g.DroppedOutbound += s.DroppedOutbound
		g.DroppedInbound += s.DroppedInbound
		g.PublishGaps += s.PublishGaps
		g.PublishErrors += s.PublishErrors
	}
	return g
}

func subGossip(a, b peer.GossipStats) peer.GossipStats {
	return peer.GossipStats{
		BatchesPublished: a.BatchesPublished - b.BatchesPublished,
		EventsPublished:  a.EventsPublished - b.EventsPublished,
		BytesPublished:   a.BytesPublished - b.BytesPublished,
		FetchesFailed:    a.FetchesFailed - b.FetchesFailed,
		BatchesServed:    a.BatchesServed - b.BatchesServed,
		BatchesReceived:  a.BatchesReceived - b.BatchesReceived,
		EventsMerged:     a.EventsMerged - b.EventsMerged,
		BatchesRejected:  a.BatchesRejected - b.BatchesRejected,
		DroppedOutbound:  a.DroppedOutbound - b.DroppedOutbound,
		DroppedInbound:   a.DroppedInbound - b.DroppedInbound,
		PublishGaps:      a.PublishGaps - b.PublishGaps,
		PublishErrors:    a.PublishErrors - b.PublishErrors,
	}
}
