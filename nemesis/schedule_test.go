package nemesis

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// faultKind names one kind of fault the nemesis applies.
type faultKind int

const (
	partition  faultKind = iota // the nodes split into groups that cannot reach each other
	cutLink                     // one link is down: what the two ends send each other is dropped
	flapLink                    // one link's connections reset: what was in flight on them is lost
	delayLink                   // one link delivers late
	slowNode                    // every link of one node delivers late
	skewClock                   // one node's wall clock jumps to a new offset within ±MaxClockOffset
	stopNode                    // Close; the node comes back later from its store
	killNode                    // the process dies: the store keeps every write it made
	powerLoss                   // the machine dies: the store keeps its synced writes and part of the rest
	bounceNode                  // crash loop: killed and reopened at once, one to three times in a row
	ageClocks                   // time passes: every node's wall clock jumps ahead past the retention
	numFaultKinds
)

var faultNames = [numFaultKinds]string{
	partition: "partition", cutLink: "cut", flapLink: "flap", delayLink: "delay", slowNode: "slow",
	skewClock: "skew", stopNode: "stop", killNode: "kill", powerLoss: "power-loss", bounceNode: "bounce",
	ageClocks: "age",
}

func (k faultKind) String() string { return faultNames[k] }

// takesNodeDown reports whether the fault ends the node's incarnation. Such
// faults strike in the middle of the node's recording, not between steps.
func (k faultKind) takesNodeDown() bool {
	return k == stopNode || k == killNode || k == powerLoss || k == bounceNode
}

// fault is one planned fault. Which fields matter depends on kind.
type fault struct {
	kind   faultKind
	node   int           // the node; for a link, one end
	peer   int           // a link's other end
	groups [][]int       // partition: the sides
	delay  time.Duration // delayLink, slowNode: added latency; skewClock: the new clock offset; ageClocks: the jump
	after  int           // node-down faults: events the node records in the step first
	steps  int           // steps the fault lasts (a node stays down); 0 for instant faults
	keep   int           // powerLoss: percent of the unsynced writes that survive
	times  int           // bounceNode: restarts in a row
}

func (f fault) String() string {
	var b strings.Builder
	b.WriteString(f.kind.String())
	switch f.kind {
	case partition:
		for i, g := range f.groups {
			if i > 0 {
				b.WriteString(" |")
			}
			for _, n := range g {
				fmt.Fprintf(&b, " n%d", n)
			}
		}
	case cutLink, flapLink:
		fmt.Fprintf(&b, " n%d-n%d", f.node, f.peer)
	case delayLink:
		fmt.Fprintf(&b, " n%d-n%d +%v", f.node, f.peer, f.delay)
	case slowNode:
		fmt.Fprintf(&b, " n%d +%v", f.node, f.delay)
	case skewClock:
		fmt.Fprintf(&b, " n%d to %+v", f.node, f.delay)
	case ageClocks:
		fmt.Fprintf(&b, " every clock by %v", f.delay)
	default:
		fmt.Fprintf(&b, " n%d after %d events", f.node, f.after)
		if f.kind == bounceNode {
			fmt.Fprintf(&b, ", %d times", f.times)
		}
		if f.kind == powerLoss {
			fmt.Fprintf(&b, ", %d%% of unsynced writes kept", f.keep)
		}
	}
	if f.steps > 0 {
		fmt.Fprintf(&b, " for %d steps", f.steps)
	}
	return b.String()
}

// cuts returns the pairs of nodes, lower first, that the fault disconnects.
func (f fault) cuts() [][2]int {
	switch f.kind {
	case cutLink:
		return [][2]int{orderedPair(f.node, f.peer)}
	case partition:
		var out [][2]int
		for i, g := range f.groups {
			for _, h := range f.groups[i+1:] {
				for _, a := range g {
					for _, b := range h {
						out = append(out, orderedPair(a, b))
					}
				}
			}
		}
		return out
	}
	return nil
}

func orderedPair(a, b int) [2]int { return [2]int{min(a, b), max(a, b)} }

// step is one step of a plan: its faults strike (node-down faults during
// the node's recording), every node that is up records, requests cross the
// nodes, and faults whose time is over are undone at the end.
type step struct {
	faults   []fault
	records  []int // events each node records by itself
	requests []request
}

