package testbed

import (
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scopemesh/scopemesh/internal/gobuild"
)

var (
	faultsSeed  = flag.Uint64("faults.seed", 0, "TestFaults: the seed of the first schedule (0: from the clock)")
	faultsSeeds = flag.Int("faults.seeds", 1, "TestFaults: run this many schedules, with seeds from -faults.seed on")
	faultsLong  = flag.Bool("faults.long", false, "TestFaults: run the long schedule")
	faultsTCP   = flag.Bool("faults.tcp", false, "TestFaults: the nodes listen on TCP only, not TCP and QUIC")
	faultsLogs  = flag.String("faults.logs", "", "TestFaults: keep the nodes' debug logs in this `dir`, as seed-N/nI.log")
)

// The fault schedule: numNodes nodes, and a fault drawn at the start of
// every step. Short: what CI runs, about a minute; long: a few minutes.
const numNodes = 5

type scheduleSize struct {
	steps int
	step  time.Duration
}

var (
	shortSchedule = scheduleSize{steps: 8, step: 3 * time.Second}
	longSchedule  = scheduleSize{steps: 40, step: 5 * time.Second}
)

// writeEvery paces each node's writer.
const writeEvery = 250 * time.Millisecond

type faultKind int

const (
	partition faultKind = iota // the nodes split into two groups that drop each other's packets
	isolate                    // one node drops every other node's packets
	kill                       // kill -9, and a restart from the same data dir later
	stop                       // SIGTERM, and a restart from the same data dir later
	slow                       // one node's link is slow and lossy
	numFaultKinds
)

var faultNames = [numFaultKinds]string{partition: "partition", isolate: "isolate", kill: "kill -9", stop: "SIGTERM", slow: "slow"}

// fault is one fault of a schedule: it strikes at the start of step from
// and is undone at the start of step until, or at the final heal.
type fault struct {
	kind        faultKind
	from, until int
	node        int     // isolate, kill, stop, slow
	groups      [][]int // partition
	noBootstrap bool    // kill, stop: restart without --bootstrap, from the saved members alone
}

func (f fault) String() string {
	var b strings.Builder
	b.WriteString(faultNames[f.kind])
	if f.kind == partition {
		for i, g := range f.groups {
			if i > 0 {
				b.WriteString(" |")
			}
			for _, n := range g {
				fmt.Fprintf(&b, " n%d", n)
			}
		}
	} else {
		fmt.Fprintf(&b, " n%d", f.node)
	}
	fmt.Fprintf(&b, ", steps %d to %d", f.from, f.until)
	if f.kind == kill || f.kind == stop {
		if f.noBootstrap {
			b.WriteString(", restarted without --bootstrap")
		} else {
			b.WriteString(", restarted with --bootstrap")
		}
	}
	return b.String()
}

// cuts returns the pairs of nodes the fault separates.
func (f fault) cuts() [][2]int {
	var out [][2]int
	switch f.kind {
	case partition:
		for _, a := range f.groups[0] {
			for _, b := range f.groups[1] {
				out = append(out, [2]int{a, b})
			}
		}
	case isolate:
		for n := range numNodes {
			if n != f.node {
				out = append(out, [2]int{f.node, n})
			}
		}
	}
	return out
}

// plan draws a schedule from the seed alone: one fault a step, lasting one
// to three steps; a node is not taken down or slowed twice at once, and
// at most two nodes are down at a time.
func plan(seed uint64, size scheduleSize) []fault {
	r := rand.New(rand.NewPCG(seed, 0))
	var faults []fault
	busy := func(step, node int) (busy bool, down int) {
		for _, f := range faults {
			if f.from <= step && step < f.until && (f.kind == kill || f.kind == stop || f.kind == slow) {
				busy = busy || f.node == node
				if f.kind != slow {
					down++
				}
			}
		}
		return busy, down
	}
	for step := range size.steps {
		f := fault{kind: faultKind(r.IntN(int(numFaultKinds))), from: step, until: step + 1 + r.IntN(3), node: r.IntN(numNodes)}
		switch f.kind {
		case partition:
			order := r.Perm(numNodes)
			cut := 2 + r.IntN(numNodes-3) // both groups of two or more: one alone is isolate
			f.groups = [][]int{slices.Sorted(slices.Values(order[:cut])), slices.Sorted(slices.Values(order[cut:]))}
		case kill, stop:
			f.noBootstrap = r.IntN(2) == 0
		}
		if b, down := busy(step, f.node); f.kind >= kill && (b || f.kind != slow && down >= 2) {
			continue // this step goes without a new fault
		}
		faults = append(faults, f)
	}
	return faults
}

