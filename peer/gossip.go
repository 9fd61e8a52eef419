package peer

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/scopemesh/scopemesh/crdt"
	"github.com/scopemesh/scopemesh/events"
)

// Gossip tuning. Gossipsub's defaults drop silently under load: a peer's
// outbound queue holds 32 RPCs and a subscription buffers 32 messages, and
// Publish succeeds either way. Batches of many events and deeper queues
// carry a fast writer's stream; what is still lost, reconciliation repairs.
const (
	batchMaxEvents   = 512
	batchMaxBytes    = 256 << 10 // well under gossipsub's 1 MiB message cap
	batchLinger      = 5 * time.Millisecond
	outboundQueue    = 1024 // RPCs per peer
	validateQueue    = 1024 // messages awaiting validation
	subscriptionSize = 1024 // validated messages awaiting the merge loop
	watchBuffer      = 1 << 16
)

// GossipStats counts the delta replication of one node.
type GossipStats struct {
	BatchesPublished uint64 // batches this node published
	EventsPublished  uint64 // events in them
	BatchesReceived  uint64 // valid batches from peers
	EventsMerged     uint64 // events from them that were new here
	BatchesRejected  uint64 // batches that failed validation: malformed or forged
	DroppedOutbound  uint64 // RPCs dropped because a peer's queue was full
	DroppedInbound   uint64 // messages dropped because the merge loop fell behind
	PublishGaps      uint64 // times the publisher fell behind and re-read the store
	PublishErrors    uint64 // batches that could not be encoded or published
}

type gossipCounters struct {
	batchesPublished, eventsPublished, batchesReceived, eventsMerged,
	batchesRejected, droppedOutbound, droppedInbound,
	publishGaps, publishErrors atomic.Uint64
}

func (c *gossipCounters) snapshot() GossipStats {
	return GossipStats{
		BatchesPublished: c.batchesPublished.Load(),
		EventsPublished:  c.eventsPublished.Load(),
		BatchesReceived:  c.batchesReceived.Load(),
		EventsMerged:     c.eventsMerged.Load(),
		BatchesRejected:  c.batchesRejected.Load(),
		DroppedOutbound:  c.droppedOutbound.Load(),
		DroppedInbound:   c.droppedInbound.Load(),
		PublishGaps:      c.publishGaps.Load(),
		PublishErrors:    c.publishErrors.Load(),
	}
}

// gossip replicates new events over the cluster topic: it publishes this
// node's events in batches and merges the batches of others.
type gossip struct {
	self    lpeer.ID
	selfStr string
	replica *replica
	gater   *Gater
	members *memberTable
	log     *slog.Logger
	counts  gossipCounters

	// dropIncoming, if set before the node connects, makes it ignore
	// gossip from peers: tests use it to lose gossip on purpose.
	dropIncoming bool

	ps    *pubsub.PubSub
	topic *pubsub.Topic
	sub   *pubsub.Subscription
	watch *crdt.Watch
	peers *pubsub.TopicEventHandler
}

// startGossip joins the cluster topic. Its loops run until ctx ends.
func startGossip(ctx context.Context, h host.Host, g *gossip, topic string) error {
	g.self, g.selfStr = h.ID(), h.ID().String()
	ps, err := pubsub.NewGossipSub(ctx, h,
		pubsub.WithPeerOutboundQueueSize(outboundQueue),
		pubsub.WithValidateQueueSize(validateQueue),
		pubsub.WithRawTracer(tracer{g}),
		pubsub.WithPeerScore(scoreParams(topic)),
		pubsub.WithPeerScoreInspect(g.members.setScores, time.Second),
	)
	if err != nil {
		return err
	}
	if err := ps.RegisterTopicValidator(topic, g.validate); err != nil {
		return err
	}
	t, err := ps.Join(topic)
	if err != nil {
		return err
	}
	sub, err := t.Subscribe(pubsub.WithBufferSize(subscriptionSize))
	if err != nil {
		return err
	}
	peers, err := t.EventHandler()
	if err != nil {
		return err
	}
	g.ps, g.topic, g.sub, g.peers = ps, t, sub, peers
	g.watch = g.replica.set.Watch(watchBuffer)
	return nil
}

