package peer

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/internal/fixture"
)

// TestAnnouncementsThatLieCostLittle: a rogue announces batches it does
// not send, one whose bytes are not the ones announced, and announcements
// that do not read. Nothing of them is stored or forwarded, the unreadable
// ones cost the rogue its score, and the members replicate as before.
func TestAnnouncementsThatLieCostLittle(t *testing.T) {
	ctx := context.Background()
	mn, nodes := newCluster(t, 2, clusterOptions{})
	meshed(t, nodes)
	a, b := nodes[0], nodes[1]
	rogue, topic := joinRogue(t, mn, nodes[:1])

	const unsent = 20
	for i := range unsent {
		body, err := events.EncodeBatch(fixture.New(uint64(100+i), 1).Batch(3))
		if err != nil {
			t.Fatal(err)
		}
		if err := topic.Publish(ctx, announcement{hash: sha256.Sum256(body), size: len(body)}.encode()); err != nil {
			t.Fatal(err)
		}
	}
	body, err := events.EncodeBatch(fixture.New(99, 1).Batch(3))
	if err != nil {
		t.Fatal(err)
	}
	swapped := announcement{hash: sha256.Sum256(body), size: len(body)}
	other := append([]byte(nil), body...)
	other[len(other)-1] ^= 1
	topic.mu.Lock()
	topic.bodies[swapped.hash] = other
	topic.mu.Unlock()
	if err := topic.Publish(ctx, swapped.encode()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "every lie to be found out", func() bool {
		return a.Status().Gossip.FetchesFailed == unsent+1
	})
	if n := a.set.Len(); n != 0 {
		t.Fatalf("the node stored %d events from announcements that lied", n)
	}

	for _, junk := range [][]byte{[]byte("junk"), {announceVersion}, announcement{size: maxBatchBody + 1}.encode()} {
		if err := topic.Publish(ctx, junk); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, "the rogue to be penalised", func() bool {
		return a.Status().Gossip.BatchesRejected >= 2 && score(a, rogue.ID().String()) < 0
	})
	canary := a.record(t, "canary")
	eventually(t, 10*time.Second, "a member's event to arrive", func() bool { return b.set.Len() == 1 })
	if got, err := b.set.Get(ctx, canary.ID); err != nil || got.Kind != "canary" {
		t.Fatalf("canary: %v, %v", got, err)
	}
	if st := b.Status().Gossip; st.FetchesFailed != 0 || st.BatchesRejected != 0 {
		t.Errorf("the rogue's announcements reached b through a: %+v", st)
	}
}

// TestFetchersAreBounded: a peer that opens batch streams and asks for
// nothing holds at most maxServes of the node's senders, and each for the
// idle limit only; a member asking meanwhile is told the node is busy,
// and is served once the idle streams are cut.
func TestFetchersAreBounded(t *testing.T) {
	ctx := context.Background()
	mn, nodes := newCluster(t, 2, clusterOptions{})
	meshed(t, nodes)
	victim, honest := nodes[0], nodes[1]
	e := victim.record(t, "held")
	eventually(t, 10*time.Second, "the event to reach the honest member", func() bool { return honest.set.Len() == 1 })
	var held announcement
	victim.gossip.cache.mu.Lock()
	for hash, body := range victim.gossip.cache.bodies {
		held = announcement{hash: hash, size: len(body)}
	}
	victim.gossip.cache.mu.Unlock()
	if held.size == 0 {
		t.Fatalf("the node holds no batch of its event %s to send", e.ID)
	}

	rogue := connectedPeer(t, mn, victim)
	start := time.Now()
	var idle []network.Stream
	for range maxServes + 10 {
		s, err := rogue.NewStream(ctx, victim.h.ID(), namesFor("test").batches)
		if err != nil {
			t.Fatal(err)
		}
		// Something must cross for the stream to open at the other end.
		if _, err := s.Write([]byte{1}); err != nil {
			t.Fatal(err)
		}
		idle = append(idle, s)
	}
	eventually(t, 5*time.Second, "the idle streams to take every sender", func() bool { return len(victim.serves) == maxServes })
	if _, err := honest.gossip.fetch(ctx, victim.h.ID(), held); !errors.Is(err, ErrFetchBusy) {
		t.Fatalf("a fetch while the senders are taken: %v, want ErrFetchBusy", err)
	}
	eventually(t, 3*fetchTimeout, "the idle streams to be cut", func() bool { return len(victim.serves) == 0 })
	if took := time.Since(start); took < fetchTimeout {
		t.Errorf("the idle streams were cut after %v, before the idle limit", took)
	}
	body, err := honest.gossip.fetch(ctx, victim.h.ID(), held)
	if err != nil || sha256.Sum256(body) != held.hash {
		t.Fatalf("a fetch once the idle streams are cut: %v", err)
	}
	for _, s := range idle {
		s.Reset()
	}
}

// TestFetchOfABatchNotHeld: a fetch of a batch the node does not hold
// ends at once with ErrNotHeld.
func TestFetchOfABatchNotHeld(t *testing.T) {
	_, nodes := newCluster(t, 2, clusterOptions{})
	_, err := nodes[1].gossip.fetch(context.Background(), nodes[0].h.ID(), announcement{size: 10})
	if !errors.Is(err, ErrNotHeld) {
		t.Fatalf("fetching a batch not held: %v, want ErrNotHeld", err)
	}
}

// TestBatchCacheIsBounded: the cache holds at most cacheBytes, newest
// kept, and nothing older than cacheAge.
func TestBatchCacheIsBounded(t *testing.T) {
	c := newBatchCache()
	body := make([]byte, 1<<20)
	var last [sha256.Size]byte
	for i := range 2 * cacheBytes / len(body) {
		last = sha256.Sum256(fmt.Append(nil, i))
		c.put(last, body)
	}
	if c.bytes > cacheBytes || len(c.bodies) != cacheBytes/len(body) || len(c.order) != len(c.bodies) {
		t.Fatalf("the cache holds %d bytes in %d batches (%d in order), limit %d", c.bytes, len(c.bodies), len(c.order), cacheBytes)
	}
	if c.get(last) == nil {
		t.Fatal("the newest batch was dropped")
	}
	c.order[0].at = time.Now().Add(-2 * cacheAge)
	old := c.order[0].hash
	c.put(sha256.Sum256([]byte("new")), []byte("new"))
	if c.get(old) != nil {
		t.Fatal("a batch older than cacheAge is still held")
	}
}

// FuzzDecodeAnnouncement: no input makes the decoder panic or accept a
// size past the limit, and what decodes encodes back to itself.
func FuzzDecodeAnnouncement(f *testing.F) {
	f.Add(announcement{size: 100}.encode())
	f.Add([]byte{announceVersion})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := decodeAnnouncement(b)
		if err != nil {
			return
		}
		if a.size <= 0 || a.size > maxBatchBody {
			t.Fatalf("an announced size of %d", a.size)
		}
		if got, err := decodeAnnouncement(a.encode()); err != nil || got != a {
			t.Fatalf("%x decodes to %+v, which encodes to %+v, %v", b, a, got, err)
		}
	})
}
