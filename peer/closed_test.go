package peer

import (
	"context"
	"crypto/rand"
	"errors"
	"slices"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"

	"github.com/scopemesh/scopemesh/crdt"
	"github.com/scopemesh/scopemesh/events"
)

func newKey(t testing.TB) []byte {
	t.Helper()
	k := make([]byte, KeyLen)
	rand.Read(k)
	return k
}

// TestClosedClusterKeepsOutsidersOut: two members share a key; a node with
// another key and a node with none are connected to both. The outsiders
// store nothing of the cluster, are disconnected and refused, and a host
// that listens on the cluster's topic cannot read what it hears.
func TestClosedClusterKeepsOutsidersOut(t *testing.T) {
	ctx := context.Background()
	key, wrong := newKey(t), newKey(t)
	mn, nodes := newCluster(t, 4, clusterOptions{keys: func(i int) [][]byte {
		switch i {
		case 2:
			return [][]byte{wrong}
		case 3:
			return nil
		}
		return [][]byte{key}
	}})
	a, b, other, open := nodes[0], nodes[1], nodes[2], nodes[3]

	// An eavesdropper that knows the topic's name (it leaked) listens in.
	spy, err := mn.GenPeer()
	if err != nil {
		t.Fatal(err)
	}
	mn.LinkAll()
	mn.ConnectPeers(spy.ID(), a.h.ID())
	ps, err := pubsub.NewGossipSub(ctx, spy, unsignedMessages()...)
	if err != nil {
		t.Fatal(err)
	}
	ring, _ := newKeyring("test", [][]byte{key})
	topic, _ := ps.Join(ring[0].names.topic)
	heard, _ := topic.Subscribe()

	eventually(t, 10*time.Second, "the members to prove themselves to each other", func() bool {
		return a.member(expired, b.h.ID()) && b.member(expired, a.h.ID())
	})
	eventually(t, 10*time.Second, "the outsiders to be cut off", func() bool {
		for _, outsider := range []*testNode{other, open} {
			for _, m := range []*testNode{a, b} {
				if m.member(expired, outsider.h.ID()) || len(m.h.Network().ConnsToPeer(outsider.h.ID())) > 0 {
					return false
				}
			}
		}
		return true
	})
	e := a.record(t, "secret")
	eventually(t, 10*time.Second, "the member to get the event", func() bool { return b.set.Has(crdt.KeyOf(e)) })
	for _, outsider := range []*testNode{other, open} {
		if outsider.set.Len() != 0 {
			t.Fatalf("an outsider stored %d events", outsider.set.Len())
		}
	}
	for _, p := range a.Peers() {
		if p.ID == other.h.ID().String() || p.ID == open.h.ID().String() {
			if !p.Refused && p.Connected {
				t.Fatalf("outsider listed as a connected member: %+v", p)
			}
		}
	}
	// Whatever the spy heard does not decode.
	hctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if msg, err := heard.Next(hctx); err == nil {
		if _, err := events.DecodeBatch(msg.Data); err == nil {
			t.Fatal("an eavesdropper decoded a gossiped batch")
		}
	}
}

func TestMembershipProof(t *testing.T) {
	key := newKey(t)
	ring, err := newKeyring("test", [][]byte{key})
	if err != nil {
		t.Fatal(err)
	}
	k := ring[0]
	alice, bob := lpeer.ID("alice"), lpeer.ID("bob")
	nonce := make([]byte, nonceLen)
	rand.Read(nonce)
	proof := k.proof(nonce, bob, alice) // bob proves to alice

	fresh := make([]byte, nonceLen)
	rand.Read(fresh)
	if string(k.proof(fresh, bob, alice)) == string(proof) {
		t.Fatal("a proof replays under a fresh nonce")
	}
	if string(k.proof(nonce, alice, bob)) == string(proof) {
		t.Fatal("a proof reflects: alice's own answer to the same nonce matches bob's")
	}
	if string(k.proof(nonce, bob, "carol")) == string(proof) {
		t.Fatal("a proof made for alice is valid for carol")
	}
	other, _ := newKeyring("test", [][]byte{newKey(t)})
	if string(other[0].proof(nonce, bob, alice)) == string(proof) {
		t.Fatal("another key makes the same proof")
	}
	if _, err := newKeyring("test", [][]byte{key[:16]}); !errors.Is(err, ErrClusterKey) {
		t.Fatalf("a short key: %v, want ErrClusterKey", err)
	}

	sealed := ring.seal("topic", []byte("batch"))
	if plain, err := ring.open("topic", sealed); err != nil || string(plain) != "batch" {
		t.Fatalf("open = %q, %v", plain, err)
	}
	if _, err := ring.open("another topic", sealed); !errors.Is(err, ErrNotMember) {
		t.Fatalf("a batch replayed on another channel opens: %v", err)
	}
	if _, err := other.open("topic", sealed); !errors.Is(err, ErrNotMember) {
		t.Fatalf("another key opens the batch: %v", err)
	}
}

