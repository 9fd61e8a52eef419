package nemesis

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scopemesh/scopemesh"
	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/hlc"
	"github.com/scopemesh/scopemesh/query"
)

// network is what differs between a simulated network and real sockets:
// how a node starts, how two nodes are cut from each other and joined, and
// what a crash leaves of a node's store. join, split, flap and delay are
// called with the cluster's network lock held, never two at once.
type network interface {
	// open starts a new incarnation of s from its store, connected to
	// nobody.
	open(ctx context.Context, s *slot, cfg scopemesh.Config) (*incarnation, error)
	// release frees what open took besides the node, once the node is
	// closed.
	release(inc *incarnation) error
	// join lets a and b reach each other and connects them.
	join(ctx context.Context, a, b *incarnation) error
	// split stops a and b from reaching each other and returns once no
	// connection between them is left. One of them may be closed already
	// (incarnation.closed), its links still to cut.
	split(a, b *incarnation) error
	// flap resets the connections between a and b, losing what is in
	// flight; they may connect again at once.
	flap(ctx context.Context, a, b *incarnation) error
	// delay makes what a and b send each other arrive d late.
	delay(a, b *incarnation, d time.Duration) error
	// crash makes the store that the next incarnation of s opens the one a
	// crash at this instant leaves: every write the process made, or after
	// a power loss, the synced writes and keep percent of the others.
	crash(s *slot, keep int) error
}

// skewedClock is a node's physical clock: the system clock moved by an
// offset that the nemesis changes.
// skewedClock is a node's physical clock: the system's, skewed by an
// offset of its own, and aged, with every other node's, by the time the
// ageClocks faults made pass.
type skewedClock struct {
	offset atomic.Int64
	aged   *atomic.Int64
}

func (c *skewedClock) Now() time.Time {
	return time.Now().Add(time.Duration(c.offset.Load() + c.aged.Load()))
}

func (c *skewedClock) set(d time.Duration) { c.offset.Store(int64(d)) }

// slot is one node of the cluster across its incarnations: its identity,
// its store and its physical clock outlive each restart.
type slot struct {
	index int
	clock *skewedClock
	store any    // the network's handle of the node's store
	id    string // the peer ID, the same in every incarnation

	mu    sync.Mutex
	inc   *incarnation // nil while the node is down
	incs  int          // incarnations started
	local localTrace   // the node's own trace in progress
}

// incarnation is one run of a node, from open to stop or crash.
type incarnation struct {
	n    int
	node *scopemesh.Node
	net  any // the network's handle: its host, its store

	inflight sync.WaitGroup // Record calls under way
	closed   bool           // the node is closed, its links not yet cut; REQUIRES: cluster.netMu
	crashed  bool           // REQUIRES: slot.mu
	seq      map[string]int // per writer; REQUIRES: slot.mu
}

// localTrace is a chain of a node's own events: each names the previous as
// parent, across restarts.
type localTrace struct {
	id   events.TraceID
	last events.ID
}

// clusterConfig configures the nodes of a cluster.
type clusterConfig struct {
	nodes        int
	syncInterval time.Duration
	maxOffset    time.Duration
	stepDuration time.Duration // a step lasts at least this long
	retention    time.Duration // the nodes' Retention; 0: the default
}

// cluster runs the nodes of a nemesis test and the faults of its plan.
type cluster struct {
	cfg  clusterConfig
	net  network
	hist *history
	aged atomic.Int64 // how far ageClocks faults moved every clock

	slots []*slot

	// The network lock guards the network's state. Lock order: a slot's
	// lock, then netMu.
	netMu   sync.Mutex
	incs    []*incarnation           // each node's incarnation that may hold links; REQUIRES: netMu
	closing []bool                   // the node is going down: join it to nobody; REQUIRES: netMu
	cut     map[[2]int]int           // faults that cut each pair; REQUIRES: netMu
	latency map[[2]int]time.Duration // latency wanted on each pair; REQUIRES: netMu
	links   map[[2]int]linkState     // what the network has now; REQUIRES: netMu
	active  []activeFault            // faults to undo; REQUIRES: netMu

	stats runStats
	log   faultLog
}

