package scopemesh

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/query"
)

// TestCloseStopsEverything runs a small cluster with every service on —
// gossip, sync, queries, the DHT, a subscription — closes it, and checks
// that no goroutine of the nodes is left.
func TestCloseStopsEverything(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	ctx := context.Background()
	var nodes []*Node
	for i := range 3 {
		cfg := isolated(t, Config{SyncInterval: 100 * time.Millisecond, DataDir: t.TempDir()})
		cfg.DHT = DHTServer
		if i > 0 {
			cfg.Bootstrap = addrsWith(nodes[0], "/tcp/")
		}
		n, err := Open(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, n)
	}
	sub, err := nodes[2].Subscribe(ctx, query.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if _, err := n.Record(ctx, events.Event{Kind: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 20*time.Second, "the cluster to converge", func() bool { return converged(t, nodes, 3) })
	if _, err := nodes[0].QueryCluster(ctx, query.Filter{}); err != nil {
		t.Fatal(err)
	}
	nodes[0].Sync(ctx)
	sub.Close()
	for _, n := range nodes {
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
	}
	goleak.VerifyNone(t, ignore)
}
