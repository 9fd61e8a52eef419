package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/scopemesh/scopemesh"
	"github.com/scopemesh/scopemesh/bench/internal/cluster"
	"github.com/scopemesh/scopemesh/bench/internal/report"
)

type membersParams struct {
	Nodes  []int         `json:"nodes"`
	Spread int           `json:"spread"` // members joined one at a time into the assembled cluster, each timed
	Idle   time.Duration `json:"idle"`
}

type membersResult struct {
	Nodes int `json:"nodes"`
	// Assembled is the time from the last of the first Nodes joins until
	// every node listed every other.
	Assembled float64 `json:"assembled_s"`
	// Spread are the times from a new member's Join until every node
	// listed it; SpreadMedian their median.
	Spread       []float64 `json:"spread_s"`
	SpreadMedian float64   `json:"spread_median_s"`
	// Idle traffic, with no event recorded: every byte the hosts sent over
	// the window, per member and second, and how it splits.
	IdleBytes      float64         `json:"idle_bytes_per_member_s"`
	IdleTraffic    cluster.Traffic `json:"idle_traffic"`
	IdleSeconds    float64         `json:"idle_s"`
	EventsPerSecEq float64         `json:"events_per_s_equivalent"` // the idle bytes as events/s a member replicates
}

func runMembers(ctx context.Context, e *env, args []string) error {
	p := membersParams{Nodes: []int{10, 30}, Spread: 3, Idle: time.Minute}
	fs := e.flags("members")
	fs.Var((*ints)(&p.Nodes), "nodes", "cluster sizes, a comma-separated list")
	fs.IntVar(&p.Spread, "spread", p.Spread, "new members joined and timed one at a time into each assembled cluster")
	fs.DurationVar(&p.Idle, "idle", p.Idle, "how long to count the idle cluster's traffic: a member beats once a minute")
	if err := e.parse(fs, args); err != nil {
		return err
	}
	for _, n := range p.Nodes {
		if n < 2 || n > 200 {
			return fmt.Errorf("-nodes %d: want 2 to 200", n)
		}
	}
	run := report.New("members", p)
	var results []membersResult
	for _, n := range p.Nodes {
		r, err := membersOnce(ctx, n, p)
		if err != nil {
			return fmt.Errorf("%d nodes: %w", n, err)
		}
		results = append(results, r)
	}
	t := report.Table{Title: "the cluster view on loopback TCP: each member joins one earlier at random",
		Header: []string{"nodes", "assembled", "new member in every view (median)", "of", "idle bytes/member/s", "gossip", "list exchanges", "sync", "other", "≈ events/s"}}
	for _, r := range results {
		per := func(b int64) string { return report.Float(float64(b) / float64(r.Nodes) / r.IdleSeconds) }
		t.Add(r.Nodes, secs(r.Assembled), secs(r.SpreadMedian), len(r.Spread), report.Float(r.IdleBytes),
			per(r.IdleTraffic.Gossip), per(r.IdleTraffic.Members), per(r.IdleTraffic.Sync), per(r.IdleTraffic.Other), report.Float(r.EventsPerSecEq))
	}
	t.Print(os.Stdout)
	return e.finish(run, results, nil)
}

// idleSettle is how long after the last join the idle traffic is counted.
const idleSettle = 10 * time.Second

// eventWireBytes is about what replicating one event to one member sends:
// the events of the benchmarks are some 300 bytes encoded, gossiped in
// batches.
const eventWireBytes = 330

