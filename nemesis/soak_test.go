package nemesis

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/query"
)

// Soak settings.
const (
	soakNodes       = 4
	soakRate        = 25               // events a node records per second
	soakPeriod      = 10 * time.Second // a partition and its heal
	soakSample      = 5 * time.Second  // between memory samples
	soakMaxLagCheck = 60 * time.Second // how long a heal may take to converge
)

// memSample is the process's memory at one moment of a soak.
type memSample struct {
	at         time.Duration
	heapAlloc  uint64 // live heap, after a collection
	heapInuse  uint64
	sys        uint64
	goroutines int
	events     int // events node 0 holds
	acked      int // events acknowledged so far
}

// TestNemesisSoak records steadily on four nodes of a simulated network,
// with their stores on disk, while partitions of random shapes come and
// go; it samples memory and measures how long each heal takes to
// converge. It runs only with -soak.
func TestNemesisSoak(t *testing.T) {
	if *soakFlag <= 0 {
		t.Skip("runs with -soak DURATION")
	}
	seed := seed()
	t.Logf("seed %d; to reproduce the schedule: go test ./nemesis -run '^TestNemesisSoak$' -soak %v -seed %d", seed, *soakFlag, seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 0x50a6))
	dirs := make([]string, soakNodes)
	for i := range dirs {
		dirs[i] = t.TempDir()
	}
	net, stores, err := newMockNetwork(seed, soakNodes, dirs...)
	if err != nil {
		t.Fatal(err)
	}
	const maxOffset = 200 * time.Millisecond
	c := newCluster(clusterConfig{nodes: soakNodes, syncInterval: 5 * time.Second, maxOffset: maxOffset}, net, stores)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	t.Cleanup(func() {
		if err := c.close(); err != nil {
			t.Errorf("closing the nodes: %v", err)
		}
		if err := net.close(); err != nil {
			t.Errorf("closing the network: %v", err)
		}
	})
	for i := range c.slots {
		if err := c.start(ctx, i); err != nil {
			t.Fatal(err)
		}
		// Skews within ±maxOffset/2 keep every pair of clocks within
		// MaxClockOffset of each other, as the configuration promises,
		// so that the lags measure the heals. (Further apart, a peer holds
		// back the events of the faster clock until the next periodic
		// sync, and the lag grows to about SyncInterval.)
		c.slots[i].clock.set(time.Duration(rng.Int64N(int64(maxOffset)+1)) - maxOffset/2)
	}
	if err := c.waitConnected(ctx, 30*time.Second); err != nil {
		t.Fatal(err)
	}

	began := time.Now()
	recCtx, stopRecording := context.WithCancel(ctx)
	var recorders sync.WaitGroup
	for i := range c.slots {
		recorders.Go(func() { c.recordSteadily(recCtx, seed, i) })
	}

	var samples []memSample
	sample := func() {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		acked, _ := c.hist.counts()
		samples = append(samples, memSample{
			at: time.Since(began), heapAlloc: ms.HeapAlloc, heapInuse: ms.HeapInuse, sys: ms.Sys,
			goroutines: runtime.NumGoroutine(), events: c.nodes()[0].Status().Events, acked: acked,
		})
	}
	sample()
	nextSample := time.Now().Add(soakSample)
	var lags []time.Duration
	mark := 0
	for cycle := 0; time.Since(began) < *soakFlag; cycle++ {
		f := fault{kind: partition, groups: randomGroups(rng, soakNodes), steps: 1}
		if err := c.apply(ctx, f, cycle); err != nil {
			t.Fatal(err)
		}
		for wait := time.Now().Add(soakPeriod / 2); time.Now().Before(wait); {
			if time.Now().After(nextSample) {
				sample()
				nextSample = nextSample.Add(soakSample)
			}
			sleep(ctx, 100*time.Millisecond)
		}
		var pending []stamp
		pending, mark = c.hist.ackedSince(mark)
		healed := time.Now()
		if err := c.expire(ctx, cycle); err != nil {
			t.Fatal(err)
		}
		if err := poll(ctx, soakMaxLagCheck, "every node to hold what was recorded before the heal", func() bool {
			return c.allHold(ctx, pending)
		}); err != nil {
			t.Fatalf("cycle %d (%v): %v", cycle, f, err)
		}
		lags = append(lags, time.Since(healed))
		for wait := healed.Add(soakPeriod / 2); time.Now().Before(wait); {
			if time.Now().After(nextSample) {
				sample()
				nextSample = nextSample.Add(soakSample)
			}
			sleep(ctx, 100*time.Millisecond)
		}
	}
	stopRecording()
	recorders.Wait()
	sample()

	took, convErr := c.converge(ctx, 2*time.Minute)
	c.stats.converge = took
	v := c.check(ctx, checkOptions{maxTraces: 300, maxLead: time.Hour, membership: 15 * time.Second})
	t.Log(soakReport(samples, lags, took))
	if convErr != nil || !v.ok() {
		t.Errorf("seed %d failed.\nconvergence: %v\n%s", seed, convErr, v)
	}
	if msg := levelsOff(samples); msg != "" {
		t.Error(msg)
	}
}

