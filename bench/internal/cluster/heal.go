package cluster

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/rbsr"
)

// HealConfig describes a partition and its heal.
type HealConfig struct {
	// History is how many events node 0 records, and every node holds,
	// before the split. Full-state exchange pays for them on every heal;
	// reconciliation should not.
	History int `json:"history"`
	// PerSide is how many events each side records while split, spread
	// over its nodes.
	PerSide int `json:"per_side"`
	// Recorders is how many goroutines call Record on each writing node.
	// Zero means 4.
	Recorders int `json:"recorders"`
	// Timeout bounds each wait for convergence. Zero means two minutes.
	Timeout time.Duration `json:"timeout_ns"`
	// FullState also heals a copy of the split state by full-state
	// exchange, the naive baseline, on hosts of its own.
	FullState bool `json:"full_state"`
	// Progress, if set, is told what the run is doing.
	Progress func(step string) `json:"-"`
}

// HealResult is what a heal measured.
type HealResult struct {
	Nodes   int `json:"nodes"`
	SideA   int `json:"side_a"` // nodes on each side
	SideB   int `json:"side_b"`
	History int `json:"history"`
	PerSide int `json:"per_side"`
	// Seconds runs from the first Connect of the heal to the moment every
	// node held every event.
	Seconds float64 `json:"seconds"`
	// Traffic is every byte the hosts sent from the heal until the traffic
	// stopped, sessions that finished after convergence included.
	Traffic Traffic `json:"traffic"`
	// Missing is the lower bound: for each node, the events it lacked and
	// their encoded size (EncodedSize), summed over the nodes.
	MissingEvents int   `json:"missing_events"`
	MissingBytes  int64 `json:"missing_bytes"`
	// Ratio is Traffic.Total() over MissingBytes; SyncRatio counts the
	// sync protocol's bytes only.
	Ratio     float64 `json:"ratio"`
	SyncRatio float64 `json:"sync_ratio"`
	// Pairs are the sync bytes each pair of nodes across the split sent
	// each other: a node that syncs with several peers at once may fetch
	// the same events from each.
	Pairs []Pair `json:"pairs"`
	// Reconcile is a session of the reconciler between the two sides'
	// sets as they were at the heal, run in-process with the options sync
	// uses. A heal's sync session is that plus a last round to check the
	// sets are equal, so Rounds is its round trips plus one.
	Reconcile ReconcileFigures `json:"reconcile"`
	Rounds    int              `json:"rounds"`
	// Sessions are the sync sessions across the split that side A's nodes
	// reported (PeerInfo.LastSyncResult). A node keeps only its last
	// session with each peer, and when both ends of a link start one at
	// the reconnect, the second, which finds nothing left to do, replaces
	// the first within a millisecond: the session that moved the events is
	// often not among them.
	Sessions []Session `json:"sessions"`
	// FullState is the baseline's heal of the same split, if run.
	FullState *Baseline `json:"full_state,omitempty"`
}

// Pair is the sync traffic between two nodes across the split.
type Pair struct {
	A    int   `json:"a"` // a node of side A
	B    int   `json:"b"` // a node of side B
	AToB int64 `json:"a_to_b"`
	BToA int64 `json:"b_to_a"`
}

// ReconcileFigures are what one reconciliation session cost.
type ReconcileFigures struct {
	Rounds   int   `json:"rounds"` // initiator messages, each answered: round trips
	BytesOut int64 `json:"bytes_out"`
	BytesIn  int64 `json:"bytes_in"`
	Have     int   `json:"have"` // events only the initiator held
	Need     int   `json:"need"` // events only the responder held
}

// Session is one sync session's result, from Peers().LastSyncResult.
type Session struct {
	Node          int     `json:"node"`
	Peer          int     `json:"peer"`
	Rounds        int     `json:"rounds"`
	Sent          int     `json:"sent"`
	Received      int     `json:"received"`
	BytesSent     int64   `json:"bytes_sent"`
	BytesReceived int64   `json:"bytes_received"`
	Millis        float64 `json:"ms"`
	InSync        bool    `json:"in_sync"`
	Err           string  `json:"err,omitempty"`
}

// Sides returns the two sides Heal splits n nodes into: the first half
// (rounded down) and the rest. Three nodes split 1 | 2.
func Sides(n int) (a, b []int) {
	idx := All(n)
	return idx[:n/2], idx[n/2:]
}