// membersOnce assembles a cluster of n, times new members' spread and
// counts the idle traffic.
func membersOnce(ctx context.Context, n int, p membersParams) (membersResult, error) {
	res := membersResult{Nodes: n}
	name := fmt.Sprintf("bench-members-%d", time.Now().UnixNano())
	var members []*cluster.Member
	defer func() {
		var wg sync.WaitGroup
		for _, m := range members {
			wg.Go(func() { m.Node.Close(); m.Host.Close() })
		}
		wg.Wait()
	}()
	open := func(i int) (*cluster.Member, error) {
		w := cluster.NewWire()
		h, err := cluster.NewHost(w)
		if err != nil {
			return nil, err
		}
		node, err := scopemesh.Open(ctx, scopemesh.Config{Host: h, Name: fmt.Sprintf("m%d", i), Cluster: name,
			DisableMDNS: true, DHT: scopemesh.DHTOff, Retention: -1})
		if err != nil {
			h.Close()
			return nil, err
		}
		return &cluster.Member{Node: node, Host: h, Wire: w}, nil
	}
	rng := rand.New(rand.NewPCG(uint64(n), 2))
	join := func(m *cluster.Member) error {
		to := members[rng.IntN(len(members))]
		jctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		_, err := m.Join(jctx, to.Addrs()[0])
		return err
	}
	progress := report.Stderr(fmt.Sprintf("%d nodes: joining", n), n)
	for i := range n {
		m, err := open(i)
		if err != nil {
			progress.Done()
			return res, err
		}
		if i > 0 {
			if err := join(m); err != nil {
				m.Node.Close()
				m.Host.Close()
				progress.Done()
				return res, fmt.Errorf("node %d joining: %w", i, err)
			}
		}
		members = append(members, m)
		progress.Add(1)
	}
	progress.Done()
	start := time.Now()
	if err := everyViewHolds(ctx, members, members); err != nil {
		return res, err
	}
	res.Assembled = time.Since(start).Seconds()

	for k := range p.Spread {
		m, err := open(n + k)
		if err != nil {
			return res, err
		}
		start := time.Now()
		if err := join(m); err != nil {
			m.Node.Close()
			m.Host.Close()
			return res, err
		}
		members = append(members, m)
		if err := everyViewHolds(ctx, members, []*cluster.Member{m}); err != nil {
			return res, err
		}
		res.Spread = append(res.Spread, time.Since(start).Seconds())
	}
	if len(res.Spread) > 0 {
		sorted := slices.Sorted(slices.Values(res.Spread))
		res.SpreadMedian = sorted[len(sorted)/2]
	}

	// The last joins set off dials, syncs and records that are over
	// within seconds.
	fmt.Fprintf(os.Stderr, "%d nodes: settling %v, then counting idle traffic for %v\n", len(members), idleSettle, p.Idle)
	select {
	case <-time.After(idleSettle):
	case <-ctx.Done():
		return res, ctx.Err()
	}
	sent := func() cluster.Traffic {
		var t cluster.Traffic
		for _, m := range members {
			t = t.Add(m.Wire.Sent())
		}
		return t
	}
	before, began := sent(), time.Now()

	select {
	case <-time.After(p.Idle):
	case <-ctx.Done():
		return res, ctx.Err()
	}
	res.IdleTraffic, res.IdleSeconds = sent().Sub(before), time.Since(began).Seconds()
	res.Nodes = len(members)
	res.IdleBytes = float64(res.IdleTraffic.Total()) / float64(len(members)) / res.IdleSeconds
	res.EventsPerSecEq = res.IdleBytes / eventWireBytes
	return res, nil
}

// everyViewHolds waits until every one of members lists each of want (but
// itself) as a member, not gone.
func everyViewHolds(ctx context.Context, members, want []*cluster.Member) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		missing := 0
		for _, m := range members {
			listed := map[string]bool{}
			for _, p := range m.Peers() {
				if p.State != scopemesh.StateLeft && p.State != scopemesh.StateUnreachable {
					listed[p.ID] = true
				}
			}
			for _, w := range want {
				if w != m && !listed[w.ID()] {
					missing++
				}
			}
		}
		if missing == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d entries still missing from the members' views after 2 minutes", missing)
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), fmt.Errorf("%d entries missing", missing))
		case <-time.After(10 * time.Millisecond):
		}
	}
}
