package scopemesh

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/internal/netns"
	"github.com/scopemesh/scopemesh/internal/poll"
	"github.com/scopemesh/scopemesh/query"
)

// These tests run nodes on real loopback sockets.

// eventually polls cond until it holds or the deadline passes.
var eventually = poll.Until

// addrsWith returns the addresses of n that contain part.
func addrsWith(n *Node, part string) []string {
	var out []string
	for _, a := range n.Addrs() {
		if strings.Contains(a, part) {
			out = append(out, a)
		}
	}
	return out
}

// connectedToAll reports whether each of nodes has all the others of
// cluster connected as a member (and in its gossip mesh, if inMesh).
func connectedToAll(nodes, cluster []*Node, inMesh bool) bool {
	for _, n := range nodes {
		ok := 0
		for _, p := range n.Peers() {
			if p.Connected && p.Member && (!inMesh || p.InMesh) {
				ok++
			}
		}
		if ok < len(cluster)-1 {
			return false
		}
	}
	return true
}

// converged reports whether every node lists the same events, and how many.
func converged(t testing.TB, nodes []*Node, want int) bool {
	var first []events.ID
	for i, n := range nodes {
		evs, err := n.Query(context.Background(), query.Filter{Limit: query.MaxLimit})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != want {
			return false
		}
		ids := make([]events.ID, len(evs))
		for j, e := range evs {
			ids[j] = e.ID
		}
		if i == 0 {
			first = ids
		} else if !slices.Equal(ids, first) {
			return false
		}
	}
	return true
}

func TestBootstrapOverTCPAndQUIC(t *testing.T) {
	for _, transport := range []string{"/tcp/", "/quic-v1"} {
		t.Run(strings.Trim(transport, "/"), func(t *testing.T) {
			ctx := context.Background()
			seed := open(t, isolated(t, Config{}))
			nodes := []*Node{seed}
			for range 2 {
				cfg := isolated(t, Config{Bootstrap: addrsWith(seed, transport)})
				cfg.ListenAddrs = slices.DeleteFunc(cfg.ListenAddrs, func(a string) bool { return !strings.Contains(a+"/", transport) })
				n, err := Open(ctx, cfg)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { n.Close() })
				nodes = append(nodes, n)
			}
			// The seed relays: the others know only the seed.
			eventually(t, 20*time.Second, "the seed to mesh with every node", func() bool { return connectedToAll(nodes[:1], nodes, true) })
			const each = 200
			for i := range each {
				for _, n := range nodes {
					if _, err := n.Record(ctx, events.Event{Kind: fmt.Sprint("step-", i%5)}); err != nil {
						t.Fatal(err)
					}
				}
			}
			eventually(t, 20*time.Second, "every node to hold the same events", func() bool { return converged(t, nodes, each*len(nodes)) })
		})
	}
}

func TestMDNSFindsLocalPeers(t *testing.T) {
	// mDNS multicasts: keep it inside a namespace of the test's own.
	if !netns.Inside() {
		netns.Run(t)
		return
	}
	var nodes, strangers []*Node
	for range 2 {
		cfg := isolated(t, Config{})
		cfg.DisableMDNS = false
		nodes = append(nodes, open(t, cfg))
		// Nodes that name no cluster, as a program that sets nothing but
		// a DataDir opens them, look for no one.
		strangers = append(strangers, open(t, Config{ListenAddrs: cfg.ListenAddrs}))
	}
	eventually(t, 20*time.Second, "the two nodes to find each other", func() bool { return connectedToAll(nodes, nodes, false) })
	for _, s := range strangers {
		if st := s.Status(); st.Connected != 0 || len(st.Peers) != 0 {
			t.Fatalf("a node of no cluster found peers by itself: %+v", st.Peers)
		}
	}
}

func TestPrivateDHTFromOneBootstrapAddress(t *testing.T) {
	cfg := isolated(t, Config{})
	cfg.DHT = DHTServer
	seed := open(t, cfg)
	nodes := []*Node{seed}
	for range 5 {
		cfg := isolated(t, Config{Bootstrap: addrsWith(seed, "/tcp/")[:1]})
		cfg.DHT = DHTServer
		nodes = append(nodes, open(t, cfg))
	}
	eventually(t, 60*time.Second, "all six nodes to find each other through the DHT", func() bool { return connectedToAll(nodes, nodes, false) })
}
