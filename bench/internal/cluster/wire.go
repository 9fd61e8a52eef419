package cluster

import (
	"strings"
	"sync"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/metrics"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// Wire counts the bytes a libp2p host writes to and reads from its streams,
// in total and by protocol. It is libp2p's own bandwidth counter, installed
// with libp2p.BandwidthReporter, plus exact running totals: the counter's
// totals advance only once a second, when its meters are swept, and a heal
// that takes half a second would read as nothing.
//
// What it counts is stream payload, above encryption and multiplexing:
// what each protocol chose to send. Noise and yamux add a few percent on
// top on the socket.
type Wire struct {
	*metrics.BandwidthCounter

	sent, recv atomic.Int64
	mu         sync.Mutex
	byProto    map[protocol.ID]*protoBytes
	syncTo     map[lpeer.ID]*atomic.Int64 // sync bytes sent, by peer
}

type protoBytes struct{ sent, recv atomic.Int64 }

var _ metrics.Reporter = (*Wire)(nil)

// NewWire returns a Wire with nothing counted.
func NewWire() *Wire {
	return &Wire{
		BandwidthCounter: metrics.NewBandwidthCounter(),
		byProto:          make(map[protocol.ID]*protoBytes),
		syncTo:           make(map[lpeer.ID]*atomic.Int64),
	}
}

func (w *Wire) proto(p protocol.ID) *protoBytes {
	w.mu.Lock()
	defer w.mu.Unlock()
	b, ok := w.byProto[p]
	if !ok {
		b = new(protoBytes)
		w.byProto[p] = b
	}
	return b
}

func (w *Wire) syncCounter(to lpeer.ID) *atomic.Int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, ok := w.syncTo[to]
	if !ok {
		n = new(atomic.Int64)
		w.syncTo[to] = n
	}
	return n
}

// SyncSentTo returns the bytes sent so far to peer on sync streams.
func (w *Wire) SyncSentTo(to lpeer.ID) int64 { return w.syncCounter(to).Load() }

// kind sorts a protocol into the kinds Traffic counts.
func kind(p protocol.ID) string {
	switch s := string(p); {
	case strings.Contains(s, "/sync/") || strings.HasPrefix(s, baselinePrefix):
		return "sync"
	case strings.Contains(s, "meshsub"):
		return "gossip"
	case strings.Contains(s, "/batches/"):
		return "batches"
	case strings.Contains(s, "/members/"):
		return "members"
	}
	return "other"
}

// LogSentMessageStream counts bytes written to a stream of protocol p.
func (w *Wire) LogSentMessageStream(n int64, p protocol.ID, to lpeer.ID) {
	w.BandwidthCounter.LogSentMessageStream(n, p, to)
	w.sent.Add(n)
	w.proto(p).sent.Add(n)
	if kind(p) == "sync" {
		w.syncCounter(to).Add(n)
	}
}

// LogRecvMessageStream counts bytes read from a stream of protocol p.
func (w *Wire) LogRecvMessageStream(n int64, p protocol.ID, from lpeer.ID) {
	w.BandwidthCounter.LogRecvMessageStream(n, p, from)
	w.recv.Add(n)
	w.proto(p).recv.Add(n)
}

// Traffic is a snapshot of a Wire's counts: bytes sent, by the kind of
// protocol that sent them.
type Traffic struct {
	Sync    int64 `json:"sync"`    // scopemesh's sync protocol, or a baseline's exchange
	Gossip  int64 `json:"gossip"`  // gossipsub: batch announcements and member records
	Batches int64 `json:"batches"` // announced batches, fetched
	Members int64 `json:"members"` // member list exchanges
	Other   int64 `json:"other"`   // identify, ping, queries, ...
}

// Total returns every byte sent.
func (t Traffic) Total() int64 { return t.Sync + t.Gossip + t.Batches + t.Members + t.Other }

// Sub returns the traffic of t since an earlier snapshot.
func (t Traffic) Sub(earlier Traffic) Traffic {
	return Traffic{Sync: t.Sync - earlier.Sync, Gossip: t.Gossip - earlier.Gossip, Batches: t.Batches - earlier.Batches,
		Members: t.Members - earlier.Members, Other: t.Other - earlier.Other}
}

// Add returns the sum of two snapshots.
func (t Traffic) Add(o Traffic) Traffic {
	return Traffic{Sync: t.Sync + o.Sync, Gossip: t.Gossip + o.Gossip, Batches: t.Batches + o.Batches,
		Members: t.Members + o.Members, Other: t.Other + o.Other}
}

// Sent returns the bytes sent so far, by kind of protocol. Counting what
// every host of a cluster sent counts each byte on the wire once.
func (w *Wire) Sent() Traffic {
	w.mu.Lock()
	defer w.mu.Unlock()
	var t Traffic
	for p, b := range w.byProto {
		n := b.sent.Load()
		switch kind(p) {
		case "sync":
			t.Sync += n
		case "gossip":
			t.Gossip += n
		case "batches":
			t.Batches += n
		case "members":
			t.Members += n
		default:
			t.Other += n
		}
	}
	return t
}
