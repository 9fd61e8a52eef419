package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/ipfs/go-datastore"

	"github.com/scopemesh/scopemesh"
	"github.com/scopemesh/scopemesh/bench/internal/cluster"
	"github.com/scopemesh/scopemesh/bench/internal/memstore"
	"github.com/scopemesh/scopemesh/bench/internal/report"
	"github.com/scopemesh/scopemesh/crdt"
	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/internal/fixture"
	"github.com/scopemesh/scopemesh/query"
)

type queryParams struct {
	N        int `json:"n"`         // events on the single node
	Nodes    int `json:"nodes"`     // nodes of the cluster part; 0 skips it
	ClusterN int `json:"cluster_n"` // events every cluster node holds (the same on all: a converged cluster)
	TraceLen int `json:"trace_len"`
	Samples  int `json:"samples"`
}

type queryResult struct {
	Where   string           `json:"where"` // "local" or "cluster"
	N       int              `json:"n"`
	Nodes   int              `json:"nodes"`
	Query   string           `json:"query"`
	Results int              `json:"results"`
	Latency report.Latencies `json:"latency"`
}

func runQuery(ctx context.Context, e *env, args []string) error {
	p := queryParams{N: 1_000_000, Nodes: 5, ClusterN: 100_000, TraceLen: 20, Samples: 1000}
	fs := e.flags("query")
	fs.IntVar(&p.N, "n", p.N, "events on the node of the local queries (up to 1,000,000 and beyond)")
	fs.IntVar(&p.Nodes, "nodes", p.Nodes, "nodes of the cluster queries; 0 skips them")
	fs.IntVar(&p.ClusterN, "cluster-n", p.ClusterN, "events every cluster node holds")
	fs.IntVar(&p.TraceLen, "trace-len", p.TraceLen, "events of the trace queried")
	fs.IntVar(&p.Samples, "samples", p.Samples, "times each query runs")
	if err := e.parse(fs, args); err != nil {
		return err
	}

	run := report.New("query", p)
	results, err := queryLocal(ctx, p)
	if err != nil {
		return err
	}
	if p.Nodes > 0 {
		cr, err := queryCluster(ctx, p)
		if err != nil {
			return err
		}
		results = append(results, cr...)
	}

	t := report.Table{Title: "queries", Header: []string{"where", "nodes", "events", "query", "results", "p50", "p90", "p99"}}
	for _, r := range results {
		t.Add(r.Where, r.Nodes, r.N, r.Query, r.Results, ms(r.Latency.P50ms), ms(r.Latency.P90ms), ms(r.Latency.P99ms))
	}
	t.Print(os.Stdout)
	return e.finish(run, results, queryTargets(results))
}

// queryTargets checks issue 6's figures: a 20-event trace at n = 1,000,000
// locally ≤ 100 µs; a cluster query on 5 loopback nodes ≤ 10 ms p50.
func queryTargets(rs []queryResult) []target {
	var ts []target
	for _, r := range rs {
		switch {
		case r.Where == "local" && r.Query == "Query: one trace" && r.N >= 1_000_000 && r.Results == 20:
			ts = append(ts, atMost("trace of 20 events at n = 1M, local (Query by trace)", r.Latency.P50ms*1000, 100, "µs"))
		case r.Where == "local" && r.Query == "Trace" && r.N >= 1_000_000 && r.Results == 20:
			ts = append(ts, atMost("trace of 20 events at n = 1M, local (Node.Trace)", r.Latency.P50ms*1000, 100, "µs"))
		case r.Where == "cluster" && r.Nodes == 5 && r.Query == "QueryCluster: one trace":
			ts = append(ts, atMost("cluster query on 5 loopback nodes, p50", r.Latency.P50ms, 10, "ms"))
		}
	}
	return ts
}

// fill returns an in-memory store holding n generated events, as a node's
// store would hold them. Merging straight into the set skips the clock and
// the network: what is measured is the queries, not the loading.
func fill(ctx context.Context, n int, seed uint64) (*memstore.Store, error) {
	store := memstore.New()
	set, err := crdt.New(ctx, store, crdt.Options{})
	if err != nil {
		return nil, err
	}
	defer set.Close()
	progress := report.Stderr("loading events", n)
	defer progress.Done()
	g := fixture.New(seed, 5)
	for done := 0; done < n; {
		k := min(1000, n-done)
		if _, err := set.Merge(ctx, g.Batch(k)); err != nil {
			return nil, err
		}
		done += k
		progress.Add(k)
	}
	return store, nil
}

// recordTrace records a trace of length events on the given nodes in turn,
// each event a child of an earlier one (a binary tree: a request fanning
// out), and returns its ID.
func recordTrace(ctx context.Context, nodes []*scopemesh.Node, length int) (events.TraceID, error) {
	id := events.NewTraceID()
	ctx = events.ContextWithTrace(ctx, id)
	var recorded []events.Event
	for k := range length {
		c := ctx
		if k > 0 {
			c = events.ContextWithParent(ctx, recorded[(k-1)/2].ID)
		}
		e, err := nodes[k%len(nodes)].Record(c, events.Event{Kind: "rpc.call", Attrs: map[string]string{"hop": fmt.Sprint(k)}})
		if err != nil {
			return id, err
		}
		recorded = append(recorded, e)
	}
	return id, nil
}

// namedQuery is one of the queries a run times.
type namedQuery struct {
	name string
	run  func() (int, error) // returns the number of events answered
}

