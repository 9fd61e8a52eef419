package peer

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"

	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/query"
)

// shortBeats makes members beat every d for the rest of the test, its
// nodes closed first.
func shortBeats(t testing.TB, d time.Duration) {
	old := memberBeat
	t.Cleanup(func() { setMemberBeat(old) })
	setMemberBeat(d)
}

// newUnconnected starts n members on a mocknet where every pair is linked,
// so that any may dial any other, but none is connected: they find each
// other only as the test has them join.
func newUnconnected(t testing.TB, n int, opts clusterOptions) (mocknet.Mocknet, []*testNode) {
	t.Helper()
	mn := mocknet.New()
	t.Cleanup(func() { mn.Close() })
	nodes := make([]*testNode, n)
	for i := range nodes {
		nodes[i] = addNode(t, mn, i, opts)
	}
	if err := mn.LinkAll(); err != nil {
		t.Fatal(err)
	}
	return mn, nodes
}

// join has node i join the members at the indexes given.
func join(t testing.TB, nodes []*testNode, i int, to ...int) {
	t.Helper()
	var addrs []string
	for _, j := range to {
		addrs = append(addrs, nodes[j].Addrs()[0])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := nodes[i].Join(ctx, addrs...); err != nil {
		t.Fatalf("node %d joining %v: %v", i, to, err)
	}
}

// views waits until every node lists every other as a member in state,
// under its name.
func views(t testing.TB, nodes []*testNode, state MemberState, within time.Duration) {
	t.Helper()
	eventually(t, within, "every node to list every other "+string(state), func() bool {
		for _, a := range nodes {
			listed := 0
			for _, p := range a.Peers() {
				for j, b := range nodes {
					if p.ID == b.h.ID().String() && p.State == state && p.Name == fmt.Sprintf("node-%d", j) {
						listed++
					}
				}
			}
			if listed != len(nodes)-1 {
				return false
			}
		}
		return true
	})
}

// askAll runs f on every member from n, with n's own events first, as
// Node.QueryCluster does.
func askAll(t testing.TB, n *testNode, f query.Filter) ([]events.Event, []query.PeerAnswer, bool) {
	t.Helper()
	m := query.NewMerger(f)
	if err := query.Each(context.Background(), n.set, f, func(e events.Event) bool { m.Add(e); return true }); err != nil {
		t.Fatal(err)
	}
	answers, complete := n.QueryMembers(context.Background(), f, m)
	evs, _ := m.Result()
	return evs, answers, complete
}

// holds reports whether evs holds e.
func holds(evs []events.Event, e events.Event) bool {
	return slices.ContainsFunc(evs, func(x events.Event) bool { return x.ID == e.ID })
}

// TestViewSpreadsAlongAChain: six nodes, each joining only the one before
// it, all learn of all, and a cluster query from either end finds an event
// just recorded at the other, complete.
func TestViewSpreadsAlongAChain(t *testing.T) {
	_, nodes := newUnconnected(t, 6, clusterOptions{})
	for i := 1; i < len(nodes); i++ {
		join(t, nodes, i, i-1)
	}
	views(t, nodes, StateConnected, 10*time.Second)
	for _, ends := range [][2]int{{0, 5}, {5, 0}} {
		e := nodes[ends[1]].record(t, "at-the-end")
		evs, answers, complete := askAll(t, nodes[ends[0]], query.Filter{Kinds: []string{"at-the-end"}})
		if !complete || !holds(evs, e) || len(answers) != 5 {
			t.Fatalf("from node %d: %d events, complete %v, %d answers: %+v", ends[0], len(evs), complete, len(answers), answers)
		}
	}
}

// TestViewSpreadsThroughAStar: spokes that joined only the hub learn of
// each other.
func TestViewSpreadsThroughAStar(t *testing.T) {
	_, nodes := newUnconnected(t, 5, clusterOptions{})
	for i := 1; i < len(nodes); i++ {
		join(t, nodes, i, 0)
	}
	views(t, nodes, StateConnected, 10*time.Second)
	e := nodes[4].record(t, "spoke")
	if evs, answers, complete := askAll(t, nodes[1], query.Filter{Kinds: []string{"spoke"}}); !complete || !holds(evs, e) {
		t.Fatalf("from a spoke: %d events, complete %v: %+v", len(evs), complete, answers)
	}
}

// TestViewMarksALeavingMember: a member that closes is left everywhere
// within a couple of seconds, and queries stay complete without it.
func TestViewMarksALeavingMember(t *testing.T) {
	_, nodes := newUnconnected(t, 4, clusterOptions{})
	for i := 1; i < len(nodes); i++ {
		join(t, nodes, i, i-1)
	}
	views(t, nodes, StateConnected, 10*time.Second)
	gone := nodes[3].h.ID().String()
	if err := nodes[3].Close(); err != nil {
		t.Fatal(err)
	}
	rest := nodes[:3]
	eventually(t, 2*time.Second, "the others to list the closed node as left", func() bool {
		for _, n := range rest {
			if !slices.ContainsFunc(n.Peers(), func(p PeerInfo) bool { return p.ID == gone && p.State == StateLeft }) {
				return false
			}
		}
		return true
	})
	if _, answers, complete := askAll(t, nodes[0], query.Filter{}); !complete || len(answers) != 2 {
		t.Fatalf("with a member gone: complete %v, %+v", complete, answers)
	}
}

// TestViewKilledMemberUntilForgotten: a member that vanishes without a
// word turns suspect, then unreachable; queries say they are incomplete
// and name it, until Forget drops it.
func TestViewKilledMemberUntilForgotten(t *testing.T) {
	shortBeats(t, 100*time.Millisecond)
	mn, nodes := newUnconnected(t, 3, clusterOptions{})
	join(t, nodes, 1, 0)
	join(t, nodes, 2, 1)
	views(t, nodes, StateConnected, 10*time.Second)
	killed := nodes[2].h.ID()
	for _, n := range nodes[:2] {
		if err := mn.UnlinkPeers(n.h.ID(), killed); err != nil {
			t.Fatal(err)
		}
		if err := mn.DisconnectPeers(n.h.ID(), killed); err != nil {
			t.Fatal(err)
		}
	}
	state := func(n *testNode) MemberState {
		for _, p := range n.Peers() {
			if p.ID == killed.String() {
				return p.State
			}
		}
		return ""
	}
	eventually(t, 5*time.Second, "the killed member to turn unreachable", func() bool { return state(nodes[0]) == StateUnreachable })
	_, answers, complete := askAll(t, nodes[0], query.Filter{})
	named := slices.ContainsFunc(answers, func(a query.PeerAnswer) bool {
		return a.ID == killed.String() && !a.Answered && strings.Contains(a.Err, "unreachable")
	})
	if complete || !named {
		t.Fatalf("with a member killed: complete %v, %+v", complete, answers)
	}
	if got, err := nodes[0].Forget("node-2"); err != nil || got != killed.String() {
		t.Fatalf("Forget by name: %s, %v", got, err)
	}
	if _, err := nodes[0].Forget("node-2"); err == nil {
		t.Fatal("a second Forget found the member again")
	}
	if _, err := nodes[0].Forget(nodes[1].h.ID().String()); err == nil {
		t.Fatal("Forget dropped a connected member")
	}
	// Node 1 still holds the killed member's last record and hands it
	// over in an exchange; it stays out.
	if err := nodes[0].view.exchange(context.Background(), nodes[1].h.ID()); err != nil {
		t.Fatal(err)
	}
	if _, _, complete := askAll(t, nodes[0], query.Filter{}); !complete || state(nodes[0]) != "" {
		t.Fatalf("after Forget: complete %v, state %q", complete, state(nodes[0]))
	}
}

// TestQueryThroughANeighbour: a member this node cannot dial answers
// through a member that has a connection to it.
func TestQueryThroughANeighbour(t *testing.T) {
	mn, nodes := newUnconnected(t, 3, clusterOptions{})
	a, c := nodes[0], nodes[2]
	if err := mn.UnlinkPeers(a.h.ID(), c.h.ID()); err != nil {
		t.Fatal(err)
	}
	join(t, nodes, 1, 0)
	join(t, nodes, 2, 1)
	eventually(t, 10*time.Second, "a to learn of c, and that b has a connection to it", func() bool {
		for _, t := range a.members.queryTargets(true) {
			if t.id == c.h.ID() && len(t.neighbours) == 1 {
				return true
			}
		}
		return false
	})
	e := c.record(t, "far")
	evs, answers, complete := askAll(t, a, query.Filter{Kinds: []string{"far"}})
	if !complete || !holds(evs, e) {
		t.Fatalf("through the neighbour: %d events, complete %v: %+v", len(evs), complete, answers)
	}
}

// TestServedSyncCountsAsInSync: the side that served a session learns, as
// the side that started it does, that the sets ended equal.
func TestServedSyncCountsAsInSync(t *testing.T) {
	_, nodes := newCluster(t, 2, clusterOptions{})
	admitted(t, nodes)
	nodes[0].record(t, "x")
	nodes[0].Sync(context.Background())
	eventually(t, 5*time.Second, "the serving side to record an in-sync session", func() bool {
		for _, p := range nodes[1].Peers() {
			if p.ID == nodes[0].h.ID().String() && p.InSync {
				return true
			}
		}
		return false
	})
}

// TestJoinCountsMembersAndWaits: Join returns the members it knows once it
// holds a member's list; one with nothing to join says so when ctx ends.
func TestJoinCountsMembersAndWaits(t *testing.T) {
	_, nodes := newUnconnected(t, 4, clusterOptions{})
	join(t, nodes, 1, 0)
	join(t, nodes, 2, 0)
	eventually(t, 10*time.Second, "node 0 to know both", func() bool { return len(nodes[0].members.known()) == 2 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if n, err := nodes[3].Join(ctx, nodes[0].Addrs()[0]); err != nil || n != 3 {
		t.Fatalf("Join = %d, %v; want the 3 other members", n, err)
	}
	if _, err := nodes[3].Join(ctx, "/ip4/10.0.0.1/tcp/4242"); err == nil {
		t.Fatal("Join of an address without /p2p succeeded")
	}
	short, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	missing, _ := lpeer.IDFromPrivateKey(key)
	if _, err := nodes[3].Join(short, "/ip4/10.0.0.99/tcp/1/p2p/"+missing.String()); err == nil {
		t.Fatal("Join of a peer that is not there succeeded")
	}
}

// TestExchangeIntervalGrowsWithTheView: small views swap lists every
// viewExchangeInterval, larger ones less often, by the doublings past 32.
func TestExchangeIntervalGrowsWithTheView(t *testing.T) {
	for _, tc := range []struct {
		size  int
		times time.Duration
	}{{0, 1}, {32, 1}, {33, 2}, {64, 2}, {65, 3}, {512, 5}} {
		if got, want := exchangeInterval(tc.size), tc.times*viewExchangeInterval; got != want {
			t.Errorf("exchangeInterval(%d) = %v, want %v", tc.size, got, want)
		}
	}
}
