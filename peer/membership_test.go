package peer

import (
	"context"
	"testing"
	"time"

	lpeer "github.com/libp2p/go-libp2p/core/peer"

	"github.com/scopemesh/scopemesh/crdt"
)

func TestDisconnectKeepsPeerOutUntilConnect(t *testing.T) {
	ctx := context.Background()
	_, nodes := newCluster(t, 2, clusterOptions{})
	a, b := nodes[0], nodes[1]
	meshed(t, nodes)
	if err := a.Disconnect(b.h.ID().String()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the link to close", func() bool {
		return len(a.h.Network().ConnsToPeer(b.h.ID())) == 0 && len(b.h.Network().ConnsToPeer(a.h.ID())) == 0
	})
	// (b may be connected for a moment as it redials: a mocknet host has
	// no gater, so a closes such connections as they open.)
	info := a.Peers()
	if len(info) != 1 || !info[0].Refused {
		t.Fatalf("a's view of b after Disconnect: %+v", info)
	}

	// b keeps re-dialling a member it lost; a keeps refusing.
	eventually(t, 10*time.Second, "b to try again", func() bool {
		for _, p := range b.Peers() {
			if p.ID == a.h.ID().String() && !p.Connected && !p.UnreachableSince.IsZero() {
				return true
			}
		}
		return false
	})
	recorded := time.Now()
	lost := b.record(t, "while-refused")
	// A mocknet host has no connection gater, so b's redials connect for
	// a moment before a closes them; nothing may pass meanwhile.
	eventually(t, maxRedial+10*time.Second, "b to redial a after recording", func() bool {
		info := a.Peers()
		return len(info) == 1 && info[0].LastSeen.After(recorded)
	})
	if a.set.Has(crdt.KeyOf(lost)) {
		t.Fatal("a took b's event while refusing b")
	}

	addr := b.Addrs()[0]
	if err := a.Connect(ctx, addr); err != nil {
		t.Fatal(err)
	}
	// Not meshed(t, nodes): re-forming the mesh is gossipsub's business
	// and, on a loaded machine under -race, once took longer than 10 s
	// here. Gossip floods a node's own events to every subscribed peer and
	// the reconnect starts a sync, so the event must arrive without it.
	eventually(t, 10*time.Second, "a to see b connected", func() bool {
		info := a.Peers()
		return len(info) == 1 && info[0].Connected && !info[0].Refused
	})
	after := b.record(t, "after-connect")
	eventually(t, 10*time.Second, "b's new event to reach a", func() bool { return a.set.Has(crdt.KeyOf(after)) })
	for _, p := range a.Peers() {
		if p.Refused || !p.Connected {
			t.Fatalf("a's view of b after Connect: %+v", p)
		}
	}
	if err := a.Disconnect("not-a-peer-id"); err == nil {
		t.Fatal("Disconnect of a malformed ID succeeded")
	}
	if err := a.Connect(ctx, "/ip4/127.0.0.1/tcp/1"); err == nil {
		t.Fatal("Connect to an address without /p2p succeeded")
	}
}

// TestQueriesAskCandidatesInOpenClusters: a connected peer that speaks
// the cluster's protocol but has not completed a sync yet may hold
// events; an open cluster's queries ask it, a closed one's do not.
func TestQueriesAskCandidatesInOpenClusters(t *testing.T) {
	tab := newMemberTable(time.Now, DefaultForgetAfter)
	candidate, stranger := lpeer.ID("candidate"), lpeer.ID("stranger")
	tab.connected(candidate, "c1")
	tab.joined(candidate)
	tab.connected(stranger, "c2")
	targets := func(open bool) (ids []lpeer.ID) {
		for _, q := range tab.queryTargets(open) {
			ids = append(ids, q.id)
		}
		return ids
	}
	if got := targets(true); len(got) != 1 || got[0] != candidate {
		t.Fatalf("an open cluster's query asks %v, want the candidate alone", got)
	}
	if got := targets(false); len(got) != 0 {
		t.Fatalf("a closed cluster's query asks %v, want no one", got)
	}
}

// TestAReturnedMemberBringsRedialsForward: when a member comes back, the
// others still unreachable are redialled within minRedial, not after
// their backoff.
func TestAReturnedMemberBringsRedialsForward(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	tab := newMemberTable(func() time.Time { return now }, DefaultForgetAfter)
	back, behind := lpeer.ID("back"), lpeer.ID("behind")
	for _, p := range []lpeer.ID{back, behind} {
		tab.connected(p, "c")
		tab.want(p)
		tab.disconnected(p, "c")
	}
	for range 8 { // the backoff grows to maxRedial
		now = now.Add(maxRedial)
		tab.dueForDial()
	}
	if next := tab.peers[behind].nextDial; next.Sub(now) < maxRedial/2 {
		t.Fatalf("the backoff did not grow: next dial in %v", next.Sub(now))
	}
	tab.connected(back, "c2")
	if next := tab.peers[behind].nextDial; next.Sub(now) > minRedial {
		t.Fatalf("a member came back, and the next redial of another is %v away", next.Sub(now))
	}
}

// TestAFlappingMemberBringsRedialsForwardOnce: a member that comes and
// goes does not keep every redial at its shortest.
func TestAFlappingMemberBringsRedialsForwardOnce(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	tab := newMemberTable(func() time.Time { return now }, DefaultForgetAfter)
	flapper, behind := lpeer.ID("flapper"), lpeer.ID("behind")
	for _, p := range []lpeer.ID{flapper, behind} {
		tab.connected(p, "c")
		tab.want(p)
		tab.disconnected(p, "c")
	}
	tab.connected(flapper, "c") // brings behind's redial forward
	tab.disconnected(flapper, "c")
	for range 7 { // not quite maxRedial
		now = now.Add(maxRedial / 8)
		tab.dueForDial()
	}
	grown := tab.peers[behind].nextDial
	tab.connected(flapper, "c") // within maxRedial of the first return
	if got := tab.peers[behind].nextDial; !got.Equal(grown) {
		t.Fatalf("a second return within %v moved the redial from %v to %v", maxRedial, grown.Sub(now), got.Sub(now))
	}
}