// linkState is what the network was last told about a pair of nodes; the
// zero value means nothing since one of them started.
type linkState struct {
	joined  bool
	split   bool
	latency time.Duration
}

// activeFault is a fault to undo at the end of step until.
type activeFault struct {
	f     fault
	until int
}

// runStats counts what a run did.
type runStats struct {
	faults    [numFaultKinds]atomic.Int64
	restarts  atomic.Int64
	recorded  atomic.Int64 // Record calls made
	requests  atomic.Int64
	hopsCut   atomic.Int64 // request hops that found their node down
	converge  time.Duration
	stepsDone int

	mu          sync.Mutex
	restartLead []restartLead // clock leads right after restarts; REQUIRES: mu
}

// restartLead is how far ahead of its physical clock a node's clock was
// right after a restart.
type restartLead struct {
	node, inc int
	lead      time.Duration
}

func (s *runStats) noteRestartLead(node, inc int, lead time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.restartLead = append(s.restartLead, restartLead{node, inc, lead})
}

// maxRestartLead returns the largest clock lead seen after a restart.
func (s *runStats) maxRestartLead() restartLead {
	s.mu.Lock()
	defer s.mu.Unlock()
	var m restartLead
	for _, l := range s.restartLead {
		if l.lead > m.lead {
			m = l
		}
	}
	return m
}

// faultLog keeps the faults as they were applied, for the failure report.
type faultLog struct {
	mu    sync.Mutex
	lines []string
}

// tailLines is how much of the fault log a failure report shows; -plan
// logs the whole schedule.
const tailLines = 200

// tail returns the last tailLines faults applied.
func (l *faultLog) tail() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	lines := l.lines
	var b strings.Builder
	if len(lines) > tailLines {
		fmt.Fprintf(&b, "(%d earlier ones left out)\n", len(lines)-tailLines)
		lines = lines[len(lines)-tailLines:]
	}
	b.WriteString(strings.Join(lines, "\n"))
	return b.String()
}

