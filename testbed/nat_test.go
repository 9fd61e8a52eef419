package testbed

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scopemesh/scopemesh/internal/gobuild"
)

// The checks run `scopemesh node` in the namespaces nat.sh builds — a public
// bootstrap and relay node and one node behind each of two home routers —
// and act and observe only through the scopemesh client commands.

// Transports the nodes listen on.
var (
	tcpAndQUIC = []string{"/tcp/4001", "/udp/4001/quic-v1"}
	tcpOnly    = []string{"/tcp/4001"}
)

// listenArgs are the --listen flags of an address on transports.
func listenArgs(ip string, transports []string) []string {
	var args []string
	for _, t := range transports {
		args = append(args, "--listen", "/ip4/"+ip+t)
	}
	return args
}

// edgeArgs are the flags of a node behind NAT that joins through pub.
func edgeArgs(pub *Node, transports []string) []string {
	args := append(listenArgs("0.0.0.0", transports),
		// Told, not found out: AutoNAT takes 15s or more to decide.
		"--reachability", "private",
	)
	// Both transports of the relay: a QUIC hole punch needs the node to
	// have learned its public QUIC address, which only a QUIC connection
	// to the relay tells it.
	for _, a := range pub.Addrs {
		args = append(args, "--bootstrap", a, "--relays", a)
	}
	return args
}

// startCluster starts the public node, then the two nodes behind NAT, all
// listening on transports.
func startCluster(n *Network, transports []string) (pub, h1, h2 *Node) {
	pub = n.Start("pub", append(listenArgs("11.0.0.1", transports),
		"--relay-service", "--reachability", "public", "--dht", "server")...)
	h1 = n.Start("h1", edgeArgs(pub, transports)...)
	h2 = n.Start("h2", edgeArgs(pub, transports)...)
	return pub, h1, h2
}

// connected checks that each node has each of the others connected.
func connected(nodes ...*Node) error {
	for _, a := range nodes {
		peers, err := a.Peers()
		if err != nil {
			return err
		}
		for _, b := range nodes {
			if a != b && !peers[b.ID].Connected {
				return fmt.Errorf("%s has no connection to %s", a.Name, b.Name)
			}
		}
	}
	return nil
}

// converged checks that every node holds the same events matching filter,
// want of them.
func converged(want int, filter []string, nodes ...*Node) error {
	var first []string
	for i, node := range nodes {
		ids, err := node.EventIDs(filter...)
		if err != nil {
			return err
		}
		if len(ids) != want {
			return fmt.Errorf("%s holds %d of the %d events", node.Name, len(ids), want)
		}
		if i == 0 {
			first = ids
		} else if !slices.Equal(ids, first) {
			return fmt.Errorf("%s and %s hold different events", nodes[0].Name, node.Name)
		}
	}
	return nil
}

// directConnection returns a direct (not relayed) connection from a to b,
// and the relayed one opened before it if there is one.
func directConnection(a, b *Node) (direct, relayed Connection, err error) {
	peers, err := a.Peers()
	if err != nil {
		return direct, relayed, err
	}
	for _, c := range peers[b.ID].Connections {
		if c.Relayed && relayed.Addr == "" {
			relayed = c
		}
		if !c.Relayed {
			return c, relayed, nil
		}
	}
	return direct, relayed, fmt.Errorf("%s reaches %s only through the relay, if at all", a.Name, b.Name)
}

// transport names the transport of a multiaddr.
func transport(addr string) string {
	switch {
	case strings.Contains(addr, "/quic-v1"):
		return "QUIC"
	case strings.Contains(addr, "/tcp/"):
		return "TCP"
	}
	return addr
}

