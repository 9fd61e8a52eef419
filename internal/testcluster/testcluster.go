package testcluster

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/scopemesh/scopemesh"
	"github.com/scopemesh/scopemesh/internal/poll"
)

// Open opens a node named name on loopback TCP, in a cluster named after
// t, that finds no peers by itself. It closes when t ends.
func Open(t testing.TB, name string) *scopemesh.Node {
	t.Helper()
	node, err := scopemesh.Open(context.Background(), scopemesh.Config{
		Cluster:     t.Name(),
		Name:        name,
		ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"},
		DisableMDNS: true,
		DHT:         scopemesh.DHTOff,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { node.Close() })
	return node
}

// Start opens n nodes of a cluster named after t on loopback TCP, with
// discovery off, named node-1 to node-n, connects every pair, and waits
// until each has every other connected, named and in its gossip mesh, so
// that what one records reaches the others by gossip. The nodes close
// when t ends.
func Start(t testing.TB, n int) []*scopemesh.Node {
	t.Helper()
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("node-%d", i+1)
	}
	return StartNamed(t, names...)
}

// StartNamed starts a cluster as Start does, of one node per name.
func StartNamed(t testing.TB, names ...string) []*scopemesh.Node {
	t.Helper()
	ctx := context.Background()
	n := len(names)
	nodes := make([]*scopemesh.Node, n)
	for i := range nodes {
		nodes[i] = Open(t, names[i])
	}
	for i, a := range nodes {
		for _, b := range nodes[i+1:] {
			if err := a.Connect(ctx, tcpAddr(t, b)); err != nil {
				t.Fatal(err)
			}
		}
	}
	poll.Until(t, 20*time.Second, "every node to have every other connected, named and in its gossip mesh", func() bool {
		for _, node := range nodes {
			ok := 0
			for _, p := range node.Peers() {
				if p.State == scopemesh.StateConnected && p.Member && p.InMesh && p.Name != "" {
					ok++
				}
			}
			if ok < n-1 {
				return false
			}
		}
		return true
	})
	return nodes
}

// tcpAddr returns a TCP address of node.
func tcpAddr(t testing.TB, node *scopemesh.Node) string {
	t.Helper()
	for _, a := range node.Addrs() {
		if strings.Contains(a, "/tcp/") {
			return a
		}
	}
	t.Fatalf("node %s has no TCP address among %v", node.ID(), node.Addrs())
	return ""
}