func (l *faultLog) add(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func newCluster(cfg clusterConfig, net network, stores []any) *cluster {
	c := &cluster{
		cfg: cfg, net: net, hist: newHistory(),
		incs: make([]*incarnation, cfg.nodes), closing: make([]bool, cfg.nodes),
		cut: map[[2]int]int{}, latency: map[[2]int]time.Duration{}, links: map[[2]int]linkState{},
	}
	for i := range cfg.nodes {
		c.slots = append(c.slots, &slot{index: i, clock: &skewedClock{aged: &c.aged}, store: stores[i]})
	}
	return c
}

// nodeConfig returns the Config of a node's next incarnation; the network
// adds its host or its store.
func (c *cluster) nodeConfig(s *slot) scopemesh.Config {
	return scopemesh.Config{
		Cluster:        "nemesis",
		DisableMDNS:    true,
		DHT:            scopemesh.DHTOff,
		SyncInterval:   c.cfg.syncInterval,
		MaxClockOffset: c.cfg.maxOffset,
		WallClock:      s.clock,
		Retention:      c.cfg.retention,
	}
}

// start opens the next incarnation of node i and joins it to the nodes it
// may reach.
func (c *cluster) start(ctx context.Context, i int) error {
	s := c.slots[i]
	s.mu.Lock()
	if s.inc != nil {
		s.mu.Unlock()
		return fmt.Errorf("n%d is already up", i)
	}
	inc, err := c.net.open(ctx, s, c.nodeConfig(s))
	if err != nil {
		s.mu.Unlock()
		return fmt.Errorf("starting n%d: %w", i, err)
	}
	inc.n, inc.seq = s.incs, map[string]int{}
	s.incs++
	if s.id == "" {
		s.id = inc.node.ID()
	}
	if s.id != inc.node.ID() {
		s.mu.Unlock()
		return fmt.Errorf("n%d came back as %s, was %s", i, inc.node.ID(), s.id)
	}
	s.inc = inc
	s.mu.Unlock()
	if inc.n > 0 {
		c.stats.restarts.Add(1)
		// The clock resumes from the bound its last incarnation
		// persisted, ahead of physical time; how far ahead is what peers
		// must tolerate before they accept its events.
		lead := time.Duration(inc.node.Clock().Now().Wall - s.clock.Now().UnixNano())
		c.stats.noteRestartLead(i, inc.n, lead)
	}
	c.netMu.Lock()
	defer c.netMu.Unlock()
	c.incs[i] = inc
	return c.applyLinksLocked(ctx)
}

// stop closes node i as an orderly shutdown does: Records under way finish
// and are acknowledged, the node leaves its peers, its store is closed.
func (c *cluster) stop(i int) error {
	s := c.slots[i]
	s.mu.Lock()
	inc := s.inc
	s.inc = nil
	s.mu.Unlock()
	if inc == nil {
		return fmt.Errorf("n%d is already down", i)
	}
	c.netMu.Lock()
	c.closing[i] = true
	c.netMu.Unlock()
	inc.inflight.Wait()
	err := inc.node.Close()
	c.netMu.Lock()
	inc.closed = true
	err = errors.Join(err, c.severLocked(i))
	c.netMu.Unlock()
	return errors.Join(err, c.net.release(inc))
}

// crash ends node i as a crash does. At one instant the node vanishes from
// the network, with no goodbye to its peers and its sessions broken
// mid-frame, and its store becomes what the crash leaves (see
// network.crash). The dead incarnation's Records still under way, and any
// it would go on with, count as indeterminate: the process died before
// they returned. It is then closed to reap its goroutines; nothing it does
// after the instant reaches the network or the next incarnation's store.
func (c *cluster) crash(i, keep int) error {
	s := c.slots[i]
	s.mu.Lock()
	inc := s.inc
	if inc == nil {
		s.mu.Unlock()
		return fmt.Errorf("n%d is already down", i)
	}
	c.netMu.Lock()
	c.closing[i] = true
	err := c.severLocked(i)
	c.netMu.Unlock()
	err = errors.Join(err, c.net.crash(s, keep))
	inc.crashed = true
	s.inc = nil
	s.mu.Unlock()
	// Closing the node under a Record would test Close, not the crash:
	// let the dead incarnation's Records finish first.
	inc.inflight.Wait()
	err = errors.Join(err, inc.node.Close())
	return errors.Join(err, c.net.release(inc))
}

// severLocked cuts every link of node i and forgets its incarnation.
//
// REQUIRES: netMu
func (c *cluster) severLocked(i int) error {
	var errs []error
	for j := range c.slots {
		p := orderedPair(i, j)
		if j == i {
			continue
		}
		if c.links[p].joined {
			errs = append(errs, c.net.split(c.incs[i], c.incs[j]))
		}
		delete(c.links, p)
	}
	c.incs[i], c.closing[i] = nil, false
	return errors.Join(errs...)
}

// applyLinksLocked brings the network to the wanted state: pairs of up
// nodes joined unless a fault cuts them, with the latency faults want.
//
// REQUIRES: netMu
func (c *cluster) applyLinksLocked(ctx context.Context) error {
	var errs []error
	for i := range c.slots {
		for j := i + 1; j < len(c.slots); j++ {
			incA, incB := c.incs[i], c.incs[j]
			if incA == nil || incB == nil || c.closing[i] || c.closing[j] {
				continue
			}
			p := [2]int{i, j}
			st := c.links[p]
			wantJoined := c.cut[p] == 0
			switch {
			case wantJoined && !st.joined:
				if err := c.net.join(ctx, incA, incB); err != nil {
					errs = append(errs, fmt.Errorf("joining n%d and n%d: %w", i, j, err))
					continue
				}
				st = linkState{joined: true}
			case !wantJoined && !st.split:
				// Also when the pair was never joined: a node that just
				// started must refuse the peers it is cut from.
				if err := c.net.split(incA, incB); err != nil {
					errs = append(errs, fmt.Errorf("splitting n%d and n%d: %w", i, j, err))
				}
				st = linkState{split: true}
			}
			if st.joined && st.latency != c.latency[p] {
				if err := c.net.delay(incA, incB, c.latency[p]); err != nil {
					errs = append(errs, fmt.Errorf("delaying n%d-n%d: %w", i, j, err))
				}
				st.latency = c.latency[p]
			}
			c.links[p] = st
		}
	}
	return errors.Join(errs...)
}

// wantedLatencyLocked recomputes the latency of every pair from the
// active faults: the largest that applies.
//
// REQUIRES: netMu
func (c *cluster) wantedLatencyLocked() {
	clear(c.latency)
	for _, a := range c.active {
		switch a.f.kind {
		case delayLink:
			p := orderedPair(a.f.node, a.f.peer)
			c.latency[p] = max(c.latency[p], a.f.delay)
		case slowNode:
			for j := range c.slots {
				if j != a.f.node {
					p := orderedPair(a.f.node, j)
					c.latency[p] = max(c.latency[p], a.f.delay)
				}
			}
		}
	}
}

// apply applies a fault that does not take a node down, at step i.
func (c *cluster) apply(ctx context.Context, f fault, i int) error {
	c.stats.faults[f.kind].Add(1)
	c.log.add("step %d: %v", i, f)
	c.netMu.Lock()
	defer c.netMu.Unlock()
	switch f.kind {
	case skewClock:
		c.slots[f.node].clock.set(f.delay)
		return nil
	case ageClocks:
		c.aged.Add(int64(f.delay))
		return nil
	case flapLink:
		p := orderedPair(f.node, f.peer)
		if !c.links[p].joined || c.closing[p[0]] || c.closing[p[1]] {
			return nil
		}
		return c.net.flap(ctx, c.incs[p[0]], c.incs[p[1]])
	}
	for _, p := range f.cuts() {
		c.cut[p]++
	}
	c.active = append(c.active, activeFault{f: f, until: i + f.steps - 1})
	c.wantedLatencyLocked()
	return c.applyLinksLocked(ctx)
}

// expire undoes the faults whose time ends with step i; all of them if
// i is negative.
func (c *cluster) expire(ctx context.Context, i int) error {
	c.netMu.Lock()
	defer c.netMu.Unlock()
	c.active = slices.DeleteFunc(c.active, func(a activeFault) bool {
		if i >= 0 && a.until > i {
			return false
		}
		for _, p := range a.f.cuts() {
			c.cut[p]--
		}
		return true
	})
	c.wantedLatencyLocked()
	return c.applyLinksLocked(ctx)
}

// takeDown applies a fault that ends node f.node's incarnation.
func (c *cluster) takeDown(ctx context.Context, f fault, i int) error {
	c.stats.faults[f.kind].Add(1)
	c.log.add("step %d: %v", i, f)
	switch f.kind {
	case stopNode:
		return c.stop(f.node)
	case killNode:
		return c.crash(f.node, 100)
	case powerLoss:
		return c.crash(f.node, f.keep)
	case bounceNode:
		// A process that crashes on start, restarted by its supervisor
		// right away: each incarnation lives for a moment.
		for range f.times {
			if err := c.crash(f.node, 100); err != nil {
				return err
			}
			if err := c.start(ctx, f.node); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("fault %v does not take a node down", f)
}

// record records e on node i as writer, acknowledging it in the history if
// the node stays up until Record returns. With carrier set, the node first
// takes the trace, parent and clock from it, as a server does from an
// incoming request. It returns the event as recorded and the incarnation
// that recorded it; ok is false if the node was down or Record failed.
func (c *cluster) record(ctx context.Context, i int, writer string, step int, e events.Event, carrier events.MapCarrier) (_ events.Event, _ *incarnation, ok bool) {
	s := c.slots[i]
	s.mu.Lock()
	inc := s.inc
	if inc == nil {
		s.mu.Unlock()
		return events.Event{}, nil, false
	}
	inc.inflight.Add(1)
	defer inc.inflight.Done()
	inc.seq[writer]++
	seq := inc.seq[writer]
	s.mu.Unlock()

	if carrier != nil {
		ctx = events.Propagator{Clock: inc.node.Clock()}.Extract(ctx, carrier)
	}
	attrs := map[string]string{
		attrSlot: strconv.Itoa(i), attrInc: strconv.Itoa(inc.n), attrWriter: writer,
		attrSeq: strconv.Itoa(seq), attrStep: strconv.Itoa(step),
	}
	for k, v := range e.Attrs {
		attrs[k] = v
	}
	e.Attrs = attrs
	c.stats.recorded.Add(1)
	got, err := inc.node.Record(ctx, e)

	s.mu.Lock()
	crashed := inc.crashed
	s.mu.Unlock()
	switch {
	case crashed && err == nil:
		c.hist.indeterminate(got)
		return got, inc, true
	case crashed:
		return events.Event{}, nil, false
	case err != nil:
		c.hist.fail(fmt.Sprintf("Record on n%d (incarnation %d, up)", i, inc.n), err)
		return events.Event{}, nil, false
	}
	c.hist.ack(got)
	return got, inc, true
}

// Event content comes from generators seeded by the plan's seed, the step
// and the writer, so it does not depend on how goroutines interleave.
var eventKinds = []string{"http.request", "http.reply", "db.query", "cache.miss", "queue.publish", "job.run"}

func contentRNG(seed int64, step, writer int) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(seed), uint64(step)<<16|uint64(writer)))
}

