package scopemesh

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"

	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/internal/poll"
	"github.com/scopemesh/scopemesh/query"
)

// mockCluster opens n nodes named node-0, node-1, … on hosts of one
// mocknet where any may dial any other, with discovery off: they know of
// each other only as the test has them join.
func mockCluster(t *testing.T, n int) []*Node {
	t.Helper()
	mn := mocknet.New()
	t.Cleanup(func() { mn.Close() })
	nodes := make([]*Node, n)
	for i := range nodes {
		h, err := mn.GenPeer()
		if err != nil {
			t.Fatal(err)
		}
		nodes[i] = open(t, Config{Host: h, Name: fmt.Sprintf("node-%d", i), Cluster: t.Name(), DisableMDNS: true, DHT: DHTOff})
	}
	if err := mn.LinkAll(); err != nil {
		t.Fatal(err)
	}
	return nodes
}

// joinTo has nodes[i] join nodes[to...].
func joinTo(t *testing.T, nodes []*Node, i int, to ...int) {
	t.Helper()
	var addrs []string
	for _, j := range to {
		addrs = append(addrs, nodes[j].Addrs()[0])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := nodes[i].Join(ctx, addrs...); err != nil {
		t.Fatalf("node %d joining %v: %v", i, to, err)
	}
}

// viewsConverge waits until every node lists every other by name, and
// says how long that took.
func viewsConverge(t *testing.T, nodes []*Node, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	poll.Until(t, within, "every node to list every member by name", func() bool {
		for _, a := range nodes {
			names := map[string]bool{}
			for _, p := range a.Peers() {
				if p.State != StateLeft {
					names[p.Name] = true
				}
			}
			for j, b := range nodes {
				if a != b && !names[fmt.Sprintf("node-%d", j)] {
					return false
				}
			}
		}
		return true
	})
	return time.Since(start)
}

// queriesFind records an event on each of some nodes and checks that a
// cluster query from each of some others returns it, complete.
func queriesFind(t *testing.T, nodes []*Node, pairs int) {
	t.Helper()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(uint64(len(nodes)), 7))
	for range pairs {
		from, at := rng.IntN(len(nodes)), rng.IntN(len(nodes))
		e, err := nodes[at].Record(ctx, events.Event{Kind: "probe", Attrs: map[string]string{"from": fmt.Sprint(from)}})
		if err != nil {
			t.Fatal(err)
		}
		res, err := nodes[from].QueryCluster(ctx, query.Filter{Kinds: []string{"probe"}, Attrs: map[string]string{"from": fmt.Sprint(from)}})
		if err != nil {
			t.Fatal(err)
		}
		found := slices.ContainsFunc(res.Events, func(x events.Event) bool { return x.ID == e.ID })
		if !found || !res.Complete || len(res.Peers) != len(nodes)-1 {
			t.Fatalf("a query from node %d for an event on node %d: found %v, complete %v, %d answers: %+v",
				from, at, found, res.Complete, len(res.Peers), res.Peers)
		}
	}
}

func TestClusterViewChain(t *testing.T) {
	nodes := mockCluster(t, 6)
	for i := 1; i < len(nodes); i++ {
		joinTo(t, nodes, i, i-1)
	}
	t.Logf("a chain of 6: views converged %v after the last join", viewsConverge(t, nodes, 10*time.Second))
	queriesFind(t, nodes, 10)
}

func TestClusterViewStar(t *testing.T) {
	nodes := mockCluster(t, 6)
	for i := 1; i < len(nodes); i++ {
		joinTo(t, nodes, i, 0)
	}
	t.Logf("a star of 6: views converged %v after the last join", viewsConverge(t, nodes, 10*time.Second))
	queriesFind(t, nodes, 10)
}

// TestClusterQueryBeforeJoining: a node that has discovery to wait for
// says its cluster queries are incomplete until it has joined.
func TestClusterQueryBeforeJoining(t *testing.T) {
	n := open(t, Config{Cluster: t.Name(), ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, DHT: DHTOff})
	res, err := n.QueryCluster(context.Background(), query.Filter{})
	if err != nil || res.Complete {
		t.Fatalf("a query before joining: complete %v, %v", res.Complete, err)
	}
	if st := n.Status(); st.Joined {
		t.Fatal("Status says the node joined before it found anyone")
	}
}

// TestClusterViewLeaveAndForget: a member that closes is left everywhere
// and queries stay complete; one that vanishes makes them incomplete,
// naming it, until Forget.
func TestClusterViewLeaveAndForget(t *testing.T) {
	nodes := mockCluster(t, 4)
	for i := 1; i < len(nodes); i++ {
		joinTo(t, nodes, i, i-1)
	}
	viewsConverge(t, nodes, 10*time.Second)
	left := nodes[3].ID()
	if err := nodes[3].Close(); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 2*time.Second, "the others to list the closed node as left", func() bool {
		for _, n := range nodes[:3] {
			if !slices.ContainsFunc(n.Peers(), func(p PeerInfo) bool { return p.ID == left && p.State == StateLeft }) {
				return false
			}
		}
		return true
	})
	if res, err := nodes[0].QueryCluster(context.Background(), query.Filter{}); err != nil || !res.Complete {
		t.Fatalf("with a member that left: complete %v, %v, %+v", res.Complete, err, res.Peers)
	}
}

// TestRestartedNodeRedialsTheMembersItKnew: a node on a data directory
// that restarts without Bootstrap knows the members it knew, and dials
// them.
func TestRestartedNodeRedialsTheMembersItKnew(t *testing.T) {
	ctx := context.Background()
	a := open(t, isolated(t, Config{Name: "a"}))
	dir := t.TempDir()
	cfg := isolated(t, Config{Name: "b", DataDir: dir})
	b, err := Open(ctx, isolated(t, Config{Name: "b", DataDir: dir, Bootstrap: addrsWith(a, "/tcp/")}))
	if err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 20*time.Second, "b to hold a's record", func() bool { return nameOf(b, a.ID()) == "a" })
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	b = open(t, cfg) // no Bootstrap
	if nameOf(b, a.ID()) != "a" {
		t.Fatalf("the restarted node does not know a: %+v", b.Peers())
	}
	poll.Until(t, 20*time.Second, "the restarted node to connect to a", func() bool {
		return infoOf(b, a.ID()).Connected && infoOf(a, b.ID()).Connected
	})
}

// nameOf returns the name n knows the member id by, if any.
func nameOf(n *Node, id string) string { return infoOf(n, id).Name }

// infoOf returns what n knows of the member id.
func infoOf(n *Node, id string) PeerInfo {
	for _, p := range n.Peers() {
		if p.ID == id {
			return p
		}
	}
	return PeerInfo{}
}