// TestFaults runs five nodes on one LAN, records on every node through the
// CLI while a seeded schedule of partitions, crashes, restarts and slow
// links strikes them, heals everything, and checks that every node
// converges to the same sequence holding every acknowledged event once.
func TestFaults(t *testing.T) {
	RequireNetAdmin(t)
	if _, err := exec.LookPath("tc"); err != nil {
		t.Skip("needs tc(8) for slow links: apt-get install -y iproute2")
	}
	bin := gobuild.Binary(t, "github.com/scopemesh/scopemesh/cmd/scopemesh")
	size := shortSchedule
	if *faultsLong {
		size = longSchedule
	}
	seed := *faultsSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano()) % 1_000_000
	}
	var took []time.Duration
	for i := range *faultsSeeds {
		s := seed + uint64(i)
		t.Run(fmt.Sprintf("seed=%d", s), func(t *testing.T) {
			t.Logf("replay: go test -count=1 -v -run 'TestFaults$' ./testbed -faults.seed %d%s", s, map[bool]string{true: " -faults.long"}[*faultsLong])
			took = append(took, runFaults(t, bin, s, size))
		})
	}
	if len(took) > 0 {
		sorted := slices.Sorted(slices.Values(took))
		median := sorted[len(sorted)/2]
		t.Logf("convergence after the final heal over %d seeds: median %v, worst %v (each: %v)",
			len(took), median.Round(time.Millisecond), sorted[len(sorted)-1].Round(time.Millisecond), roundAll(took))
		// Logged, not asserted: one seed's timing is too noisy for CI to
		// fail on; run several seeds to judge it.
		verdict := map[bool]string{true: "met", false: "NOT met"}[median <= convergenceTarget]
		t.Logf("target, every node holding the same events within %v of the final heal (median over seeds): %s", convergenceTarget, verdict)
	}
}

// convergenceTarget is what the project promises after the last fault heals.
const convergenceTarget = 2 * time.Second

func roundAll(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	return out
}

// lan is the cluster of one schedule.
type lan struct {
	t     *testing.T
	net   *Network
	nodes [numNodes]*Node
	tcp   bool
}

// ip is node i's address on the LAN (faults.sh).
func ip(i int) string { return fmt.Sprintf("10.55.0.%d", i+1) }

// args are the flags node i starts with, bootstrapping from the nodes in
// boot. mDNS is off: a restarted node must find the cluster from
// --bootstrap or from the members it saved, not from multicast on the LAN.
func (l *lan) args(i int, boot ...int) []string {
	transports := tcpAndQUIC
	if l.tcp {
		transports = tcpOnly
	}
	// The wildcard address, as an operator's node listens: libp2p's QUIC
	// keepalive is tuned only on wildcard sockets (peer/libp2p.go).
	args := append(listenArgs("0.0.0.0", transports), "--mdns=false", "--log-level", "debug")
	for _, b := range boot {
		for _, a := range l.nodes[b].Addrs {
			if strings.Contains(a, "/"+ip(b)+"/") {
				args = append(args, "--bootstrap", a)
			}
		}
	}
	return args
}

// bootstrapOf are the two nodes node i bootstraps from when it restarts.
func bootstrapOf(i int) []int {
	return []int{(i + numNodes - 1) % numNodes, (i + numNodes - 2) % numNodes}
}

// writer records events on one node until stop closes, and keeps the IDs
// of those acknowledged and the sequence numbers of those that failed (which
// may or may not have been stored).
type writer struct {
	node   *Node
	acked  map[string]ack // by event ID
	failed map[int]bool   // sequence numbers
	errs   map[string]int // why records failed, counted
}

