package nemesis

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/scopemesh/scopemesh"
	"github.com/scopemesh/scopemesh/hlc"
)

var (
	seedFlag  = flag.Int64("seed", 0, "seed of the fault schedule; 0 picks one from the clock and prints it")
	stepsFlag = flag.Int("steps", 0, "steps of the schedule; 0 means the short one, or the long one with -long")
	longFlag  = flag.Bool("long", false, "run the long schedule")
	planFlag  = flag.Bool("plan", false, "log the schedule before running it")
	soakFlag  = flag.Duration("soak", 0, "run the soak test for this long (it is skipped otherwise)")
)

// Schedule lengths.
const (
	shortSteps = 40
	longSteps  = 1500
)

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaks := leftoverGoroutines(10 * time.Second); len(leaks) > 0 {
			fmt.Fprintf(os.Stderr, "goroutines left running after the tests:\n\n%s\n", strings.Join(leaks, "\n\n"))
			code = 1
		}
	}
	os.Exit(code)
}

// seed returns the seed of this run: -seed, or one from the clock.
func seed() int64 {
	s := *seedFlag
	if s == 0 {
		s = time.Now().UnixNano() % 1_000_000_000
	}
	return s
}

func steps() int {
	switch {
	case *stepsFlag > 0:
		return *stepsFlag
	case *longFlag:
		return longSteps
	}
	return shortSteps
}

// TestNemesis runs five nodes on a simulated network through a schedule of
// every fault drawn from the seed, then heals, syncs and checks.
func TestNemesis(t *testing.T) {
	seed := seed()
	const maxOffset = 200 * time.Millisecond
	shape := planShape{
		nodes:      5,
		steps:      steps(),
		maxOffset:  maxOffset,
		maxRecords: 8,
		minUp:      2,
		maxLatency: 80 * time.Millisecond,
		retention:  scopemesh.MinRetention,
	}
	for k := range numFaultKinds {
		shape.kinds[k] = true
	}
	p := newPlan(seed, shape)
	net, stores, err := newMockNetwork(seed, shape.nodes)
	if err != nil {
		t.Fatal(err)
	}
	c := newCluster(clusterConfig{
		nodes:        shape.nodes,
		syncInterval: time.Second,
		maxOffset:    maxOffset,
		stepDuration: 60 * time.Millisecond,
		retention:    shape.retention,
	}, net, stores)
	runAndCheck(t, c, p, func() error { return net.close() })
}

// runAndCheck runs plan p on c, heals, converges and checks, and reports
// the outcome with the seed that reproduces it.
func runAndCheck(t *testing.T, c *cluster, p *plan, closeNet func() error) {
	t.Helper()
	repro := fmt.Sprintf("go test ./nemesis -run '^%s$' -seed %d -steps %d", t.Name(), p.seed, len(p.steps))
	t.Logf("seed %d, %d steps; to reproduce: %s", p.seed, len(p.steps), repro)
	if *planFlag {
		t.Log(p)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	t.Cleanup(func() {
		if err := c.close(); err != nil {
			t.Errorf("closing the nodes: %v", err)
		}
		if err := closeNet(); err != nil {
			t.Errorf("closing the network: %v", err)
		}
	})
	began := time.Now()
	if err := c.run(ctx, p); err != nil {
		t.Fatalf("%v\nfaults so far:\n%s\nreproduce: %s", err, c.log.tail(), repro)
	}
	ran := time.Since(began)
	took, convErr := c.converge(ctx, convergeTimeout(p))
	c.stats.converge = took
	v := c.check(ctx, checkOptions{
		maxTraces: 2000,
		// A restart may start the clock up to the persisted lead ahead;
		// remote clocks pull it up to MaxClockOffset ahead of its own
		// physical clock, and a skew change may move that clock back by
		// twice the offset.
		maxLead:    hlc.DefaultPersistAhead + 3*p.offset + 100*time.Millisecond,
		membership: 15 * time.Second,
	})
	t.Log(c.summary(p, ran))
	if convErr != nil || !v.ok() {
		t.Errorf("seed %d failed.\nconvergence: %v\n%s\nfaults applied:\n%s\nreproduce: %s",
			p.seed, convErr, v, c.log.tail(), repro)
	}
}

// convergeTimeout is how long the healed cluster may take to converge:
// generous, since a node's clock may run ahead after restarts and its
// events then wait until the others' clocks catch up.
func convergeTimeout(p *plan) time.Duration {
	return 60*time.Second + time.Duration(len(p.steps))*20*time.Millisecond
}

// summary describes a run in figures.
func (c *cluster) summary(p *plan, ran time.Duration) string {
	var b strings.Builder
	acked, maybe := c.hist.counts()
	fmt.Fprintf(&b, "%d steps in %v; %d Record calls: %d acknowledged, %d indeterminate; %d requests (%d cut short by a node going down); %d restarts\n",
		c.stats.stepsDone, ran.Round(time.Millisecond), c.stats.recorded.Load(), acked, maybe,
		c.stats.requests.Load(), c.stats.hopsCut.Load(), c.stats.restarts.Load())
	b.WriteString("faults:")
	total := int64(0)
	for k := range numFaultKinds {
		n := c.stats.faults[k].Load()
		total += n
		fmt.Fprintf(&b, " %v %d,", k, n)
	}
	fmt.Fprintf(&b, " total %d\n", total)
	lead := c.stats.maxRestartLead()
	fmt.Fprintf(&b, "converged %v after the heal; furthest clock lead at a restart: %v (n%d, incarnation %d)\n",
		c.stats.converge.Round(time.Millisecond), lead.lead.Round(time.Millisecond), lead.node, lead.inc)
	for i, n := range c.nodes() {
		st := n.Status()
		fmt.Fprintf(&b, "n%d: %d events, gossip %+v, clock skews seen %d\n", i, st.Events, st.Gossip, len(st.ClockSkew))
	}
	return b.String()
}