func randomEvent(rng *rand.Rand) events.Event {
	e := events.Event{
		Kind:  eventKinds[rng.IntN(len(eventKinds))],
		Attrs: map[string]string{"user": strconv.Itoa(rng.IntN(1000))},
	}
	if n := rng.IntN(4) * 40; n > 0 {
		e.Payload = make([]byte, n)
		for i := range e.Payload {
			e.Payload[i] = byte(rng.Uint32())
		}
	}
	return e
}

func randomTraceID(rng *rand.Rand) events.TraceID {
	var t events.TraceID
	for i := range t {
		t[i] = byte(rng.Uint32())
	}
	t[0] |= 1 // never the zero ID
	return t
}

// recordStep runs node i's part of step: its events, paced over the step,
// and the faults that take it down after some of them.
func (c *cluster) recordStep(ctx context.Context, p *plan, step, i int, downs []fault) error {
	count := p.steps[step].records[i]
	rng := contentRNG(p.seed, step, i)
	pause := c.cfg.stepDuration / time.Duration(count+1)
	s := c.slots[i]
	// A fault that takes the node down strikes from its own goroutine
	// while the node goes on recording, so that it may land in the middle
	// of a Record.
	downErr := make(chan error, len(downs))
	var wg sync.WaitGroup
	defer wg.Wait()
	for j := 0; ; j++ {
		if len(downs) > 0 && downs[0].after <= j {
			faults := downs
			for len(downs) > 0 && downs[0].after <= j {
				downs = downs[1:]
			}
			faults = faults[:len(faults)-len(downs)]
			wg.Go(func() {
				for _, f := range faults {
					downErr <- c.takeDown(ctx, f, step)
				}
			})
		}
		if j == count {
			wg.Wait()
			close(downErr)
			for err := range downErr {
				if err != nil {
					return err
				}
			}
			return nil
		}
		e := randomEvent(rng)
		// Half the events stand alone; of the others, one in five starts a
		// new trace of the node's own and the rest continue it, so its
		// traces run about five events long, across restarts too.
		rctx := ctx
		s.mu.Lock()
		switch x := rng.IntN(10); {
		case x == 0 || x < 5 && s.local.id.IsZero():
			s.local = localTrace{id: randomTraceID(rng)}
			fallthrough
		case x < 5:
			rctx = events.ContextWithParent(events.ContextWithTrace(ctx, s.local.id), s.local.last)
		}
		s.mu.Unlock()
		if got, _, ok := c.record(rctx, i, writerLocal, step, e, nil); ok && !got.Correlation.IsZero() {
			s.mu.Lock()
			if s.local.id == got.Correlation {
				s.local.last = got.ID
			}
			s.mu.Unlock()
		}
		if !sleep(ctx, pause) {
			return ctx.Err()
		}
	}
}

