package peer

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
)

// Gossip carries announcements, not batches: a batch's hash and size. A
// node fetches the batch itself once, over a stream, from the peer that
// announced it to it first, and announces it on only once it holds it, so
// whoever hears an announcement can fetch from whoever sent it. The mesh's
// duplicates are then a few dozen bytes each, not a batch each.
const (
	announceVersion  = 1
	announcementSize = 1 + sha256.Size + binary.MaxVarintLen32

	maxBatchBody  = 1 << 20         // gossipsub's own message cap, as batches had
	fetchTimeout  = 5 * time.Second // for one peer to send a batch
	maxAlternates = 8               // further peers that announced a batch being fetched
	maxServes     = 32              // batches sent at once
	cacheBytes    = 32 << 20        // batches held to serve
	cacheAge      = time.Minute     // longer than gossip repeats an announcement

	frameWant     byte = 13  // the hash of a batch wanted; answered by frameEvents
	maxErrorFrame      = 256 // an error frame's reason
)

// ErrFetchBusy reports that a peer was sending too many batches to send
// another now.
var ErrFetchBusy = errors.New("peer: too many batches being sent")

// ErrNotHeld reports that a peer no longer holds a batch it announced.
var ErrNotHeld = errors.New("peer: batch not held")

// announcement is what gossip carries of a batch.
type announcement struct {
	hash [sha256.Size]byte
	size int // of the batch, encoded
}

func (a announcement) encode() []byte {
	out := make([]byte, 1+sha256.Size, announcementSize)
	out[0] = announceVersion
	copy(out[1:], a.hash[:])
	return binary.AppendUvarint(out, uint64(a.size))
}

func decodeAnnouncement(b []byte) (announcement, error) {
	var a announcement
	if len(b) < 1+sha256.Size+1 || b[0] != announceVersion {
		return a, fmt.Errorf("%w: announcement of %d bytes", ErrFrame, len(b))
	}
	copy(a.hash[:], b[1:])
	size, n := binary.Uvarint(b[1+sha256.Size:])
	switch {
	case n <= 0 || 1+sha256.Size+n != len(b):
		return a, fmt.Errorf("%w: announcement's size does not read", ErrFrame)
	case size == 0 || size > maxBatchBody:
		return a, fmt.Errorf("%w: announced batch of %d bytes, limit %d", ErrFrame, size, maxBatchBody)
	}
	a.size = int(size)
	return a, nil
}

// batchCache holds the batches this node published or fetched, for peers
// to fetch: at most cacheBytes of them, each for at most cacheAge.
type batchCache struct {
	mu     sync.Mutex
	bodies map[[sha256.Size]byte][]byte
	order  []cachedBatch // oldest first
	bytes  int
}

type cachedBatch struct {
	hash [sha256.Size]byte
	at   time.Time
}

func newBatchCache() *batchCache {
	return &batchCache{bodies: make(map[[sha256.Size]byte][]byte)}
}

// put holds body, which must not change, under hash.
func (c *batchCache) put(hash [sha256.Size]byte, body []byte) {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.bodies[hash]; ok {
		return
	}
	c.bodies[hash] = body
	c.order = append(c.order, cachedBatch{hash, now})
	c.bytes += len(body)
	drop := 0
	for ; drop < len(c.order) && (c.bytes > cacheBytes || now.Sub(c.order[drop].at) > cacheAge); drop++ {
		c.bytes -= len(c.bodies[c.order[drop].hash])
		delete(c.bodies, c.order[drop].hash)
	}
	// Re-slicing, not copying: append moves only the live part when it
	// grows the array.
	c.order = c.order[drop:]
}

func (c *batchCache) get(hash [sha256.Size]byte) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bodies[hash]
}

// handleBatch sends a member the batch it names, if this node holds it.
func (n *Host) handleBatch(raw network.Stream) {
	_, ok := n.accept(raw, n.member)
	if !ok {
		return
	}
	defer n.wg.Done()
	s := newStream(raw, SyncLimits{Idle: fetchTimeout, Bytes: sha256.Size + 8})
	defer s.within(fetchTimeout, raw.Close)
	select {
	case n.serves <- struct{}{}:
		defer func() { <-n.serves }()
	default:
		s.send(frameError, []byte(ErrFetchBusy.Error()))
		return
	}
	_, want, err := s.recvMax(sha256.Size, frameWant)
	if err != nil || len(want) != sha256.Size {
		raw.Reset()
		return
	}
	body := n.gossip.cache.get([sha256.Size]byte(want))
	if body == nil {
		s.send(frameError, []byte(ErrNotHeld.Error()))
		return
	}
	if s.send(frameEvents, body) == nil {
		n.gossip.counts.batchesServed.Add(1)
	}
}

// fetch gets the batch a announces from p, and checks it is the one
// announced.
func (g *gossip) fetch(ctx context.Context, p lpeer.ID, a announcement) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	raw, err := g.h.NewStream(ctx, p, g.batches...)
	if err != nil {
		return nil, err
	}
	defer raw.Reset() // nothing more is wanted either way
	stop := context.AfterFunc(ctx, func() { raw.Reset() })
	defer stop()
	// An error frame may be longer than a small batch.
	limit := max(a.size, maxErrorFrame)
	s := newStream(raw, SyncLimits{Idle: fetchTimeout, Bytes: int64(limit) + 16})
	if err := s.send(frameWant, a.hash[:]); err != nil {
		return nil, err
	}
	_, body, err := s.recvMax(limit, frameEvents)
	switch {
	case err != nil:
		return nil, err
	case len(body) != a.size || sha256.Sum256(body) != a.hash:
		return nil, fmt.Errorf("%w: %s sent a batch other than the one announced", ErrFrame, p)
	}
	return body, nil
}

// alternates records, for each announcement being fetched, the further
// peers that announced it: they hold the batch too, should the first fail.
type alternates struct {
	mu    sync.Mutex
	peers map[string][]lpeer.ID // by message ID
}

// begin starts recording for the message id; end must follow.
func (a *alternates) begin(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.peers == nil {
		a.peers = make(map[string][]lpeer.ID)
	}
	a.peers[id] = nil
}

// add records p for id, if id is being fetched.
func (a *alternates) add(id string, p lpeer.ID) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if ps, ok := a.peers[id]; ok && len(ps) < maxAlternates {
		a.peers[id] = append(ps, p)
	}
}

// next returns the next alternate for id that has not been tried.
func (a *alternates) next(id string) (lpeer.ID, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ps := a.peers[id]
	if len(ps) == 0 {
		return "", false
	}
	a.peers[id] = ps[1:]
	return ps[0], true
}

func (a *alternates) end(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.peers, id)
}
