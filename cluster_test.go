package scopemesh

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/query"
)

// loopbackCluster starts n nodes on loopback, each bootstrapped from the
// first, with sync every interval, and waits until every node has every
// other connected.
func loopbackCluster(t *testing.T, n int, interval time.Duration) []*Node {
	t.Helper()
	seed := open(t, isolated(t, Config{SyncInterval: interval}))
	nodes := []*Node{seed}
	for range n - 1 {
		nodes = append(nodes, open(t, isolated(t, Config{SyncInterval: interval, Bootstrap: addrsWith(seed, "/tcp/")})))
	}
	for _, a := range nodes[1:] {
		for _, b := range nodes[1:] {
			if a != b {
				if err := a.Connect(context.Background(), addrsWith(b, "/tcp/")[0]); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	eventually(t, 20*time.Second, "every node to connect to every other", func() bool { return connectedToAll(nodes, nodes, false) })
	return nodes
}

func TestPartitionByDisconnectHealsOverTCP(t *testing.T) {
	ctx := context.Background()
	nodes := loopbackCluster(t, 3, time.Minute)
	lone, rest := nodes[0], nodes[1:]
	cut := func() {
		for _, n := range rest {
			if err := lone.Disconnect(n.ID()); err != nil {
				t.Fatal(err)
			}
			if err := n.Disconnect(lone.ID()); err != nil {
				t.Fatal(err)
			}
		}
	}
	cut()
	for i := range 300 {
		if _, err := lone.Record(ctx, events.Event{Kind: "alone"}); err != nil {
			t.Fatal(err)
		}
		if _, err := rest[i%2].Record(ctx, events.Event{Kind: "together"}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 20*time.Second, "each side to converge on its own", func() bool {
		return converged(t, rest, 300) && converged(t, nodes[:1], 300)
	})
	for _, n := range rest {
		if err := lone.Connect(ctx, addrsWith(n, "/tcp/")[0]); err != nil {
			t.Fatal(err)
		}
		if err := n.Connect(ctx, addrsWith(lone, "/tcp/")[0]); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 30*time.Second, "the healed cluster to converge", func() bool { return converged(t, nodes, 600) })

	results, err := lone.Sync(ctx)
	if err != nil || len(results) != 2 {
		t.Fatalf("Sync = %v, %v", results, err)
	}
	for id, res := range results {
		if res.Err != nil || !res.InSync {
			t.Fatalf("sync with %s: %+v", id, res)
		}
	}
}

// TestTraceAcrossHTTPServices has three services, each on its own node,
// call each other over HTTP with the propagation middleware; one request
// reconstructs as one trace from any node.
func TestTraceAcrossHTTPServices(t *testing.T) {
	ctx := context.Background()
	nodes := loopbackCluster(t, 3, time.Minute)
	// service i handles a request by recording it, calling the services in
	// calls[i] (concurrently if more than one), and recording the reply.
	calls := map[int][]int{0: {1}, 1: {2, 2}, 2: nil}
	urls := make([]string, 3)
	for i, n := range nodes {
		prop := events.Propagator{Clock: n.Clock()}
		client := &http.Client{Transport: prop.Transport(nil)}
		srv := httptest.NewServer(prop.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			in, err := n.Record(r.Context(), events.Event{Kind: "http.server", Attrs: map[string]string{"path": r.URL.Path}})
			if err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			cctx := events.ContextWithParent(r.Context(), in.ID)
			done := make(chan error, len(calls[i]))
			for _, callee := range calls[i] {
				go func() {
					req, _ := http.NewRequestWithContext(cctx, "GET", urls[callee]+fmt.Sprint("/from/", i), nil)
					resp, err := client.Do(req)
					if err == nil {
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
					done <- err
				}()
			}
			for range calls[i] {
				if err := <-done; err != nil {
					http.Error(w, err.Error(), 502)
					return
				}
			}
			n.Record(cctx, events.Event{Kind: "http.reply"})
		})))
		t.Cleanup(srv.Close)
		urls[i] = srv.URL
	}

	reqCtx := events.ContextWithTrace(ctx, events.NewTraceID())
	trace, _ := events.TraceFromContext(reqCtx)
	req, _ := http.NewRequestWithContext(reqCtx, "GET", urls[0]+"/checkout", nil)
	resp, err := (&http.Client{Transport: events.Propagator{Clock: nodes[0].Clock()}.Transport(nil)}).Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("request: %v %v", resp, err)
	}
	resp.Body.Close()

	// 1 + 1 + 2 server events and as many replies.
	const want = 8
	for i, n := range nodes {
		tr, err := n.Trace(ctx, trace)
		if err != nil {
			t.Fatal(err)
		}
		if len(tr.Events) != want || !tr.Complete || len(tr.Gaps) != 0 {
			t.Fatalf("node %d: trace of %d events (complete %v, gaps %v), want %d", i, len(tr.Events), tr.Complete, tr.Gaps, want)
		}
		root := tr.Roots()
		if len(root) != 1 || root[0].Node != nodes[0].ID() {
			t.Fatalf("node %d: roots %v", i, root)
		}
		var db []events.Event
		for _, e := range tr.Events {
			if e.Node == nodes[2].ID() && e.Kind == "http.server" {
				db = append(db, e)
			}
			if p, ok := tr.Event(e.Parent); ok && !p.Time.Less(e.Time) {
				t.Fatalf("node %d: %s at %v is not after its parent %s at %v", i, e.Kind, e.Time, p.Kind, p.Time)
			}
		}
		if len(db) != 2 || !tr.Concurrent(db[0].ID, db[1].ID) || !tr.HappenedBefore(root[0].ID, db[0].ID) {
			t.Fatalf("node %d: the two concurrent calls are not reported concurrent", i)
		}
	}
}

func TestClusterQueryDuringPartition(t *testing.T) {
	ctx := context.Background()
	nodes := loopbackCluster(t, 3, time.Minute)
	for i, n := range nodes {
		for range 10 {
			if _, err := n.Record(ctx, events.Event{Kind: fmt.Sprint("from-", i)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	eventually(t, 20*time.Second, "the cluster to converge", func() bool { return converged(t, nodes, 30) })
	lone := nodes[0]
	for _, n := range nodes[1:] {
		lone.Disconnect(n.ID())
		n.Disconnect(lone.ID())
		if _, err := n.Record(ctx, events.Event{Kind: "while-cut"}); err != nil {
			t.Fatal(err)
		}
	}
	res, err := lone.QueryCluster(ctx, query.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	// Disconnect refuses the peers: they are no longer members it asks.
	if len(res.Events) != 30 {
		t.Fatalf("query during the cut: %d events, want the 30 held locally", len(res.Events))
	}
	for _, n := range nodes[1:] {
		if err := lone.Connect(ctx, addrsWith(n, "/tcp/")[0]); err != nil {
			t.Fatal(err)
		}
		n.Connect(ctx, addrsWith(lone, "/tcp/")[0])
	}
	eventually(t, 20*time.Second, "a complete answer after the heal", func() bool {
		res, err := lone.QueryCluster(ctx, query.Filter{})
		return err == nil && res.Complete && len(res.Events) == 32
	})
}

func TestClusterQueryPagination(t *testing.T) {
	ctx := context.Background()
	nodes := loopbackCluster(t, 3, time.Minute)
	// Each node records events the others do not get: the cluster query is
	// the only way to see them all.
	for _, n := range nodes {
		for _, p := range nodes {
			if p != n {
				n.Disconnect(p.ID())
			}
		}
	}
	for i, n := range nodes {
		for j := range 40 {
			if _, err := n.Record(ctx, events.Event{Kind: "page", Attrs: map[string]string{"i": fmt.Sprint(i, "-", j)}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, n := range nodes {
		for _, p := range nodes {
			if p != n {
				n.Connect(ctx, addrsWith(p, "/tcp/")[0])
			}
		}
	}
	seen := map[events.ID]bool{}
	f := query.Filter{Kinds: []string{"page"}, Limit: 7}
	for pages := 0; ; pages++ {
		res, err := nodes[0].QueryCluster(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range res.Events {
			if seen[e.ID] {
				t.Fatalf("event listed twice across pages")
			}
			seen[e.ID] = true
		}
		if res.Next.IsZero() {
			break
		}
		if pages > 100 {
			t.Fatal("pagination does not end")
		}
		f.After = res.Next
	}
	if len(seen) != 120 {
		t.Fatalf("pages listed %d events, want 120", len(seen))
	}
}

func TestSubscribeDeliversRemoteEvents(t *testing.T) {
	ctx := context.Background()
	nodes := loopbackCluster(t, 2, time.Minute)
	sub, err := nodes[1].Subscribe(ctx, query.Filter{Kinds: []string{"wanted"}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	sent, err := nodes[0].Record(ctx, events.Event{Kind: "wanted"})
	if err != nil {
		t.Fatal(err)
	}
	wait, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	got, err := sub.Next(wait)
	if err != nil || got.ID != sent.ID {
		t.Fatalf("Next = %v, %v; want the remote event %v", got.ID, err, sent.ID)
	}
}

// TestClusterQueryPagesAtTheRemoteLimit: a cluster query asks for at most
// query.MaxRemoteLimit events, however many the filter names, and Trace
// pages through a trace that holds more.
func TestClusterQueryPagesAtTheRemoteLimit(t *testing.T) {
	ctx := events.ContextWithTrace(context.Background(), events.NewTraceID())
	trace, _ := events.TraceFromContext(ctx)
	n := open(t, isolated(t, Config{}))
	const count = query.MaxRemoteLimit + 5
	for range count {
		if _, err := n.Record(ctx, events.Event{Kind: "step"}); err != nil {
			t.Fatal(err)
		}
	}
	res, err := n.QueryCluster(ctx, query.Filter{Correlation: trace, Limit: query.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Events) != query.MaxRemoteLimit || res.Next.IsZero() || !res.Complete {
		t.Fatalf("a cluster query of %d events with Limit %d: %d events, next %v, complete %v", count, query.MaxLimit, len(res.Events), res.Next, res.Complete)
	}
	tr, err := n.Trace(ctx, trace)
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Events) != count || !tr.Complete {
		t.Fatalf("trace of %d events (complete %v), want %d", len(tr.Events), tr.Complete, count)
	}
}