// runRequests runs the step's requests one after another, paced over the
// step. Each hop records on its node what a service would: the request
// arriving with the caller's trace, parent and clock.
func (c *cluster) runRequests(ctx context.Context, p *plan, step int) {
	reqs := p.steps[step].requests
	rng := contentRNG(p.seed, step, 0xffff)
	pause := c.cfg.stepDuration / time.Duration(len(reqs)+1)
	for _, r := range reqs {
		c.stats.requests.Add(1)
		rctx := events.ContextWithTrace(ctx, randomTraceID(rng))
		var carrier events.MapCarrier
		for _, n := range r.route {
			e := randomEvent(rng)
			e.Kind = "rpc.serve"
			got, inc, ok := c.record(rctx, n, writerRequest, step, e, carrier)
			if !ok {
				c.stats.hopsCut.Add(1)
				break
			}
			carrier = events.MapCarrier{}
			events.Propagator{Clock: inc.node.Clock()}.Inject(events.ContextWithParent(rctx, got.ID), carrier)
		}
		if !sleep(ctx, pause) {
			return
		}
	}
}

// run starts every node, runs the plan's steps and then heals everything.
func (c *cluster) run(ctx context.Context, p *plan) error {
	for i := range c.slots {
		if err := c.start(ctx, i); err != nil {
			return err
		}
	}
	if err := c.waitConnected(ctx, 30*time.Second); err != nil {
		return err
	}
	restartAt := map[int]int{} // node → the step at whose end it comes back
	for i, st := range p.steps {
		began := time.Now()
		downs := map[int][]fault{}
		for _, f := range st.faults {
			if f.kind.takesNodeDown() {
				downs[f.node] = append(downs[f.node], f)
				if f.steps > 0 {
					restartAt[f.node] = i + f.steps - 1
				}
				continue
			}
			if err := c.apply(ctx, f, i); err != nil {
				return fmt.Errorf("step %d: %v: %w", i, f, err)
			}
		}
		errs := make(chan error, len(c.slots))
		var wg sync.WaitGroup
		for n := range c.slots {
			wg.Go(func() { errs <- c.recordStep(ctx, p, i, n, downs[n]) })
		}
		wg.Go(func() { c.runRequests(ctx, p, i) })
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				return fmt.Errorf("step %d: %w", i, err)
			}
		}
		if err := c.expire(ctx, i); err != nil {
			return fmt.Errorf("step %d: undoing faults: %w", i, err)
		}
		for n, at := range restartAt {
			if at == i {
				delete(restartAt, n)
				c.log.add("step %d: restart n%d", i, n)
				if err := c.start(ctx, n); err != nil {
					return fmt.Errorf("step %d: %w", i, err)
				}
			}
		}
		c.stats.stepsDone = i + 1
		// Steps are paced so that gossip and sync get time to act between
		// faults; this is spacing, not waiting for an outcome.
		if !sleep(ctx, c.cfg.stepDuration-time.Since(began)) {
			return ctx.Err()
		}
	}
	return c.heal(ctx)
}