// sampleAll runs each query samples times, taking them in turn, so that a
// burst of noise on a shared machine lands on all of them alike rather than
// on whichever was running, and returns each one's latencies and the size
// of its last answer. A collection first keeps the loading's garbage out.
func sampleAll(samples int, qs []namedQuery) ([]report.Latencies, []int, error) {
	runtime.GC()
	lat := make([][]time.Duration, len(qs))
	got := make([]int, len(qs))
	for range samples {
		for i, q := range qs {
			t := time.Now()
			n, err := q.run()
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", q.name, err)
			}
			lat[i] = append(lat[i], time.Since(t))
			got[i] = n
		}
	}
	out := make([]report.Latencies, len(qs))
	for i := range qs {
		out[i] = report.Summarise(lat[i])
	}
	return out, got, nil
}

func queryLocal(ctx context.Context, p queryParams) ([]queryResult, error) {
	store, err := fill(ctx, p.N, 1)
	if err != nil {
		return nil, err
	}
	defer store.Close()
	t0 := time.Now()
	node, err := scopemesh.Open(ctx, scopemesh.Config{
		Cluster: "bench-query-local", Datastore: store,
		ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, DisableMDNS: true, DHT: scopemesh.DHTOff,
		Retention: -1, // the fixture's events are from long ago
	})
	if err != nil {
		return nil, err
	}
	defer node.Close()
	fmt.Fprintf(os.Stderr, "opened a node holding %s events in %s\n", report.Int(int64(p.N)), report.Duration(time.Since(t0)))
	trace, err := recordTrace(ctx, []*scopemesh.Node{node}, p.TraceLen)
	if err != nil {
		return nil, err
	}
	n := node.Status().Events
	all, err := node.Query(ctx, query.Filter{Limit: 2})
	if err != nil || len(all) < 2 {
		return nil, fmt.Errorf("listing the first events: %v", err)
	}
	queries := []namedQuery{
		{"Query: one trace", func() (int, error) {
			evs, err := node.Query(ctx, query.Filter{Correlation: trace})
			return len(evs), err
		}},
		{"Trace", func() (int, error) {
			t, err := node.Trace(ctx, trace)
			return len(t.Events), err
		}},
		{"Query: newest 100 of a kind", func() (int, error) {
			evs, err := node.Query(ctx, query.Filter{Kinds: []string{"db.query"}, Limit: 100, Descending: true})
			return len(evs), err
		}},
		{"Query: newest 100 of a node", func() (int, error) {
			evs, err := node.Query(ctx, query.Filter{Nodes: []string{all[0].Node}, Limit: 100, Descending: true})
			return len(evs), err
		}},
		{"Query: first 100 with an attribute", func() (int, error) {
			evs, err := node.Query(ctx, query.Filter{Attrs: map[string]string{"status": "500"}, Limit: 100})
			return len(evs), err
		}},
		{"Query: 1,000 in a time range", func() (int, error) {
			evs, err := node.Query(ctx, query.Filter{Since: all[1].Time, Limit: 1000})
			return len(evs), err
		}},
	}
	lat, got, err := sampleAll(p.Samples, queries)
	if err != nil {
		return nil, err
	}
	var out []queryResult
	for i, q := range queries {
		out = append(out, queryResult{Where: "local", N: n, Nodes: 1, Query: q.name, Results: got[i], Latency: lat[i]})
	}
	return out, nil
}

func queryCluster(ctx context.Context, p queryParams) ([]queryResult, error) {
	// Every node holds the same events, as a converged cluster does; a
	// cluster of differing nodes would first spend its time syncing.
	stores := make([]datastore.Batching, p.Nodes)
	for i := range stores {
		s, err := fill(ctx, p.ClusterN, 2)
		if err != nil {
			return nil, err
		}
		defer s.Close()
		stores[i] = s
	}
	fmt.Fprintf(os.Stderr, "starting %d nodes\n", p.Nodes)
	c, err := cluster.Start(ctx, cluster.Options{Nodes: p.Nodes, Name: fmt.Sprintf("bench-query-%d", time.Now().UnixNano()), Stores: stores})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	nodes := make([]*scopemesh.Node, len(c.Nodes))
	for i, m := range c.Nodes {
		nodes[i] = m.Node
	}
	trace, err := recordTrace(ctx, nodes, p.TraceLen)
	if err != nil {
		return nil, err
	}
	if _, err := c.WaitEvents(ctx, cluster.All(len(nodes)), p.ClusterN+p.TraceLen, time.Minute, 10*time.Millisecond, nil); err != nil {
		return nil, err
	}
	node := nodes[0]
	queries := []namedQuery{
		{"QueryCluster: one trace", func() (int, error) {
			r, err := node.QueryCluster(ctx, query.Filter{Correlation: trace})
			if err == nil && !r.Complete {
				err = fmt.Errorf("incomplete answer: %+v", r.Peers)
			}
			return len(r.Events), err
		}},
		{"Trace", func() (int, error) {
			t, err := node.Trace(ctx, trace)
			return len(t.Events), err
		}},
		{"QueryCluster: newest 100 of a kind", func() (int, error) {
			r, err := node.QueryCluster(ctx, query.Filter{Kinds: []string{"db.query"}, Limit: 100, Descending: true})
			return len(r.Events), err
		}},
	}
	lat, got, err := sampleAll(p.Samples, queries)
	if err != nil {
		return nil, err
	}
	var out []queryResult
	for i, q := range queries {
		out = append(out, queryResult{Where: "cluster", N: p.ClusterN + p.TraceLen, Nodes: p.Nodes, Query: q.name, Results: got[i], Latency: lat[i]})
	}
	return out, nil
}