// recordSteadily records on node i at soakRate until ctx ends; one event in
// ten is a request that hops to another node.
func (c *cluster) recordSteadily(ctx context.Context, seed int64, i int) {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x50a60000+uint64(i)))
	tick := time.NewTicker(time.Second / soakRate)
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if rng.IntN(10) > 0 {
			c.record(ctx, i, writerLocal, n, randomEvent(rng), nil)
			continue
		}
		// A request from node i to another; its hops are recorded by
		// this goroutine, the only writer of "request" events of i.
		rctx := events.ContextWithTrace(ctx, randomTraceID(rng))
		got, inc, ok := c.record(rctx, i, writerRequest, n, randomEvent(rng), nil)
		if !ok {
			continue
		}
		carrier := events.MapCarrier{}
		events.Propagator{Clock: inc.node.Clock()}.Inject(events.ContextWithParent(rctx, got.ID), carrier)
		e := randomEvent(rng)
		e.Kind = "rpc.serve"
		c.record(rctx, (i+1+rng.IntN(len(c.slots)-1))%len(c.slots), "request-from-"+fmt.Sprint(i), n, e, carrier)
	}
}

// allHold reports whether every node holds every event of pending. It
// reads only the part of each replica from the earliest pending event on.
func (c *cluster) allHold(ctx context.Context, pending []stamp) bool {
	if len(pending) == 0 {
		return true
	}
	since := pending[0].time
	for _, s := range pending {
		since = minTime(since, s.time)
	}
	for _, n := range c.nodes() {
		held := map[events.ID]bool{}
		f := query.Filter{Since: since, Limit: scanPage}
		for {
			page, err := n.Query(ctx, f)
			if err != nil {
				return false
			}
			for _, e := range page {
				held[e.ID] = true
			}
			if len(page) < scanPage {
				break
			}
			f.After = keyOf(page[len(page)-1])
		}
		for _, s := range pending {
			if !held[s.id] {
				return false
			}
		}
	}
	return true
}

// soakReport lays out the samples and the convergence lags.
func soakReport(samples []memSample, lags []time.Duration, final time.Duration) string {
	var b strings.Builder
	b.WriteString("   time   live heap  heap in use   sys      goroutines  events  acked\n")
	for _, s := range samples {
		fmt.Fprintf(&b, "%7v %9s %11s %9s %8d %9d %7d\n", s.at.Round(time.Second),
			mib(s.heapAlloc), mib(s.heapInuse), mib(s.sys), s.goroutines, s.events, s.acked)
	}
	if len(lags) > 0 {
		sorted := slices.Sorted(slices.Values(lags))
		fmt.Fprintf(&b, "convergence lag after %d heals: min %v, median %v, p90 %v, max %v\n", len(lags),
			sorted[0].Round(time.Millisecond), sorted[len(sorted)/2].Round(time.Millisecond),
			sorted[len(sorted)*9/10].Round(time.Millisecond), sorted[len(sorted)-1].Round(time.Millisecond))
	}
	fmt.Fprintf(&b, "final convergence after recording stopped: %v\n", final.Round(time.Millisecond))
	if len(samples) > 2 {
		first, mid, last := samples[0], samples[len(samples)/2], samples[len(samples)-1]
		fmt.Fprintf(&b, "live heap per event held: first half %s, second half %s\n",
			perEvent(first, mid), perEvent(mid, last))
	}
	return b.String()
}

func mib(n uint64) string { return fmt.Sprintf("%.1fMiB", float64(n)/(1<<20)) }

func perEvent(a, b memSample) string {
	if b.events <= a.events {
		return "n/a"
	}
	return fmt.Sprintf("%.0f B", (float64(b.heapAlloc)-float64(a.heapAlloc))/float64(b.events-a.events))
}

// levelsOff checks the samples for growth that the held events do not
// explain. The event set grows by design, and with it the in-memory
// ordered index of every node and the test's own history, so the live heap
// may grow by a bounded amount per event; beyond that, and in goroutines,
// the second half of the run must not grow.
func levelsOff(samples []memSample) string {
	if len(samples) < 4 {
		return ""
	}
	mid, last := samples[len(samples)/2], samples[len(samples)-1]
	// Per event held: each node's index entry and counters, the test's
	// record of it, and slack for Pebble's memtables filling up.
	const perEvent = 4 << 10
	allowed := uint64(perEvent*max(last.events-mid.events, 0)) + 32<<20
	var problems []string
	if last.heapAlloc > mid.heapAlloc+allowed {
		problems = append(problems, fmt.Sprintf("the live heap grew from %s to %s in the second half, more than the %d new events explain",
			mib(mid.heapAlloc), mib(last.heapAlloc), last.events-mid.events))
	}
	if last.goroutines > mid.goroutines+50 {
		problems = append(problems, fmt.Sprintf("goroutines grew from %d to %d in the second half", mid.goroutines, last.goroutines))
	}
	return strings.Join(problems, "\n")
}