// heal undoes every fault but clock skew, which a cluster must live with,
// and starts every node that is down.
func (c *cluster) heal(ctx context.Context) error {
	c.log.add("heal")
	if err := c.expire(ctx, -1); err != nil {
		return err
	}
	for i, s := range c.slots {
		s.mu.Lock()
		down := s.inc == nil
		s.mu.Unlock()
		if down {
			if err := c.start(ctx, i); err != nil {
				return err
			}
		}
	}
	return nil
}

// nodes returns the running node of every slot; after heal, all of them.
func (c *cluster) nodes() []*scopemesh.Node {
	var out []*scopemesh.Node
	for _, s := range c.slots {
		s.mu.Lock()
		if s.inc != nil {
			out = append(out, s.inc.node)
		}
		s.mu.Unlock()
	}
	return out
}

// waitConnected polls until every running node has every other connected.
func (c *cluster) waitConnected(ctx context.Context, timeout time.Duration) error {
	nodes := c.nodes()
	err := poll(ctx, timeout, "every node to list every other as a connected member, and nothing else", func() bool {
		for _, n := range nodes {
			listed := map[string]bool{}
			for _, p := range n.Peers() {
				if p.Connected && p.State == scopemesh.StateConnected {
					listed[p.ID] = true
				}
			}
			for _, m := range nodes {
				if m != n && !listed[m.ID()] {
					return false
				}
			}
			if len(listed) != len(nodes)-1 {
				return false
			}
		}
		return true
	})
	if err != nil {
		var b strings.Builder
		for i, n := range nodes {
			fmt.Fprintf(&b, "n%d %s:\n", i, n.ID())
			for _, p := range n.Peers() {
				fmt.Fprintf(&b, "  %s %s connected %v refused %v connections %d\n", p.ID, p.State, p.Connected, p.Refused, len(p.Connections))
			}
		}
		err = fmt.Errorf("%w\n%s", err, &b)
	}
	return err
}

