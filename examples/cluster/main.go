// Command cluster runs a scopemesh cluster on this machine: several nodes in
// one process on loopback (real libp2p over TCP and QUIC), requests that hop
// across them — each hop recorded on its own node, under one trace — live
// replication progress, and one request's timeline as any node sees it.
//
//	go run ./examples/cluster                 # 5 nodes, 5,000 requests
//	go run ./examples/cluster -nodes 8 -requests 10000
//
// It exits 0 only if every node ends with the same events in the same order.
package main

import (
	"context"
	"crypto/sha256"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"github.com/scopemesh/scopemesh"
	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/query"
)

func main() {
	nodes := flag.Int("nodes", 5, "number of nodes (at least 2)")
	requests := flag.Int("requests", 5000, "number of simulated requests (each records 4 to 6 events)")
	timeout := flag.Duration("timeout", 45*time.Second, "give up if the cluster has not converged by then")
	flag.Parse()
	if err := run(*nodes, *requests, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		os.Exit(1)
	}
}

func run(count, requests int, timeout time.Duration) error {
	if count < 2 || requests < 1 {
		return fmt.Errorf("need at least 2 nodes and 1 request")
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	fmt.Printf("Starting %d nodes on loopback...\n", count)
	c, err := startCluster(ctx, count)
	if err != nil {
		return err
	}
	defer c.close()
	if err := c.waitMeshed(ctx); err != nil {
		return err
	}

	fmt.Printf("Simulating %d requests that cross nodes...\n", requests)
	start := time.Now()
	var sample events.TraceID
	total := 0
	for i := range requests {
		trace, n, err := c.request(ctx, i)
		if err != nil {
			return err
		}
		total += n
		if i == requests/2 {
			sample = trace
		}
	}
	recorded := time.Now()
	fmt.Printf("Recorded %d events in %v. Replicating:\n", total, recorded.Sub(start).Round(time.Millisecond))

	converged, err := c.showProgress(ctx, total)
	if err != nil {
		return err
	}
	if err := c.checkSameOrder(ctx, total); err != nil {
		return err
	}
	fmt.Printf("\nConverged: all %d nodes hold the same %d events in the same order (%v after the last record).\n\n",
		count, total, converged.Sub(recorded).Round(time.Millisecond))
	return c.printTimeline(ctx, sample)
}

// cluster is the demo's nodes, with short names for printing.
type cluster struct {
	nodes []*scopemesh.Node
	names map[string]string // peer ID → "node-1"...
	prop  []events.Propagator
	rng   *rand.Rand
}

func startCluster(ctx context.Context, count int) (*cluster, error) {
	c := &cluster{names: map[string]string{}, rng: rand.New(rand.NewPCG(1, 2))}
	// A cluster name of this run's own: nothing else on the machine joins.
	name := fmt.Sprintf("demo-%d", time.Now().UnixNano())
	for i := range count {
		cfg := scopemesh.Config{
			Name:        fmt.Sprintf("node-%d", i+1),
			Cluster:     name,
			ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"},
			DisableMDNS: true, // stay on loopback; members find each other through the DHT
			DHT:         scopemesh.DHTServer,
		}
		if i > 0 {
			cfg.Bootstrap = c.nodes[0].Addrs()[:1]
		}
		n, err := scopemesh.Open(ctx, cfg)
		if err != nil {
			c.close()
			return nil, err
		}
		c.nodes = append(c.nodes, n)
		c.names[n.ID()] = cfg.Name
		c.prop = append(c.prop, events.Propagator{Clock: n.Clock()})
	}
	return c, nil
}

func (c *cluster) close() {
	for _, n := range c.nodes {
		n.Close()
	}
}

// waitMeshed waits until every node has three others in its gossip mesh
// (all, in a smaller cluster): the nodes keep 3 to 8 mesh peers.
func (c *cluster) waitMeshed(ctx context.Context) error {
	for {
		ready := 0
		for _, n := range c.nodes {
			in := 0
			for _, p := range n.Peers() {
				if p.InMesh {
					in++
				}
			}
			if in >= min(len(c.nodes)-1, 3) {
				ready++
			}
		}
		if ready == len(c.nodes) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("nodes did not find each other: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// request simulates one request: it enters on a node, which calls a service
// on a second node, which queries a third; the answers travel back. Every
// hop is recorded on the node where it happens, and the trace context moves
// between nodes as it would over HTTP: injected into headers, extracted on
// the other side, which also moves the receiver's clock past the sender's.
func (c *cluster) request(ctx context.Context, i int) (events.TraceID, int, error) {
	entry, svc, db := c.pick3()
	ctx = events.ContextWithTrace(ctx, events.NewTraceID())
	trace, _ := events.TraceFromContext(ctx)
	recorded := 0
	record := func(ctx context.Context, node int, kind string, attrs map[string]string) (context.Context, error) {
		e, err := c.nodes[node].Record(ctx, events.Event{Kind: kind, Attrs: attrs})
		recorded++
		return events.ContextWithParent(ctx, e.ID), err
	}
	// call carries ctx from one node to another, as headers would.
	call := func(ctx context.Context, from, to int) context.Context {
		headers := events.MapCarrier{}
		c.prop[from].Inject(ctx, headers)
		return c.prop[to].Extract(context.Background(), headers)
	}

	path := fmt.Sprintf("/cart/%d", i)
	ctxA, err := record(ctx, entry, "http.request", map[string]string{"path": path})
	if err != nil {
		return trace, recorded, err
	}
	ctxB, err := record(call(ctxA, entry, svc), svc, "rpc.call", map[string]string{"method": "Cart.Get"})
	if err != nil {
		return trace, recorded, err
	}
	queries := 1 + c.rng.IntN(3)
	for q := range queries {
		ctxC, err := record(call(ctxB, svc, db), db, "db.query", map[string]string{"table": "carts", "n": fmt.Sprint(q)})
		if err != nil {
			return trace, recorded, err
		}
		call(ctxC, db, svc) // the answer: it moves the service's clock past the query
	}
	ctxB, err = record(ctxB, svc, "rpc.reply", map[string]string{"status": "OK"})
	if err != nil {
		return trace, recorded, err
	}
	_, err = record(call(ctxB, svc, entry), entry, "http.response", map[string]string{"status": "200"})
	return trace, recorded, err
}

// pick3 returns three different nodes.
func (c *cluster) pick3() (int, int, int) {
	p := c.rng.Perm(len(c.nodes))
	if len(p) < 3 {
		return p[0], p[1], p[0]
	}
	return p[0], p[1], p[2]
}

// showProgress draws a bar per node until every node holds total events —
// redrawn in place on a terminal, once a second otherwise — and returns
// when they all did, found by polling every 5 ms.
func (c *cluster) showProgress(ctx context.Context, total int) (time.Time, error) {
	const width = 40
	every, redraw := time.Second, false
	if info, err := os.Stdout.Stat(); err == nil && info.Mode()&os.ModeCharDevice != 0 {
		every, redraw = 100*time.Millisecond, true
	}
	var drawn time.Time
	held := make([]int, len(c.nodes))
	for {
		done := 0
		for i, n := range c.nodes {
			if held[i] = n.Status().Events; held[i] >= total {
				done++
			}
		}
		now := time.Now()
		if done == len(c.nodes) || now.Sub(drawn) >= every {
			var b strings.Builder
			if redraw && !drawn.IsZero() {
				fmt.Fprintf(&b, "\x1b[%dA", len(c.nodes)) // back to the first bar
			}
			for i, n := range c.nodes {
				filled := width * min(held[i], total) / total
				fmt.Fprintf(&b, "  %-7s [%s%s] %6d/%d\n", c.names[n.ID()],
					strings.Repeat("#", filled), strings.Repeat(".", width-filled), held[i], total)
			}
			fmt.Print(b.String())
			drawn = now
		}
		if done == len(c.nodes) {
			return now, nil
		}
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("the cluster did not converge: %w", ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// checkSameOrder compares every node's full ordered sequence.
func (c *cluster) checkSameOrder(ctx context.Context, total int) error {
	var want [32]byte
	for i, n := range c.nodes {
		h := sha256.New()
		seen := 0
		f := query.Filter{Limit: query.MaxLimit}
		for {
			page, err := n.Query(ctx, f)
			if err != nil {
				return err
			}
			if len(page) == 0 {
				break
			}
			for _, e := range page {
				h.Write(e.ID[:])
			}
			seen += len(page)
			f.After = query.CursorOf(page[len(page)-1])
		}
		var sum [32]byte
		copy(sum[:], h.Sum(nil))
		if seen != total {
			return fmt.Errorf("%s holds %d events, want %d", c.names[n.ID()], seen, total)
		}
		if i == 0 {
			want = sum
		} else if sum != want {
			return fmt.Errorf("%s lists the events in a different order than %s", c.names[n.ID()], c.names[c.nodes[0].ID()])
		}
	}
	return nil
}

// printTimeline prints one request as the last node sees it: the whole
// cluster's events of that trace, one lane per node.
func (c *cluster) printTimeline(ctx context.Context, trace events.TraceID) error {
	viewer := c.nodes[len(c.nodes)-1]
	t, err := viewer.Trace(ctx, trace)
	if err != nil {
		return err
	}
	fmt.Printf("One request, as %s sees it:\n", c.names[viewer.ID()])
	return t.Render(os.Stdout, query.RenderOptions{}) // lanes named by the members' names
}