func (w *writer) run(stop <-chan struct{}) {
	tick := time.NewTicker(writeEvery)
	defer tick.Stop()
	for seq := 0; ; seq++ {
		var e struct{ ID string }
		if err := w.node.JSON(&e, "record", "faults.write", "writer="+w.node.Name, fmt.Sprint("seq=", seq)); err != nil {
			w.failed[seq] = true
			w.errs[gist(err)]++
		} else {
			w.acked[e.ID] = ack{fmt.Sprintf("%s seq=%d", w.node.Name, seq), time.Now()}
		}
		select {
		case <-stop:
			return
		case <-tick.C:
		}
	}
}

// gist is what an error of a record command says, without the command,
// its paths and its sequence number, so that alike errors count together.
func gist(err error) string {
	s := err.Error()
	if strings.Contains(s, "no node API") {
		return "node down"
	}
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	return s
}

// runFaults runs one schedule and returns the time from the final heal to
// convergence.
func runFaults(t *testing.T, bin string, seed uint64, size scheduleSize) time.Duration {
	l := &lan{t: t, net: newNetwork(t, bin, "faults.sh", "faults", fmt.Sprint(numNodes)), tcp: *faultsTCP}
	if *faultsLogs != "" {
		// Runs before the network's cleanup removes the logs.
		t.Cleanup(func() { l.keepLogs(filepath.Join(*faultsLogs, fmt.Sprint("seed-", seed))) })
	}
	for i := range numNodes {
		var boot []int
		for _, b := range bootstrapOf(i) {
			if b < i {
				boot = append(boot, b)
			}
		}
		l.nodes[i] = l.net.Start(fmt.Sprintf("n%d", i), l.args(i, boot...)...)
	}
	took := Poll(t, 60*time.Second, "the five nodes to connect", func() error { return connected(l.nodes[:]...) })
	t.Logf("joined: every node connected to every other %v after start", took.Round(time.Millisecond))

	faults := plan(seed, size)
	stopWriters := make(chan struct{})
	var writers [numNodes]*writer
	var wg sync.WaitGroup
	for i, node := range l.nodes {
		writers[i] = &writer{node: node, acked: map[string]ack{}, failed: map[int]bool{}, errs: map[string]int{}}
		wg.Go(func() { writers[i].run(stopWriters) })
	}
	// Stop the writers even when the schedule fails the test.
	stopOnce := sync.OnceFunc(func() { close(stopWriters); wg.Wait() })
	t.Cleanup(stopOnce)

	start := time.Now()
	down := map[int]fault{}
	var slowed [numNodes]bool
	for step := 0; step < size.steps; step++ {
		var active []fault
		for _, f := range faults {
			if f.from <= step && step < f.until {
				active = append(active, f)
			}
			if f.until == step && (f.kind == kill || f.kind == stop) {
				l.restart(f)
				delete(down, f.node)
			}
		}
		for _, f := range faults {
			if f.from != step {
				continue
			}
			t.Logf("+%5.1fs step %d: %v", time.Since(start).Seconds(), step, f)
			switch f.kind {
			case kill:
				l.nodes[f.node].Kill()
				down[f.node] = f
			case stop:
				if err := l.nodes[f.node].stop(); err != nil {
					t.Errorf("SIGTERM to n%d: %v", f.node, err)
				}
				down[f.node] = f
			}
		}
		l.setCuts(active)
		for i := range numNodes {
			want := slices.ContainsFunc(active, func(f fault) bool { return f.kind == slow && f.node == i })
			if want != slowed[i] {
				l.setSlow(i, want)
				slowed[i] = want
			}
		}
		time.Sleep(time.Until(start.Add(time.Duration(step+1) * size.step))) // the schedule's pace, not a wait for convergence
	}

	// The final heal: every rule goes, every node runs.
	l.setCuts(nil)
	for i := range numNodes {
		if slowed[i] {
			l.setSlow(i, false)
		}
	}
	for _, f := range down {
		l.restart(f)
	}
	healed := time.Now()
	t.Logf("+%5.1fs final heal: no rules left, every node running", time.Since(start).Seconds())
	stopOnce()

	acked := map[string]ack{}
	for _, w := range writers {
		maps.Copy(acked, w.acked)
		t.Logf("%s: %d events acknowledged, %d records failed: %v", w.node.Name, len(w.acked), len(w.failed), w.errs)
	}

	// Poll until every node holds every acknowledged event and all hold
	// the same sequence; note when each node first held them all, and what
	// it lacked at the check before.
	complete := map[string]time.Duration{}
	lacked := map[string][]ack{}
	var logs [numNodes][]event
	Poll(t, 90*time.Second, "every node to hold the same events, every acknowledged one among them", func() error {
		var err error
		if logs, err = l.events(); err != nil {
			return err
		}
		var problems []string
		for i, log := range logs {
			name := l.nodes[i].Name
			if missing := lacking(log, acked); len(missing) > 0 {
				problems = append(problems, fmt.Sprintf("%s lacks %d acknowledged events", name, len(missing)))
				lacked[name] = missing
			} else if _, ok := complete[name]; !ok {
				complete[name] = time.Since(healed)
			}
			if i > 0 && !slices.EqualFunc(log, logs[0], func(a, b event) bool { return a.ID == b.ID }) {
				problems = append(problems, fmt.Sprintf("%s's sequence differs from n0's", name))
			}
		}
		return errorIf(problems)
	})
	took = time.Since(healed)
	t.Logf("converged: every node holds the same %d events %v after the final heal (%d acknowledged; each node complete at %v)",
		len(logs[0]), took.Round(time.Millisecond), len(acked), roundMap(complete))
	for _, name := range slices.Sorted(maps.Keys(lacked)) {
		var parts []string
		for _, a := range lacked[name][:min(3, len(lacked[name]))] {
			parts = append(parts, fmt.Sprintf("%s acknowledged %+.1fs", a.what, a.at.Sub(healed).Seconds()))
		}
		t.Logf("%s lacked %d acknowledged events at its last check before complete, such as %s",
			name, len(lacked[name]), strings.Join(parts, ", "))
	}
	l.logPeers(healed)
	check(t, logs, acked, writers[:])
	for _, node := range l.nodes {
		node.Stop()
	}
	return took
}