// Heal records History events everywhere, splits the cluster in two, has
// each side record PerSide events, reconnects the sides and measures how
// the cluster converges. The cluster should hold no events yet.
func (c *Cluster) Heal(ctx context.Context, cfg HealConfig) (HealResult, error) {
	if cfg.Recorders == 0 {
		cfg.Recorders = 4
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 2 * time.Minute
	}
	step := func(s string) {
		if cfg.Progress != nil {
			cfg.Progress(s)
		}
	}
	a, b := Sides(len(c.Nodes))
	res := HealResult{Nodes: len(c.Nodes), SideA: len(a), SideB: len(b), History: cfg.History, PerSide: cfg.PerSide}
	everyone := All(len(c.Nodes))

	step(fmt.Sprintf("recording %d events of history", cfg.History))
	history, err := c.recordOn(ctx, []int{0}, cfg.History, cfg.Recorders, 0)
	if err != nil {
		return res, err
	}
	if _, err := c.WaitEvents(ctx, everyone, cfg.History, cfg.Timeout, 10*time.Millisecond, nil); err != nil {
		return res, err
	}

	step("splitting")
	if err := c.Split(a, b); err != nil {
		return res, err
	}
	step(fmt.Sprintf("recording %d events on each side", cfg.PerSide))
	var onA, onB []events.Event
	var errA, errB error
	var wg sync.WaitGroup
	wg.Go(func() { onA, errA = c.recordOn(ctx, a, cfg.PerSide, cfg.Recorders, cfg.History) })
	wg.Go(func() { onB, errB = c.recordOn(ctx, b, cfg.PerSide, cfg.Recorders, cfg.History+cfg.PerSide) })
	wg.Wait()
	if errA != nil || errB != nil {
		return res, fmt.Errorf("recording while split: %v, %v", errA, errB)
	}
	if _, err := c.WaitEvents(ctx, everyone, cfg.History+cfg.PerSide, cfg.Timeout, 10*time.Millisecond, nil); err != nil {
		return res, fmt.Errorf("each side converging on its own: %w", err)
	}
	if counts := c.Counts(); slices.Max(counts) != cfg.History+cfg.PerSide {
		return res, fmt.Errorf("events crossed the split: nodes hold %v", counts)
	}

	sizeA, err := EncodedSize(onA)
	if err != nil {
		return res, err
	}
	sizeB, err := EncodedSize(onB)
	if err != nil {
		return res, err
	}
	res.MissingEvents = len(a)*len(onB) + len(b)*len(onA)
	res.MissingBytes = int64(len(a))*sizeB + int64(len(b))*sizeA

	// Let the last gossip of each side drain, so the heal's count starts
	// clean.
	c.waitQuiet(ctx, 200*time.Millisecond, 5*time.Second)
	if res.Reconcile, err = reconcileSides(ctx, slices.Concat(history, onA), slices.Concat(history, onB)); err != nil {
		return res, err
	}
	res.Rounds = res.Reconcile.Rounds + 1

	step("healing")
	pairsBefore := c.pairTraffic(a, b)
	before := c.Traffic()
	start := time.Now()
	sessions := c.watchSessions(start, a, b)
	if err := c.Join(ctx, a, b); err != nil {
		return res, err
	}
	reached, err := c.WaitEvents(ctx, everyone, cfg.History+2*cfg.PerSide, cfg.Timeout, 2*time.Millisecond, nil)
	if err != nil {
		return res, fmt.Errorf("healing: %w (holding %v)", err, c.Counts())
	}
	res.Seconds = latest(reached).Sub(start).Seconds()
	// Sessions may still be fetching events a node got meanwhile from
	// another peer: their bytes belong to the heal too.
	c.waitQuiet(ctx, 500*time.Millisecond, 20*time.Second)
	res.Traffic = c.Traffic().Sub(before)
	res.Ratio = float64(res.Traffic.Total()) / float64(res.MissingBytes)
	res.SyncRatio = float64(res.Traffic.Sync) / float64(res.MissingBytes)
	res.Sessions = sessions()
	res.Pairs = c.pairTraffic(a, b)
	for k := range res.Pairs {
		res.Pairs[k].AToB -= pairsBefore[k].AToB
		res.Pairs[k].BToA -= pairsBefore[k].BToA
	}

	if cfg.FullState {
		step("healing the same split by full-state exchange")
		states := make([][]events.Event, len(c.Nodes))
		for _, i := range a {
			states[i] = slices.Concat(history, onA)
		}
		for _, i := range b {
			states[i] = slices.Concat(history, onB)
		}
		base, err := RunFullState(ctx, states, a, b, res.MissingBytes)
		if err != nil {
			return res, fmt.Errorf("full-state baseline: %w", err)
		}
		res.FullState = &base
	}
	return res, nil
}

