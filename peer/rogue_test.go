package peer

import (
	"context"
	"crypto/sha256"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"

	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/internal/fixture"
)

// TestRogueBatchesChangeNothing has a host that speaks gossipsub but not
// our rules publish malformed batches and batches with forged IDs: nothing
// of them is stored, and the rogue's gossip score goes negative.
func TestRogueBatchesChangeNothing(t *testing.T) {
	ctx := context.Background()
	mn, nodes := newCluster(t, 2, clusterOptions{})
	rogue, topic := joinRogue(t, mn, nodes)

	bad := [][]byte{[]byte("not a batch"), {1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}, forgedBatch(t)}
	for _, body := range bad {
		if err := topic.announce(ctx, body); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, "the rogue to be penalised", func() bool {
		for _, n := range nodes {
			// After two bad batches the rogue is graylisted and the rest
			// are not even validated.
			if n.Status().Gossip.BatchesRejected < 2 || score(n, rogue.ID().String()) >= 0 {
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

// rogueTopic is a rogue's side of the cluster topic: it announces any
// batch it likes, and sends the batches it announced to whoever asks.
type rogueTopic struct {
	*pubsub.Topic
	mu     sync.Mutex
	bodies map[[sha256.Size]byte][]byte
}

// announce announces body, and will send it.
func (r *rogueTopic) announce(ctx context.Context, body []byte) error {
	a := announcement{hash: sha256.Sum256(body), size: len(body)}
	r.mu.Lock()
	r.bodies[a.hash] = body
	r.mu.Unlock()
	return r.Publish(ctx, a.encode())
}

func (r *rogueTopic) serve(raw network.Stream) {
	defer raw.Close()
	s := newStream(raw, SyncLimits{Idle: time.Second, Bytes: 64})
	_, want, err := s.recv(frameWant)
	if err != nil || len(want) != sha256.Size {
		return
	}
	r.mu.Lock()
	body := r.bodies[[sha256.Size]byte(want)]
	r.mu.Unlock()
	s.send(frameEvents, body)
}

// joinRogue starts a host that speaks gossipsub on the cluster's topic but
// none of its rules, connected to targets, and returns it with the topic
// once it is in their meshes and knows they are in the topic: a message
// published before its router learned of their subscriptions reached
// nobody, and the rogue was never penalised (once, in CI's parallel -race
// run).
func joinRogue(t *testing.T, mn mocknet.Mocknet, targets []*testNode) (host.Host, *rogueTopic) {
	t.Helper()
	rogue, err := mn.GenPeer()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range targets {
		if _, err := mn.LinkPeers(rogue.ID(), n.h.ID()); err != nil {
			t.Fatal(err)
		}
		if _, err := mn.ConnectPeers(rogue.ID(), n.h.ID()); err != nil {
			t.Fatal(err)
		}
	}
	ps, err := pubsub.NewGossipSub(context.Background(), rogue, unsignedMessages()...)
	if err != nil {
		t.Fatal(err)
	}
	joined, err := ps.Join(namesFor("test").topic)
	if err != nil {
		t.Fatal(err)
	}
	topic := &rogueTopic{Topic: joined, bodies: make(map[[sha256.Size]byte][]byte)}
	rogue.SetStreamHandler(namesFor("test").batches, topic.serve)
	if _, err := topic.Subscribe(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the rogue to join the mesh", func() bool {
		for _, n := range targets {
			if !inMesh(n, rogue.ID().String()) || !slices.Contains(topic.ListPeers(), n.h.ID()) {
				return false
			}
		}
		return true
	})
	return rogue, topic
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