// scoreParams penalise a peer for every batch that fails validation: two
// bad batches put it below the graylist threshold, so its gossip is ignored
// for a while. Other score components stay off.
func scoreParams(topic string) (*pubsub.PeerScoreParams, *pubsub.PeerScoreThresholds) {
	return &pubsub.PeerScoreParams{
			SkipAtomicValidation: true,
			AppSpecificScore:     func(lpeer.ID) float64 { return 0 },
			DecayInterval:        time.Second,
			DecayToZero:          0.01,
			Topics: map[string]*pubsub.TopicScoreParams{topic: {
				SkipAtomicValidation:           true,
				TopicWeight:                    1,
				TimeInMeshQuantum:              time.Second, // unused, but a divisor
				InvalidMessageDeliveriesWeight: -100,
				InvalidMessageDeliveriesDecay:  0.9,
			}},
		}, &pubsub.PeerScoreThresholds{
			SkipAtomicValidation: true,
			GossipThreshold:      -50,
			PublishThreshold:     -100,
			GraylistThreshold:    -200,
		}
}

// validate decodes and verifies a batch before gossipsub accepts or
// forwards it. A batch that does not decode, or carries an event whose ID
// does not match its content, is rejected: nothing of it is stored and the
// sender's score drops. The decoded events ride along to the merge loop.
func (g *gossip) validate(_ context.Context, from lpeer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	if from == g.self {
		return pubsub.ValidationAccept
	}
	if g.gater.Refused(from) || g.dropIncoming {
		return pubsub.ValidationIgnore
	}
	evs, err := g.replica.limits.DecodeBatch(msg.Data)
	if err != nil {
		g.counts.batchesRejected.Add(1)
		g.log.Debug("rejected a gossiped batch", "from", from, "err", err)
		return pubsub.ValidationReject
	}
	msg.ValidatorData = evs
	return pubsub.ValidationAccept
}

// receiveLoop merges validated batches from peers.
func (g *gossip) receiveLoop(ctx context.Context) {
	for {
		msg, err := g.sub.Next(ctx)
		if err != nil {
			return
		}
		if msg.ReceivedFrom == g.self {
			continue
		}
		evs, _ := msg.ValidatorData.([]events.Event)
		g.counts.batchesReceived.Add(1)
		added, _, err := g.replica.merge(ctx, evs)
		if err != nil {
			if ctx.Err() == nil {
				g.log.Warn("merging a gossiped batch failed", "from", msg.ReceivedFrom, "err", err)
			}
			continue
		}
		g.counts.eventsMerged.Add(uint64(added))
		g.members.delivered(msg.ReceivedFrom, added)
	}
}

// publishLoop publishes this node's new events in batches: a batch closes at
// batchMaxEvents events, about batchMaxBytes bytes, or batchLinger after its
// first event.
func (g *gossip) publishLoop(ctx context.Context) {
	defer g.watch.Close()
	var batch []events.Event
	for ctx.Err() == nil {
		batch = g.collect(ctx, batch[:0])
		g.publish(ctx, batch)
	}
}

// collect appends this node's next new events to batch: it waits for the
// first without a deadline, then at most batchLinger for more.
func (g *gossip) collect(ctx context.Context, batch []events.Event) []events.Event {
	for len(batch) == 0 {
		var ok bool
		if batch, ok = g.take(ctx, batch); !ok {
			return batch
		}
	}
	linger, cancel := context.WithTimeout(ctx, batchLinger)
	defer cancel()
	size := 0
	for i := 0; len(batch) < batchMaxEvents && size < batchMaxBytes; {
		for ; i < len(batch); i++ {
			size += approxSize(batch[i])
		}
		var ok bool
		if batch, ok = g.take(linger, batch); !ok {
			break // the linger ended, or ctx did
		}
	}
	return batch
}

// approxSize estimates an event's encoded size, cheaply.
func approxSize(e events.Event) int {
	n := 128 + len(e.Node) + len(e.Kind) + len(e.Payload)
	for k, v := range e.Attrs {
		n += len(k) + len(v) + 2
	}
	return n
}