// pairTraffic returns the sync bytes sent so far between each node of a
// and each of b.
func (c *Cluster) pairTraffic(a, b []int) []Pair {
	var out []Pair
	for _, i := range a {
		for _, j := range b {
			out = append(out, Pair{A: i, B: j,
				AToB: c.Nodes[i].Wire.SyncSentTo(c.Nodes[j].Host.ID()),
				BToA: c.Nodes[j].Wire.SyncSentTo(c.Nodes[i].Host.ID())})
		}
	}
	return out
}

// reconcileSides runs a reconciliation session between sets holding a and
// b, in-process, with the options sync uses.
func reconcileSides(ctx context.Context, a, b []events.Event) (ReconcileFigures, error) {
	var f ReconcileFigures
	sa, err := newSet(ctx, a)
	if err != nil {
		return f, err
	}
	defer sa.Close()
	sb, err := newSet(ctx, b)
	if err != nil {
		return f, err
	}
	defer sb.Close()
	init, err := rbsr.NewReconciler(sa, rbsr.Options{})
	if err != nil {
		return f, err
	}
	resp, err := rbsr.NewReconciler(sb, rbsr.Options{})
	if err != nil {
		return f, err
	}
	msg, err := init.Initiate()
	for done := false; err == nil && !done; {
		f.BytesOut += int64(len(msg))
		var reply []byte
		if reply, err = resp.Respond(msg); err != nil {
			break
		}
		f.BytesIn += int64(len(reply))
		msg, done, err = init.Reconcile(reply)
	}
	if err != nil {
		return f, fmt.Errorf("reconciling the two sides: %w", err)
	}
	f.Rounds, f.Have, f.Need = init.Rounds(), len(init.Have()), len(init.Need())
	return f, nil
}

// recordOn records n events on the given nodes, recorders goroutines each,
// numbering them from first, and returns them as stored.
func (c *Cluster) recordOn(ctx context.Context, nodes []int, n, recorders, first int) ([]events.Event, error) {
	w := NewWorkload(ctx, first+n)
	out := make([]events.Event, n)
	callers := len(nodes) * recorders
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for k := range callers {
		node := c.Nodes[nodes[k%len(nodes)]]
		wg.Go(func() {
			for i := range Share(k, callers, n) {
				e, err := node.Record(w.Event(first + i))
				if err != nil {
					errs[k] = err
					return
				}
				out[i] = e
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// waitQuiet waits until the hosts have sent nothing but background chatter
// (under a kilobyte) for quiet, or at most limit.
func (c *Cluster) waitQuiet(ctx context.Context, quiet, limit time.Duration) {
	deadline := time.Now().Add(limit)
	last, since := c.Traffic().Total(), time.Now()
	for time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(quiet / 10)
		if now := c.Traffic().Total(); now-last > 1024 {
			last, since = now, time.Now()
		} else if time.Since(since) >= quiet {
			return
		}
	}
}

// watchSessions notes every sync session across the split that ends after
// start, as side a sees it, until the returned function is called; that
// returns them in the order they ended. A node keeps only its last session
// with each peer (PeerInfo.LastSyncResult), so it is read often.
func (c *Cluster) watchSessions(start time.Time, a, b []int) (stop func() []Session) {
	index := make(map[string]int, len(c.Nodes))
	for i, m := range c.Nodes {
		index[m.ID()] = i
	}
	type seen struct {
		node, peer int
		at         time.Time
	}
	var out []Session
	noted := make(map[seen]bool)
	look := func() {
		for _, i := range a {
			for _, p := range c.Nodes[i].Peers() {
				j, ok := index[p.ID]
				k := seen{i, j, p.LastSync}
				if !ok || !slices.Contains(b, j) || p.LastSync.Before(start) || noted[k] {
					continue
				}
				noted[k] = true
				r := p.LastSyncResult
				s := Session{Node: i, Peer: j, Rounds: r.Rounds, Sent: r.Sent, Received: r.Received,
					BytesSent: r.BytesSent, BytesReceived: r.BytesReceived,
					Millis: float64(r.Duration) / 1e6, InSync: r.InSync}
				if r.Err != nil {
					s.Err = r.Err.Error()
				}
				out = append(out, s)
			}
		}
	}
	stopLooking := every(3*time.Millisecond, look)
	return func() []Session {
		stopLooking()
		look()
		return out
	}
}

func latest(ts []time.Time) time.Time {
	var t time.Time
	for _, x := range ts {
		if x.After(t) {
			t = x
		}
	}
	return t
}