// TestKeyRotationWithoutPartition changes a three-member cluster's key in
// the three documented steps, one member at a time; events keep flowing
// between all members at every step.
func TestKeyRotationWithoutPartition(t *testing.T) {
	old, next := newKey(t), newKey(t)
	mn, nodes := newCluster(t, 3, clusterOptions{keys: func(int) [][]byte { return [][]byte{old} }})
	for _, keys := range [][][]byte{{old, next}, {next, old}, {next}} {
		for _, n := range nodes {
			restartWithKeys(t, mn, n, nodes, keys)
			e := n.record(t, "during rotation")
			for _, m := range nodes {
				eventually(t, 20*time.Second, "an event to reach every member during rotation", func() bool {
					return m.set.Has(crdt.KeyOf(e))
				})
			}
		}
	}
}

// restartWithKeys restarts n's cluster services with other keys, on the
// same libp2p host and replica, as a node restarted with a new
// configuration would: it goes offline, comes back, and its peers redial it.
func restartWithKeys(t testing.TB, mn mocknet.Mocknet, n *testNode, all []*testNode, keys [][]byte) {
	t.Helper()
	others := slices.DeleteFunc(slices.Clone(all), func(m *testNode) bool { return m == n })
	partition(t, mn, []*testNode{n}, others)
	if err := n.Host.Close(); err != nil {
		t.Fatal(err)
	}
	h, err := New(n.h, Config{Cluster: "test", Set: n.set, Clock: n.clock, DHT: DHTOff, SyncInterval: 500 * time.Millisecond,
		ClusterKeys: keys, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	n.Host = h
	heal(t, mn, []*testNode{n}, others)
}

func TestSignedEventsRejectForgeries(t *testing.T) {
	ctx := context.Background()
	_, nodes := newCluster(t, 3, clusterOptions{signEvents: true, dropGossip: func(i int) bool { return i == 2 }})
	a, mallory, c := nodes[0], nodes[1], nodes[2]
	ok := a.record(t, "genuine")
	eventually(t, 10*time.Second, "a signed event to replicate", func() bool { return c.set.Len() >= 1 })

	// Mallory, a member, stores an event that claims to come from a, signed
	// with her own key, and one unsigned; then offers them by sync.
	forged, err := events.Seal(events.Event{Time: mallory.clock.Now(), Node: a.h.ID().String(), Kind: "forged"})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := mallory.key.Raw()
	forged = events.Sign(forged, raw)
	unsigned, _ := events.Seal(events.Event{Time: mallory.clock.Now(), Node: mallory.h.ID().String(), Kind: "unsigned"})
	if _, err := mallory.set.Merge(ctx, []events.Event{forged, unsigned}); err != nil {
		t.Fatal(err)
	}
	res := c.syncPeer(ctx, mallory.h.ID())
	if !errors.Is(res.Err, events.ErrSignature) {
		t.Fatalf("sync with a forger ended with %v, want ErrSignature", res.Err)
	}
	if c.set.Has(crdt.KeyOf(forged)) || c.set.Has(crdt.KeyOf(unsigned)) || !c.set.Has(crdt.KeyOf(ok)) {
		t.Fatal("c stored a forged or unsigned event, or lost the genuine one")
	}
}