// TestNAT runs the checks of a port-preserving NAT (join and replicate,
// hole punching, partition and heal) and of a port-randomising one
// (replication through the relay).
func TestNAT(t *testing.T) {
	RequireNetAdmin(t)
	bin := gobuild.Binary(t, "github.com/scopemesh/scopemesh/cmd/scopemesh")

	t.Run("PortPreservingNAT", func(t *testing.T) {
		n := NewNetwork(t, bin, false)
		pub, h1, h2 := startCluster(n, tcpAndQUIC)
		all := []*Node{pub, h1, h2}

		// 1. Both NAT-ed nodes join through the public node, and what each
		// records reaches the others.
		took := Poll(t, 60*time.Second, "the three nodes to connect", func() error { return connected(all...) })
		t.Logf("joined: every node connected to the two others %v after start", took.Round(time.Millisecond))
		for _, node := range all {
			node.Record("nat.join", "from="+node.Name)
		}
		took = Poll(t, 30*time.Second, "events from behind each NAT to reach every node", func() error {
			return converged(3, []string{"--kind", "nat.join"}, all...)
		})
		t.Logf("replicated: the events recorded on pub, h1 and h2 on every node %v after recording", took.Round(time.Millisecond))

		// 2. Hole punching gives h1 and h2 a direct connection.
		var direct, relayed Connection
		Poll(t, 30*time.Second, "a hole-punched connection between h1 and h2", func() (err error) {
			direct, relayed, err = directConnection(h1, h2)
			return err
		})
		t.Logf("hole punched: h1 has a direct %s connection to h2 at %s", transport(direct.Addr), direct.Addr)
		if relayed.Addr != "" {
			t.Logf("hole punched: %v after the relayed connection opened", direct.Opened.Sub(relayed.Opened).Round(time.Millisecond))
		}
		t.Logf("hole punching: %d attempts by h1 and h2, %d failed", h1.LogLines(`msg=holepunchConnect`)+h2.LogLines(`msg=holepunchConnect`),
			h1.LogLines(`msg="hole punch attempt with peer failed"`)+h2.LogLines(`msg="hole punch attempt with peer failed"`))
		if !strings.Contains(direct.Addr, "/11.0.0.12/") {
			t.Errorf("the direct connection to h2 is not through h2's router: %s", direct.Addr)
		}
		if _, _, err := directConnection(h2, h1); err != nil {
			t.Error(err)
		}

		// 4. r1's uplink fails: both sides keep recording.
		n.SetWAN("r1", false)
		cut := time.Now()
		h1.Record("nat.partition", "side=h1", "round=1")
		h2.Record("nat.partition", "side=h2", "round=1")
		pub.Record("nat.partition", "side=pub", "round=1")
		Poll(t, 30*time.Second, "the events of pub and h2 to replicate during the partition", func() error {
			return converged(2, []string{"--kind", "nat.partition"}, pub, h2)
		})
		if ids, err := h1.EventIDs("--kind", "nat.partition"); err != nil || len(ids) != 1 {
			t.Fatalf("h1 has %d partition events, err %v: the partition leaks", len(ids), err)
		}
		// Until the connections time out, nodes believe in them; wait for
		// that, so that the heal takes reconnecting.
		took = Poll(t, 120*time.Second, "pub to notice that h1 is gone", func() error {
			peers, err := pub.Peers()
			if err != nil {
				return err
			}
			if peers[h1.ID].Connected {
				return fmt.Errorf("pub still counts h1 connected")
			}
			return nil
		})
		t.Logf("partition: pub noticed h1 was gone %v after the cut", took.Round(time.Millisecond))
		h1.Record("nat.partition", "side=h1", "round=2")
		h2.Record("nat.partition", "side=h2", "round=2")

		n.SetWAN("r1", true)
		t.Logf("partition: lasted %v", time.Since(cut).Round(time.Millisecond))
		took = Poll(t, 90*time.Second, "every node to hold every event after the heal", func() error {
			return converged(5, []string{"--kind", "nat.partition"}, all...)
		})
		t.Logf("healed: all 5 events recorded during the partition on every node %v after the link came back", took.Round(time.Millisecond))
		took = Poll(t, 90*time.Second, "h1 to reconnect to both", func() error { return connected(all...) })
		t.Logf("healed: every node connected to the two others again %v later", took.Round(time.Millisecond))

		for _, node := range all {
			node.Stop()
		}
	})

	// QUIC wins the race when both transports are there: see whether TCP,
	// which needs a simultaneous open through both NATs, punches too.
	t.Run("PortPreservingNATOverTCP", func(t *testing.T) {
		n := NewNetwork(t, bin, false)
		pub, h1, h2 := startCluster(n, tcpOnly)
		Poll(t, 60*time.Second, "the three nodes to connect", func() error { return connected(pub, h1, h2) })
		var direct, relayed Connection
		Poll(t, 60*time.Second, "a hole-punched TCP connection between h1 and h2", func() (err error) {
			direct, relayed, err = directConnection(h1, h2)
			return err
		})
		t.Logf("hole punched: h1 has a direct %s connection to h2 at %s", transport(direct.Addr), direct.Addr)
		if relayed.Addr != "" {
			t.Logf("hole punched: %v after the relayed connection opened", direct.Opened.Sub(relayed.Opened).Round(time.Millisecond))
		}
		for _, node := range []*Node{pub, h1, h2} {
			node.Stop()
		}
	})

	t.Run("PortRandomisingNAT", func(t *testing.T) {
		n := NewNetwork(t, bin, true)
		pub, h1, h2 := startCluster(n, tcpAndQUIC)
		all := []*Node{pub, h1, h2}

		took := Poll(t, 60*time.Second, "the three nodes to connect", func() error { return connected(all...) })
		joined := time.Now()
		t.Logf("joined: every node connected to the two others %v after start", took.Round(time.Millisecond))

		// 3. Replication completes, through the relay.
		const each = 20
		for i := range each {
			h1.Record("nat.relayed", "from=h1", fmt.Sprint("n=", i))
			h2.Record("nat.relayed", "from=h2", fmt.Sprint("n=", i))
		}
		took = Poll(t, 60*time.Second, "events from behind each NAT to reach every node", func() error {
			return converged(2*each, []string{"--kind", "nat.relayed"}, all...)
		})
		t.Logf("replicated: %d events from h1 and h2 on every node %v after recording", 2*each, took.Round(time.Millisecond))

		// h1 and h2 reconcile with each other over the relayed connection.
		took = Poll(t, 60*time.Second, "h1 and h2 to reconcile through the relay", func() error {
			peers, err := h1.Peers()
			if err != nil {
				return err
			}
			p := peers[h2.ID]
			if p.LastSync.IsZero() || p.LastSyncResult.Err != "" {
				return fmt.Errorf("no successful sync session between h1 and h2 yet (%q)", p.LastSyncResult.Err)
			}
			return nil
		})
		t.Logf("relayed sync: h1 and h2 reconciled with each other through the relay (%v)", took.Round(time.Millisecond))

		// Wait for hole punching to give up on its first attempt, which
		// takes its 10s dial timeout; behind port-preserving NATs it
		// succeeds within a second. Only the log tells of the attempt.
		const punchFailed = `msg="hole punch attempt with peer failed"`
		Poll(t, 60*time.Second, "a hole punching attempt to fail", func() error {
			if _, _, err := directConnection(h1, h2); err == nil {
				return nil // checked below
			}
			if h1.LogLines(punchFailed)+h2.LogLines(punchFailed) == 0 {
				return errors.New("no failed attempt in h1's and h2's logs yet")
			}
			return nil
		})
		t.Logf("hole punching: the first attempt gave up %v after the nodes joined", time.Since(joined).Round(time.Millisecond))
		if direct, _, err := directConnection(h1, h2); err == nil {
			t.Errorf("h1 and h2 connected directly at %s behind port-randomising NATs", direct.Addr)
		} else {
			peers, err := h1.Peers()
			if err != nil {
				t.Fatal(err)
			}
			p := peers[h2.ID]
			for _, c := range p.Connections {
				t.Logf("hole punching failed, as expected: h1 reaches h2 through %s (limited: %v)", c.Addr, c.Limited)
			}
			t.Logf("relayed: h1 received %d of h2's events by gossip from h2 itself", p.EventsReceived)
		}
		attempts, failed := 0, 0
		for _, node := range []*Node{h1, h2} {
			attempts += node.LogLines(`msg=holepunchConnect`)
			failed += node.LogLines(`msg="hole punch attempt with peer failed"`)
		}
		t.Logf("hole punching: %d attempts by h1 and h2, %d failed", attempts, failed)

		for _, node := range all {
			node.Stop()
		}
	})
}