// event is the part of an event the checker reads.
type event struct {
	ID    string
	Kind  string
	Attrs map[string]string
}

// events queries every node's events, all at once.
func (l *lan) events() ([numNodes][]event, error) {
	var logs [numNodes][]event
	var errs [numNodes]error
	var wg sync.WaitGroup
	for i, node := range l.nodes {
		wg.Go(func() {
			var res struct{ Events []event }
			errs[i] = node.JSON(&res, "query", "--limit", "100000")
			logs[i] = res.Events
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return logs, err
		}
	}
	return logs, nil
}

// ack is an acknowledged record: which writer and sequence number, and
// when it returned.
type ack struct {
	what string
	at   time.Time
}

// lacking returns the acknowledged events log lacks, oldest first.
func lacking(log []event, acked map[string]ack) []ack {
	held := make(map[string]bool, len(log))
	for _, e := range log {
		held[e.ID] = true
	}
	var out []ack
	for id, a := range acked {
		if !held[id] {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(a, b ack) int { return a.at.Compare(b.at) })
	return out
}

func errorIf(problems []string) error {
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("%s", strings.Join(problems, "; "))
}

func roundMap(m map[string]time.Duration) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s +%v", k, m[k].Round(time.Millisecond)))
	}
	return strings.Join(parts, ", ")
}

// check verifies the converged logs: every acknowledged event on every
// node exactly once, nothing but what the writers recorded (a failed record
// may or may not have been stored), and the identical sequence everywhere.
func check(t *testing.T, logs [numNodes][]event, acked map[string]ack, writers []*writer) {
	t.Helper()
	failed := map[string]bool{}
	for _, w := range writers {
		for seq := range w.failed {
			failed[fmt.Sprintf("%s seq=%d", w.node.Name, seq)] = true
		}
	}
	for i, log := range logs {
		name := fmt.Sprintf("n%d", i)
		seen := map[string]int{}
		for pos, e := range log {
			if p, ok := seen[e.ID]; ok {
				t.Errorf("%s lists event %s twice, at positions %d and %d", name, e.ID, p, pos)
			}
			seen[e.ID] = pos
			if _, ok := acked[e.ID]; !ok && !failed[e.Attrs["writer"]+" seq="+e.Attrs["seq"]] {
				t.Errorf("%s holds %s (%s writer=%s seq=%s), which no writer recorded", name, e.ID, e.Kind, e.Attrs["writer"], e.Attrs["seq"])
			}
		}
		lost := 0
		for id, a := range acked {
			if _, ok := seen[id]; !ok {
				if lost++; lost <= 5 {
					t.Errorf("%s lacks acknowledged event %s (%s)", name, id, a.what)
				}
			}
		}
		if lost > 5 {
			t.Errorf("%s lacks %d more acknowledged events", name, lost-5)
		}
		if i > 0 {
			if d := firstDifference(logs[0], log); d >= 0 {
				t.Errorf("n0 and %s differ from position %d on (they hold %d and %d events)", name, d, len(logs[0]), len(log))
			}
		}
	}
}

