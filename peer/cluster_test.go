package peer

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/scopemesh/scopemesh/crdt"
	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/hlc"
	"github.com/scopemesh/scopemesh/internal/poll"
)

// testNode is one member of a test cluster.
type testNode struct {
	*Host
	key   crypto.PrivKey
	h     host.Host
	set   *crdt.Set
	clock *hlc.Clock
	seq   int
}

// record adds an event of this node to its own set, as Node.Record does.
func (n *testNode) record(t testing.TB, kind string) events.Event {
	t.Helper()
	n.seq++
	e, err := events.Seal(events.Event{
		Time: n.clock.Now(), Node: n.h.ID().String(), Kind: kind,
		Attrs: map[string]string{"seq": fmt.Sprint(n.seq)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if n.replica.signed {
		raw, _ := n.key.Raw()
		e = events.Sign(e, ed25519.PrivateKey(raw))
	}
	if _, err := n.set.Add(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	return e
}

func (n *testNode) keys(t testing.TB) []crdt.Key {
	t.Helper()
	var keys []crdt.Key
	if err := n.set.Scan(context.Background(), crdt.All, false, func(e events.Event) bool {
		keys = append(keys, crdt.KeyOf(e))
		return true
	}); err != nil {
		t.Fatal(err)
	}
	return keys
}

type clusterOptions struct {
	clock        func(i int) hlc.WallClock // nil: the system clock
	syncInterval time.Duration             // 0: a minute, so only connections trigger sync
	syncLimits   SyncLimits
	dropGossip   func(i int) bool // nodes that ignore all gossip
	keys         func(i int) [][]byte
	signEvents   bool    // nodes sign their events and require signatures
	dht          DHTMode // DHTAuto: DHTOff
	saveMembers  func(i int, records []byte) error
}

// newCluster starts n members on a mocknet with every pair linked and
// connected. Everything stops at the end of the test.
func newCluster(t testing.TB, n int, opts clusterOptions) (mocknet.Mocknet, []*testNode) {
	t.Helper()
	mn := mocknet.New()
	t.Cleanup(func() { mn.Close() })
	nodes := make([]*testNode, n)
	for i := range nodes {
		nodes[i] = addNode(t, mn, i, opts)
	}
	connectAll(t, mn)
	return mn, nodes
}

// connectedPeer is a bare libp2p host on mn, linked and connected to n:
// a peer that speaks the protocols as a test has it.
func connectedPeer(t testing.TB, mn mocknet.Mocknet, n *testNode) host.Host {
	t.Helper()
	h, err := mn.GenPeer()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mn.LinkPeers(h.ID(), n.h.ID()); err != nil {
		t.Fatal(err)
	}
	if _, err := mn.ConnectPeers(h.ID(), n.h.ID()); err != nil {
		t.Fatal(err)
	}
	return h
}

// connectAll links and connects every pair of mn's hosts.
func connectAll(t testing.TB, mn mocknet.Mocknet) {
	t.Helper()
	if err := mn.LinkAll(); err != nil {
		t.Fatal(err)
	}
	if err := mn.ConnectAllButSelf(); err != nil {
		t.Fatal(err)
	}
}

func addNode(t testing.TB, mn mocknet.Mocknet, i int, opts clusterOptions) *testNode {
	t.Helper()
	// Ed25519 identities, as real nodes have: their peer IDs embed the
	// public key, which signed events need.
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	h, err := mn.AddPeer(key, ma.StringCast(fmt.Sprintf("/ip4/10.0.0.%d/tcp/4242", i+1)))
	if err != nil {
		t.Fatal(err)
	}
	set, err := crdt.New(context.Background(), dssync.MutexWrap(datastore.NewMapDatastore()), crdt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var wall hlc.WallClock
	if opts.clock != nil {
		wall = opts.clock(i)
	}
	clock, err := hlc.NewClock(hlc.Config{WallClock: wall})
	if err != nil {
		t.Fatal(err)
	}
	interval := opts.syncInterval
	if interval == 0 {
		interval = time.Minute
	}
	var keys [][]byte
	if opts.keys != nil {
		keys = opts.keys(i)
	}
	dht := opts.dht
	if dht == DHTAuto {
		dht = DHTOff
	}
	cfg := Config{Cluster: "test", Name: fmt.Sprintf("node-%d", i), Set: set, Clock: clock, DHT: dht, SyncInterval: interval,
		SyncLimits: opts.syncLimits, ClusterKeys: keys, SignEvents: opts.signEvents, Logger: quiet}
	if opts.saveMembers != nil {
		cfg.SaveMembers = func(b []byte) error { return opts.saveMembers(i, b) }
	}
	host, err := New(h, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if opts.dropGossip != nil && opts.dropGossip(i) {
		// Before the node connects: it takes gossip from no one.
		host.gossip.member = func(context.Context, lpeer.ID) bool { return false }
	}
	t.Cleanup(func() {
		host.Close()
		set.Close()
	})
	return &testNode{Host: host, h: h, set: set, clock: clock, key: key}
}

// quiet discards the logs of test nodes.
var quiet = slog.New(slog.DiscardHandler)

// admitted waits until every node trusts every other: their first sync
// sessions have completed.
func admitted(t testing.TB, nodes []*testNode) {
	t.Helper()
	eventually(t, 10*time.Second, "the nodes to admit each other", func() bool {
		for _, a := range nodes {
			for _, b := range nodes {
				if a != b && !a.trusted(expired, b.h.ID()) {
					return false
				}
			}
		}
		return true
	})
}

// eventually polls cond until it holds or the deadline passes.
var eventually = poll.Until

// meshed waits until the nodes' gossip meshes join them all, directly or
// through each other: gossip published before then may reach nobody. It
// takes a fraction of a second, but once took more than 10 s on a machine
// running the whole suite and another package's tests at once.
func meshed(t testing.TB, nodes []*testNode) {
	t.Helper()
	eventually(t, 30*time.Second, "the gossip mesh to join every node", func() bool {
		ids := make(map[string]int, len(nodes))
		for i, n := range nodes {
			ids[n.h.ID().String()] = i
		}
		reached := map[int]bool{0: true}
		for next := []int{0}; len(next) > 0; next = next[1:] {
			for _, p := range nodes[next[0]].Peers() {
				if i, ok := ids[p.ID]; ok && p.InMesh && !reached[i] {
					reached[i] = true
					next = append(next, i)
				}
			}
		}
		return len(reached) == len(nodes)
	})
}

func TestGossipConvergesFiveNodes(t *testing.T) {
	_, nodes := newCluster(t, 5, clusterOptions{})
	meshed(t, nodes)
	const each = 300
	for i := range each {
		for _, n := range nodes {
			n.record(t, fmt.Sprintf("step-%d", i%7))
		}
	}
	eventually(t, 20*time.Second, "every node to hold every event", func() bool {
		for _, n := range nodes {
			if n.set.Len() != each*len(nodes) {
				return false
			}
		}
		return true
	})
	want := nodes[0].keys(t)
	for i, n := range nodes[1:] {
		if !slices.Equal(n.keys(t), want) {
			t.Fatalf("node %d lists the events in a different order", i+1)
		}
	}
	st := nodes[0].Status()
	// Sync sessions started as members joined may deliver some events
	// before gossip does.
	if st.Gossip.EventsPublished != each || st.Gossip.EventsMerged == 0 || st.Gossip.EventsMerged > each*4 || st.Connected != 4 || len(st.Peers) != 4 {
		t.Fatalf("status of node 0: %+v", st)
	}
	if st.Gossip.BatchesPublished >= each {
		t.Fatalf("%d batches for %d events: no batching", st.Gossip.BatchesPublished, each)
	}
}

// skewedClock runs ahead of the system clock.
type skewedClock time.Duration

func (s skewedClock) Now() time.Time { return time.Now().Add(time.Duration(s)) }

func TestEventsFromTheFutureAreNotMerged(t *testing.T) {
	_, nodes := newCluster(t, 2, clusterOptions{clock: func(i int) hlc.WallClock {
		return skewedClock(time.Duration(i) * 5 * time.Second) // node 1 runs 5s ahead
	}})
	meshed(t, nodes)
	nodes[1].record(t, "from-the-future")
	ok := nodes[0].record(t, "on-time")
	eventually(t, 10*time.Second, "the skew to be reported", func() bool {
		skew := nodes[0].Status().ClockSkew
		return len(skew) == 1 && skew[0].Origin == nodes[1].h.ID().String() && skew[0].Ahead > 4*time.Second
	})
	if nodes[0].set.Len() != 1 {
		t.Fatalf("node 0 holds %d events, want only its own", nodes[0].set.Len())
	}
	eventually(t, 10*time.Second, "node 1 to take node 0's event", func() bool { return nodes[1].set.Has(crdt.KeyOf(ok)) })
}

// TestHeldBackEventsArriveOnceInRange: an event whose clock ran a little
// further ahead than the offset allows is held back, then fetched by a sync
// as soon as the local clock has caught up — not at the next periodic sync
// (a minute away here).
func TestHeldBackEventsArriveOnceInRange(t *testing.T) {
	_, nodes := newCluster(t, 2, clusterOptions{clock: func(i int) hlc.WallClock {
		return skewedClock(time.Duration(i) * 800 * time.Millisecond) // node 1 runs 300ms past the 500ms bound
	}})
	meshed(t, nodes)
	ahead := nodes[1].record(t, "ahead")
	// Within meshSettle, before the second join sync could fetch it.
	eventually(t, 2*time.Second, "the held-back event to be fetched once in range", func() bool {
		return nodes[0].set.Has(crdt.KeyOf(ahead))
	})
	if skew := nodes[0].Status().ClockSkew; len(skew) != 1 {
		t.Fatalf("the hold-back was not reported: %+v", skew)
	}
}

// TestConfigIsValidated: New refuses a Config it cannot run with, and
// leaves the host as it was.
func TestConfigIsValidated(t *testing.T) {
	mn := mocknet.New()
	t.Cleanup(func() { mn.Close() })
	h, err := mn.GenPeer()
	if err != nil {
		t.Fatal(err)
	}
	clock, err := hlc.NewClock(hlc.Config{})
	if err != nil {
		t.Fatal(err)
	}
	before := h.Mux().Protocols()
	good := Config{Cluster: "test", Set: crdt.NewMemory(crdt.Options{}), Clock: clock, DHT: DHTOff, Logger: quiet}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"no cluster", func(c *Config) { c.Cluster = "" }, "Cluster is empty"},
		{"no set", func(c *Config) { c.Set = nil }, "Set is nil"},
		{"no clock", func(c *Config) { c.Clock = nil }, "Clock is nil"},
		{"long name", func(c *Config) { c.Name = strings.Repeat("n", MaxNameBytes+1) }, "Config.Name"},
		{"name not UTF-8", func(c *Config) { c.Name = "\xff" }, "Config.Name"},
		{"negative interval", func(c *Config) { c.SyncInterval = -time.Second }, "SyncInterval"},
		{"negative forget", func(c *Config) { c.ForgetAfter = -time.Second }, "ForgetAfter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good
			tc.edit(&cfg)
			if _, err := New(h, cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error about %s", err, tc.want)
			}
			if protos := h.Mux().Protocols(); len(protos) != len(before) {
				t.Fatalf("a refused Config left handlers: %v", protos)
			}
		})
	}
	if _, err := New(nil, good); err == nil {
		t.Fatal("New took a nil host")
	}
}
