package peer

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"

	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/internal/fixture"
)

// TestRogueBatchesChangeNothing has a host that speaks gossipsub but not
// our rules publish malformed batches and batches with forged IDs: nothing
// of them is stored, and the rogue's gossip score goes negative.
func TestRogueBatchesChangeNothing(t *testing.T) {
	ctx := context.Background()
	mn, nodes := newCluster(t, 2, clusterOptions{})
	rogueHost, err := mn.GenPeer()
	if err != nil {
		t.Fatal(err)
	}
	if err := mn.LinkAll(); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if _, err := mn.ConnectPeers(rogueHost.ID(), n.h.ID()); err != nil {
			t.Fatal(err)
		}
	}
	ps, err := pubsub.NewGossipSub(ctx, rogueHost, unsignedMessages()...)
	if err != nil {
		t.Fatal(err)
	}
	topic, err := ps.Join(namesFor("test").topic)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := topic.Subscribe(); err != nil {
		t.Fatal(err)
	}
	// The rogue must know the members to be in the topic too: a message
	// published before its router learned of their subscriptions reached
	// nobody, and the rogue was never penalised (once, in CI's parallel
	// -race run).
	eventually(t, 10*time.Second, "the rogue to join the mesh", func() bool {
		for _, n := range nodes {
			if !inMesh(n, rogueHost.ID().String()) || !slices.Contains(topic.ListPeers(), n.h.ID()) {
				return false
			}
		}
		return true
	})

	bad := [][]byte{[]byte("not a batch"), {1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}, forgedBatch(t)}
	for _, msg := range bad {
		if err := topic.Publish(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, "the rogue to be penalised", func() bool {
		for _, n := range nodes {
			// After two bad batches the rogue is graylisted and the rest
			// are not even validated.
			if n.Status().Gossip.BatchesRejected < 2 || score(n, rogueHost.ID().String()) >= 0 {
				return false
			}
		}
		return true
	})
	for i, n := range nodes {
		if n.set.Len() != 0 {
			t.Fatalf("node %d stored %d events from rogue batches", i, n.set.Len())
		}
	}
	// The members still replicate with each other.
	e := nodes[0].record(t, "after")
	eventually(t, 10*time.Second, "a member's event to arrive", func() bool { return nodes[1].set.Len() == 1 })
	if got, err := nodes[1].set.Get(ctx, e.ID); err != nil || got.Kind != "after" {
		t.Fatalf("member event: %v, %v", got.Kind, err)
	}
}

// forgedBatch returns a batch whose last event's payload was changed after
// encoding, so its ID no longer matches its content.
func forgedBatch(t *testing.T) []byte {
	t.Helper()
	data, err := events.EncodeBatch(fixture.New(40, 1).Batch(3))
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-3] ^= 0x01 // inside the payload, the last field
	if _, err := events.DecodeBatch(data); !errors.Is(err, events.ErrIDMismatch) {
		t.Fatalf("forged batch decodes with %v, want ErrIDMismatch", err)
	}
	return data
}

func inMesh(n *testNode, id string) bool {
	for _, p := range n.h.Network().Peers() {
		if p.String() == id {
			return meshPeer(n, id)
		}
	}
	return false
}

func meshPeer(n *testNode, id string) bool {
	n.members.mu.Lock()
	defer n.members.mu.Unlock()
	for p, m := range n.members.peers {
		if p.String() == id {
			return m.InMesh
		}
	}
	return false
}

func score(n *testNode, id string) float64 {
	n.members.mu.Lock()
	defer n.members.mu.Unlock()
	for p, m := range n.members.peers {
		if p.String() == id {
			return m.GossipScore
		}
	}
	return 0
}