// firstDifference returns the first position where a and b list different
// events, or -1 if they are the same.
func firstDifference(a, b []event) int {
	for i := range min(len(a), len(b)) {
		if a[i].ID != b[i].ID {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}

// restart starts the node f took down, with --bootstrap or without.
func (l *lan) restart(f fault) {
	l.t.Helper()
	var boot []int
	if !f.noBootstrap {
		boot = bootstrapOf(f.node)
	}
	l.nodes[f.node].Restart(l.args(f.node, boot...)...)
}

// setCuts makes each node drop exactly the packets of the nodes the active
// faults separate it from.
func (l *lan) setCuts(active []fault) {
	l.t.Helper()
	var drop [numNodes]map[int]bool
	for _, f := range active {
		for _, c := range f.cuts() {
			for _, end := range [][2]int{c, {c[1], c[0]}} {
				if drop[end[0]] == nil {
					drop[end[0]] = map[int]bool{}
				}
				drop[end[0]][end[1]] = true
			}
		}
	}
	for i := range numNodes {
		args := []string{fmt.Sprintf("n%d", i)}
		for _, o := range slices.Sorted(maps.Keys(drop[i])) {
			args = append(args, ip(o))
		}
		l.net.Script("cut", args...)
	}
}

// setSlow turns node i's link slow and lossy, or back.
func (l *lan) setSlow(i int, on bool) {
	l.t.Helper()
	state := map[bool]string{true: "on", false: "off"}[on]
	out := l.net.Script("slow", fmt.Sprintf("n%d", i), state)
	if on {
		l.t.Logf("slow link of n%d: %s", i, strings.TrimSpace(out))
	}
}

// keepLogs copies the nodes' logs into dir.
func (l *lan) keepLogs(dir string) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		l.t.Error(err)
		return
	}
	for _, node := range l.nodes {
		if node == nil {
			continue
		}
		b, err := os.ReadFile(node.log)
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, node.Name+".log"), b, 0o644)
		}
		if err != nil {
			l.t.Error(err)
		}
	}
	l.t.Logf("the nodes' logs are in %s", dir)
}

// logPeers logs, for each node, how it sees each other node after the
// heal: when its connection opened and over which transport, and its last
// sync session, relative to the heal.
func (l *lan) logPeers(healed time.Time) {
	l.t.Helper()
	since := func(at time.Time) string {
		if at.IsZero() {
			return "never"
		}
		return fmt.Sprintf("%+.1fs", at.Sub(healed).Seconds())
	}
	for _, node := range l.nodes {
		peers, err := node.Peers()
		if err != nil {
			l.t.Error(err)
			continue
		}
		var parts []string
		for _, other := range l.nodes {
			if other == node {
				continue
			}
			p := peers[other.ID]
			conn := "not connected"
			if len(p.Connections) > 0 {
				c := p.Connections[0]
				dir := map[bool]string{true: "in", false: "out"}[c.Inbound]
				conn = fmt.Sprintf("%s %s opened %s", transport(c.Addr), dir, since(c.Opened))
			}
			parts = append(parts, fmt.Sprintf("%s: %s, %d reconnects, last sync %s (got %d, sent %d)",
				other.Name, conn, p.Reconnects, since(p.LastSync), p.LastSyncResult.Received, p.LastSyncResult.Sent))
		}
		l.t.Logf("%s sees %s", node.Name, strings.Join(parts, "; "))
	}
}