// request is a call that crosses nodes: each hop records an event whose
// parent is the previous hop's, with the trace and the clock carried as a
// real propagator would carry them.
type request struct {
	route []int
}

// plan is a whole nemesis schedule: a function of its seed and shape only,
// so a seed replays the same faults in the same order.
type plan struct {
	seed   int64
	nodes  int
	offset time.Duration // the nodes' MaxClockOffset: skews stay within ±offset
	steps  []step
}

// planShape bounds what a plan generates.
type planShape struct {
	nodes      int
	steps      int
	maxOffset  time.Duration
	maxRecords int                 // events a node records per step, at most
	kinds      [numFaultKinds]bool // the faults the network under test can apply
	weights    [numFaultKinds]int  // relative frequency of each kind; 0 means the default
	minUp      int                 // nodes that stay up, at least
	maxLatency time.Duration       // slowest link
	retention  time.Duration       // the nodes' Retention: ageClocks jumps past it
}

var defaultWeights = [numFaultKinds]int{
	partition: 5, cutLink: 3, flapLink: 3, delayLink: 2, slowNode: 2,
	skewClock: 3, stopNode: 2, killNode: 2, powerLoss: 2, bounceNode: 1,
	ageClocks: 1,
}

// newPlan draws a plan from seed. It simulates which nodes are up, so it
// never plans to stop a node that is down or to take down more than the
// shape allows.
func newPlan(seed int64, shape planShape) *plan {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x6e656d65736973)) // "nemesis"
	p := &plan{seed: seed, nodes: shape.nodes, offset: shape.maxOffset}
	downUntil := make([]int, shape.nodes) // a node is down during steps < downUntil
	var kinds []faultKind
	for k := range numFaultKinds {
		if !shape.kinds[k] {
			continue
		}
		w := shape.weights[k]
		if w == 0 {
			w = defaultWeights[k]
		}
		for range w {
			kinds = append(kinds, k)
		}
	}
	for i := range shape.steps {
		var st step
		up := func(n int) bool { return downUntil[n] <= i }
		var upNodes []int
		for n := range shape.nodes {
			if up(n) {
				upNodes = append(upNodes, n)
			}
		}
		st.records = make([]int, shape.nodes)
		for n := range st.records {
			st.records[n] = rng.IntN(shape.maxRecords + 1)
		}
		downThisStep := map[int]bool{} // nodes that go down and stay down
		struck := map[int]bool{}       // nodes a node-down fault strikes: one each per step
		for range faultsPerStep(rng) {
			if len(kinds) == 0 {
				break
			}
			f := fault{kind: kinds[rng.IntN(len(kinds))]}
			switch f.kind {
			case partition:
				f.groups = randomGroups(rng, shape.nodes)
				f.steps = 1 + rng.IntN(8)
			case cutLink, flapLink, delayLink:
				f.node, f.peer = randomLink(rng, shape.nodes)
				if f.kind == cutLink {
					f.steps = 1 + rng.IntN(3)
				}
				if f.kind == delayLink {
					f.delay = time.Duration(1+rng.IntN(int(shape.maxLatency/time.Millisecond))) * time.Millisecond
					f.steps = 1 + rng.IntN(10)
				}
			case slowNode:
				f.node = rng.IntN(shape.nodes)
				f.delay = shape.maxLatency/2 + time.Duration(rng.Int64N(int64(shape.maxLatency/2)+1))
				f.steps = 1 + rng.IntN(10)
			case skewClock:
				f.node = rng.IntN(shape.nodes)
				f.delay = time.Duration(rng.Int64N(2*int64(shape.maxOffset)+1)) - shape.maxOffset
			case ageClocks:
				// Past the retention and a step or two: what came
				// before expires.
				f.delay = shape.retention + time.Duration(1+rng.IntN(3))*time.Minute
			default: // node-down faults
				candidates := slices.DeleteFunc(slices.Clone(upNodes), func(n int) bool { return struck[n] })
				if len(upNodes)-len(downThisStep) <= shape.minUp || len(candidates) == 0 {
					continue
				}
				f.node = candidates[rng.IntN(len(candidates))]
				f.after = rng.IntN(st.records[f.node] + 1)
				if f.kind != bounceNode {
					f.steps = 1 + rng.IntN(5)
				}
				if f.kind == powerLoss {
					f.keep = rng.IntN(101)
				}
				if f.kind == bounceNode {
					f.times = 1 + rng.IntN(3)
				}
				struck[f.node] = true
				// A bounced node is back within the step: its later
				// records and requests find it up again.
				if f.kind != bounceNode {
					downThisStep[f.node] = true
					downUntil[f.node] = i + f.steps
				}
			}
			st.faults = append(st.faults, f)
		}
		// Requests run while nodes go down; a hop to a node that is down
		// when reached ends the request there, as a failed call would.
		for range rng.IntN(3) {
			hops := 2 + rng.IntN(3)
			r := request{}
			for range hops {
				r.route = append(r.route, rng.IntN(shape.nodes))
			}
			st.requests = append(st.requests, r)
		}
		p.steps = append(p.steps, st)
	}
	return p
}