// take waits for the watch's next event and appends it to batch if this
// node recorded it; after a gap it appends this node's events from the gap
// on. It reports false when ctx ended first.
func (g *gossip) take(ctx context.Context, batch []events.Event) ([]events.Event, bool) {
	e, err := g.watch.Next(ctx)
	var gap *crdt.GapError
	switch {
	case errors.As(err, &gap):
		g.counts.publishGaps.Add(1)
		return append(batch, g.ownSince(ctx, gap.From)...), true
	case err != nil:
		return batch, false
	case e.Node == g.selfStr:
		return append(batch, e), true
	}
	return batch, true
}

// ownSince returns this node's events from key from on, read back from the
// store after the publisher fell behind its watch.
func (g *gossip) ownSince(ctx context.Context, from crdt.Key) []events.Event {
	var out []events.Event
	err := g.replica.set.ScanIndex(ctx, crdt.ByNode, g.selfStr, crdt.Range{From: from, To: crdt.MaxKey}, false,
		func(e events.Event) bool { out = append(out, e); return true })
	if err != nil && ctx.Err() == nil {
		g.log.Warn("re-reading own events after a publish gap", "err", err)
	}
	return out
}

// publish sends batch in as many messages as its size needs.
func (g *gossip) publish(ctx context.Context, batch []events.Event) {
	for len(batch) > 0 {
		n := min(len(batch), batchMaxEvents)
		data, err := g.replica.limits.EncodeBatch(batch[:n])
		for errors.Is(err, events.ErrTooLarge) && n > 1 {
			n /= 2
			data, err = g.replica.limits.EncodeBatch(batch[:n])
		}
		if err == nil {
			err = g.topic.Publish(ctx, data)
		}
		if err != nil {
			if ctx.Err() == nil {
				g.counts.publishErrors.Add(1)
				g.log.Warn("publishing a batch failed", "events", n, "err", err)
			}
		} else {
			g.counts.batchesPublished.Add(1)
			g.counts.eventsPublished.Add(uint64(n))
		}
		batch = batch[n:]
	}
}

// joinLoop reports peers that subscribe to the cluster topic.
func (g *gossip) joinLoop(ctx context.Context, joined func(lpeer.ID)) {
	for {
		ev, err := g.peers.NextPeerEvent(ctx)
		if err != nil {
			return
		}
		if ev.Type == pubsub.PeerJoin {
			joined(ev.Peer)
		}
	}
}

// tracer counts what gossipsub drops and follows the mesh. Its methods run
// in pubsub's goroutines and must not block.
type tracer struct{ g *gossip }

var _ pubsub.RawTracer = tracer{}

func (t tracer) DropRPC(*pubsub.RPC, lpeer.ID)        { t.g.counts.droppedOutbound.Add(1) }
func (t tracer) UndeliverableMessage(*pubsub.Message) { t.g.counts.droppedInbound.Add(1) }
func (t tracer) Graft(p lpeer.ID, _ string)           { t.g.members.setMesh(p, true) }
func (t tracer) Prune(p lpeer.ID, _ string)           { t.g.members.setMesh(p, false) }

func (tracer) OnNewOutboundStream(lpeer.ID, protocol.ID)             {}
func (tracer) OnClosedOutboundStream(lpeer.ID)                       {}
func (tracer) Join(string)                                           {}
func (tracer) Leave(string)                                          {}
func (tracer) ValidateMessage(*pubsub.Message)                       {}
func (tracer) DeliverMessage(*pubsub.Message)                        {}
func (tracer) RejectMessage(*pubsub.Message, string)                 {}
func (tracer) DuplicateMessage(*pubsub.Message)                      {}
func (tracer) ThrottlePeer(lpeer.ID)                                 {}
func (tracer) RecvRPC(*pubsub.RPC)                                   {}
func (tracer) SendRPC(*pubsub.RPC, lpeer.ID)                         {}
func (tracer) SendRPCCompleted(*pubsub.RPC, lpeer.ID, time.Duration) {}