// converge forces sync sessions on every node until every node holds the
// same events, all the acknowledged ones among them, or the timeout ends.
// It returns how long that took.
func (c *cluster) converge(ctx context.Context, timeout time.Duration) (time.Duration, error) {
	began := time.Now()
	nodes := c.nodes()
	// Nodes expire on ticks of their own: until they agree on the horizon,
	// what they hold differs below it.
	converged := func() bool {
		h, agreed := horizonOf(nodes)
		return agreed && sameEvents(ctx, nodes, c.hist.ackedFrom(h))
	}
	err := poll(ctx, timeout, "every node to hold the same events", func() bool {
		if converged() {
			return true
		}
		var wg sync.WaitGroup
		for _, n := range nodes {
			wg.Go(func() {
				sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				n.Sync(sctx)
			})
		}
		wg.Wait()
		return converged()
	})
	return time.Since(began), err
}

// horizonOf returns the highest retention horizon of the nodes, and
// whether they all have it.
func horizonOf(nodes []*scopemesh.Node) (hlc.Timestamp, bool) {
	var highest hlc.Timestamp
	agreed := true
	for i, n := range nodes {
		h := n.Status().Horizon
		agreed = agreed && (i == 0 || h == highest)
		if highest.Less(h) {
			highest = h
		}
	}
	return highest, agreed
}

// sameEvents reports whether every node lists the same events in the same
// order, at least atLeast of them. The counts are compared first, as they
// cost nothing.
func sameEvents(ctx context.Context, nodes []*scopemesh.Node, atLeast int) bool {
	count := nodes[0].Status().Events
	if count < atLeast {
		return false
	}
	for _, n := range nodes[1:] {
		if n.Status().Events != count {
			return false
		}
	}
	first, err := orderedIDs(ctx, nodes[0])
	if err != nil {
		return false
	}
	for _, n := range nodes[1:] {
		ids, err := orderedIDs(ctx, n)
		if err != nil || !slices.Equal(ids, first) {
			return false
		}
	}
	return true
}

// orderedIDs lists a node's events in (HLC, ID) order, a page at a time,
// as an application would read a long log.
func orderedIDs(ctx context.Context, n *scopemesh.Node) ([]events.ID, error) {
	var ids []events.ID
	err := scanAll(ctx, n, func(e events.Event) { ids = append(ids, e.ID) })
	return ids, err
}

// scanPage is the page size of scanAll: small enough that a run crosses
// many page boundaries.
const scanPage = 997

func scanAll(ctx context.Context, n *scopemesh.Node, fn func(events.Event)) error {
	f := query.Filter{Limit: scanPage}
	for {
		page, err := n.Query(ctx, f)
		if err != nil {
			return err
		}
		for _, e := range page {
			fn(e)
		}
		if len(page) < scanPage {
			return nil
		}
		f.After = keyOf(page[len(page)-1])
	}
}

// close stops every node that is up. It cuts the network first: the
// schedule is over, and what a node does while its peers close under it
// belongs to the stop faults, not to the teardown.
func (c *cluster) close() error {
	c.netMu.Lock()
	for i := range c.slots {
		for j := i + 1; j < len(c.slots); j++ {
			c.cut[[2]int{i, j}]++
		}
	}
	err := c.applyLinksLocked(context.Background())
	c.netMu.Unlock()
	errs := []error{err}
	for i, s := range c.slots {
		s.mu.Lock()
		up := s.inc != nil
		s.mu.Unlock()
		if up {
			errs = append(errs, c.stop(i))
		}
	}
	return errors.Join(errs...)
}

// poll checks cond until it holds, the timeout ends or ctx does.
func poll(ctx context.Context, timeout time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v waiting for %s", timeout, what)
		}
		if !sleep(ctx, 20*time.Millisecond) {
			return ctx.Err()
		}
	}
	return nil
}

// sleep waits d or until ctx ends, and reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