// faultsPerStep draws how many faults strike in one step: often none, so
// the cluster gets time between them.
func faultsPerStep(rng *rand.Rand) int {
	switch x := rng.IntN(10); {
	case x < 4:
		return 0
	case x < 8:
		return 1
	default:
		return 2
	}
}

// randomGroups splits nodes 0..n-1 into two or three non-empty groups of
// random shapes: a lone node, an even split, a majority and a minority.
func randomGroups(rng *rand.Rand, n int) [][]int {
	k := 2
	if n >= 4 && rng.IntN(3) == 0 {
		k = 3
	}
	perm := rng.Perm(n)
	// The first k nodes of the permutation seed the groups, so none is
	// empty; the others join a random group.
	groups := make([][]int, k)
	for i, node := range perm {
		g := i
		if i >= k {
			g = rng.IntN(k)
		}
		groups[g] = append(groups[g], node)
	}
	for _, g := range groups {
		slices.Sort(g)
	}
	slices.SortFunc(groups, func(a, b []int) int { return a[0] - b[0] })
	return groups
}

func randomLink(rng *rand.Rand, n int) (int, int) {
	a := rng.IntN(n)
	b := rng.IntN(n - 1)
	if b >= a {
		b++
	}
	return min(a, b), max(a, b)
}

// String lists the plan one step a line, with the steps that have neither
// faults nor requests left out.
func (p *plan) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d: %d nodes, %d steps\n", p.seed, p.nodes, len(p.steps))
	for i, st := range p.steps {
		if len(st.faults) == 0 {
			continue
		}
		fmt.Fprintf(&b, "step %d:", i)
		for j, f := range st.faults {
			if j > 0 {
				b.WriteString(";")
			}
			b.WriteString(" " + f.String())
		}
		b.WriteString("\n")
	}
	return b.String()
}

// TestPlanIsAFunctionOfTheSeed checks the schedules themselves: the same
// seed gives the same plan, and a plan never takes down a node that is
// down, nor leaves fewer nodes up than its shape wants.
func TestPlanIsAFunctionOfTheSeed(t *testing.T) {
	shape := planShape{nodes: 5, steps: 500, maxOffset: time.Second, maxRecords: 8, minUp: 2, maxLatency: 50 * time.Millisecond}
	for k := range numFaultKinds {
		shape.kinds[k] = true
	}
	for seed := range int64(20) {
		p := newPlan(seed, shape)
		if again := newPlan(seed, shape); again.String() != p.String() {
			t.Fatalf("seed %d gives two plans", seed)
		}
		downUntil := make([]int, shape.nodes)
		for i, st := range p.steps {
			struck := map[int]bool{}
			for _, f := range st.faults {
				if !f.kind.takesNodeDown() {
					continue
				}
				if downUntil[f.node] > i || struck[f.node] {
					t.Fatalf("seed %d, step %d: %v strikes a node that is down or struck already", seed, i, f)
				}
				struck[f.node] = true
				if f.kind != bounceNode {
					downUntil[f.node] = i + f.steps
				}
			}
			up := 0
			for _, until := range downUntil {
				if until <= i {
					up++
				}
			}
			if up < shape.minUp {
				t.Fatalf("seed %d, step %d: %d nodes up, want at least %d", seed, i, up, shape.minUp)
			}
		}
	}
}
