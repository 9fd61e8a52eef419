package peer

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pubsubpb "github.com/libp2p/go-libp2p-pubsub/pb"
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
	batchMaxEvents      = 1024
	batchMaxBytes       = 512 << 10 // well under gossipsub's 1 MiB message cap
	batchLinger         = 5 * time.Millisecond
	outboundQueue       = 1024 // RPCs per peer
	validateQueue       = 1024 // messages awaiting validation
	subscriptionSize    = 1024 // validated messages awaiting the merge loop
	validateConcurrency = 256  // announcements whose batches are being fetched at once
	// repairAfter is how long after gossip lost a batch a sync with a peer
	// that has it runs: soon, but late enough to take a burst of losses in
	// one session.
	repairAfter = time.Second
	watchBuffer = 1 << 16
)

// GossipStats counts the delta replication of one node.
type GossipStats struct {
	BatchesPublished uint64 // batches this node published
	EventsPublished  uint64 // events in them
	BytesPublished   uint64 // their size, encoded: what a peer fetches of them
	EventsRecorded   uint64 // this node's own new events, published or not (the publisher counts them)
	BatchesReceived  uint64 // valid batches from peers
	EventsMerged     uint64 // events from them that were new here
	BatchesRejected  uint64 // batches that failed validation: malformed or forged
	BatchesHeld      uint64 // batches not taken now: an event's clock ran ahead of the allowed offset
	DroppedOutbound  uint64 // RPCs dropped because a peer's queue was full
	DroppedInbound   uint64 // messages dropped because validation or the merge loop fell behind
	PublishGaps      uint64 // times the publisher fell behind and re-read the store
	PublishErrors    uint64 // batches that could not be encoded or published
	FetchesFailed    uint64 // announced batches no peer that announced them sent
	BatchesServed    uint64 // batches sent to peers that fetched them
}

type gossipCounters struct {
	batchesPublished, eventsPublished, bytesPublished, eventsRecorded, batchesReceived, eventsMerged,
	batchesRejected, batchesHeld, droppedOutbound, droppedInbound,
	publishGaps, publishErrors, fetchesFailed, batchesServed atomic.Uint64
}

func (c *gossipCounters) snapshot() GossipStats {
	return GossipStats{
		BatchesPublished: c.batchesPublished.Load(),
		EventsPublished:  c.eventsPublished.Load(),
		BytesPublished:   c.bytesPublished.Load(),
		EventsRecorded:   c.eventsRecorded.Load(),
		BatchesReceived:  c.batchesReceived.Load(),
		EventsMerged:     c.eventsMerged.Load(),
		BatchesRejected:  c.batchesRejected.Load(),
		BatchesHeld:      c.batchesHeld.Load(),
		DroppedOutbound:  c.droppedOutbound.Load(),
		DroppedInbound:   c.droppedInbound.Load(),
		PublishGaps:      c.publishGaps.Load(),
		PublishErrors:    c.publishErrors.Load(),
		FetchesFailed:    c.fetchesFailed.Load(),
		BatchesServed:    c.batchesServed.Load(),
	}
}

// gossip replicates new events over the cluster topic: it announces this
// node's events in batches, fetches the batches others announce and
// merges them (fetch.go). A node holding several cluster keys listens on
// the topic of each and publishes on the first.
type gossip struct {
	self     lpeer.ID
	selfStr  string
	replica  *replica
	member   func(context.Context, lpeer.ID) bool // may this peer's gossip be taken? waits for a proof under way until ctx ends
	members  *memberTable
	log      *slog.Logger
	counts   gossipCounters
	h        host.Host
	batches  []protocol.ID // the protocols batches are fetched over
	cache    *batchCache
	alts     alternates
	ps       *pubsub.PubSub
	topics   []string   // the names of the channels, set before pubsub starts
	channels []*channel // channels[0] is the one this node publishes on
	watch    *crdt.Watch
}

// channel is one joined topic.
type channel struct {
	name  string
	topic *pubsub.Topic
	sub   *pubsub.Subscription
	peers *pubsub.TopicEventHandler
}

// unsignedMessages are the options of a gossipsub instance on the cluster
// topics: messages carry no author, sequence number or signature, and a
// message's ID is the SHA-256 of its batch. Gossipsub's signatures name the
// peer that published a message; nothing here needs that — a batch is
// checked event by event, each event's ID is the hash of its content, and
// peer scores charge the peer a message came from, not its author — while
// signing every message and verifying it on every node cost a noticeable
// part of replicating an event. Nodes that sign and nodes that do not
// refuse each other's messages, so the topic's version changed with this.
func unsignedMessages() []pubsub.Option {
	return []pubsub.Option{
		pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign),
		pubsub.WithMessageIdFn(func(m *pubsubpb.Message) string {
			id := sha256.Sum256(m.Data)
			return string(id[:])
		}),
	}
}

// startGossip joins the cluster topics. Its loops run until ctx ends.
//
// Announcements are validated concurrently, each waiting for its batch to
// arrive, so a batch may be merged before one its origin published
// earlier: merging in order costs the set less (its index lists grow at
// their ends), and fetches overlap in a way one validator at a time could
// not over a link with any delay.
// viewTopics, which others join, are scored as the topics are.
func startGossip(ctx context.Context, h host.Host, g *gossip, topics, viewTopics []string) error {
	g.self, g.selfStr, g.h, g.topics = h.ID(), h.ID().String(), h, topics
	g.cache = newBatchCache()
	ps, err := pubsub.NewGossipSub(ctx, h, append(unsignedMessages(),
		pubsub.WithPeerOutboundQueueSize(outboundQueue),
		pubsub.WithValidateQueueSize(validateQueue),
		pubsub.WithValidateWorkers(1),
		pubsub.WithRawTracer(tracer{g}),
		pubsub.WithPeerScore(scoreParams(append(slices.Clone(topics), viewTopics...))),
		pubsub.WithPeerScoreInspect(g.members.setScores, time.Second),
		pubsub.WithGossipSubParams(gossipParams()),
		pubsub.WithFloodPublish(false),
	)...)
	if err != nil {
		return err
	}
	g.ps = ps
	for _, name := range topics {
		if err := ps.RegisterTopicValidator(name, g.validate, pubsub.WithValidatorConcurrency(validateConcurrency)); err != nil {
			return err
		}
		c := &channel{name: name}
		if c.topic, err = ps.Join(name); err != nil {
			return err
		}
		if c.sub, err = c.topic.Subscribe(pubsub.WithBufferSize(subscriptionSize)); err != nil {
			return err
		}
		if c.peers, err = c.topic.EventHandler(); err != nil {
			return err
		}
		g.channels = append(g.channels, c)
	}
	g.watch = g.replica.set.WatchNode(watchBuffer, g.selfStr)
	return nil
}

// gossipParams are gossipsub's defaults, but for advertising each message
// ID in one heartbeat's gossip (IHAVE) rather than three: gossip repairs
// what the mesh missed, reconciliation repairs what gossip missed too, and
// with messages of a few dozen bytes the IDs repeated were a fifth of
// what a node received.
func gossipParams() pubsub.GossipSubParams {
	p := pubsub.DefaultGossipSubParams()
	p.HistoryGossip = 1
	p.D, p.Dlo, p.Dhi, p.Dscore, p.Dout = 4, 3, 8, 2, 1
	return p
}

// leave unsubscribes and leaves every topic. It must run while pubsub's
// context is still live.
func (g *gossip) leave() error {
	var errs []error
	for _, c := range g.channels {
		c.peers.Cancel()
		c.sub.Cancel()
		errs = append(errs, c.topic.Close())
	}
	return errors.Join(errs...)
}

// scoreParams penalise a peer for every batch that fails validation: two
// bad batches put it below the graylist threshold, so its gossip is ignored
// for a while. Other score components stay off.
func scoreParams(topics []string) (*pubsub.PeerScoreParams, *pubsub.PeerScoreThresholds) {
	params := map[string]*pubsub.TopicScoreParams{}
	for _, t := range topics {
		params[t] = &pubsub.TopicScoreParams{
			SkipAtomicValidation:           true,
			TopicWeight:                    1,
			TimeInMeshQuantum:              time.Second, // unused, but a divisor
			InvalidMessageDeliveriesWeight: -100,
			InvalidMessageDeliveriesDecay:  0.9,
		}
	}
	return &pubsub.PeerScoreParams{
			SkipAtomicValidation: true,
			AppSpecificScore:     func(lpeer.ID) float64 { return 0 },
			DecayInterval:        time.Second,
			DecayToZero:          0.01,
			Topics:               params,
		}, &pubsub.PeerScoreThresholds{
			SkipAtomicValidation: true,
			GossipThreshold:      -50,
			PublishThreshold:     -100,
			GraylistThreshold:    -200,
		}
}

// validate fetches the batch an announcement names, then decodes and
// verifies it, before gossipsub accepts or forwards the announcement: so
// a node announces only what it can send. An announcement that does not
// open or read, or a batch that does not decode, carries an event whose ID
// does not match its content, or (when the cluster signs events) one not
// signed by its origin, or one stamped far in the future, is rejected:
// nothing of it is stored or forwarded, and the sender's score drops. A
// batch that no announcing peer sends is ignored: sync repairs it. The
// decoded events ride along to the merge loop.
func (g *gossip) validate(ctx context.Context, from lpeer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	if from == g.self {
		return pubsub.ValidationAccept
	}
	// A member whose proof is under way is waited for: an announcement
	// ignored is lost to gossip.
	proofCtx, cancel := context.WithTimeout(ctx, proofTimeout)
	member := g.member(proofCtx, from)
	cancel()
	if !member {
		return pubsub.ValidationIgnore
	}
	data, err := g.replica.open(msg.GetTopic(), msg.Data)
	var a announcement
	if err == nil {
		a, err = decodeAnnouncement(data)
	}
	if err != nil {
		g.counts.batchesRejected.Add(1)
		g.log.Debug("rejected an announcement", "from", from, "err", err)
		return pubsub.ValidationReject
	}
	body, err := g.fetchAny(ctx, from, msg.ID, a)
	if err != nil {
		g.counts.fetchesFailed.Add(1)
		g.log.Debug("fetching an announced batch failed", "from", from, "err", err)
		g.replica.retry(from, repairAfter)
		return pubsub.ValidationIgnore
	}
	d := decodedBatches.Get().(*decodedBatch)
	xs, err := g.replica.decodeOpen(d.events[:0], body, &d.body)
	if err != nil {
		decodedBatches.Put(d)
		g.counts.batchesRejected.Add(1)
		g.log.Debug("rejected a gossiped batch", "from", from, "err", err)
		return pubsub.ValidationReject
	}
	// A batch is merged whole or not at all: one whose events run ahead
	// of the clock is not forwarded either, and sync fetches it once it
	// can be merged; one far ahead is forged.
	switch ahead := g.replica.clockAhead(xs); {
	case ahead > skewForgery:
		decodedBatches.Put(d)
		g.counts.batchesRejected.Add(1)
		g.log.Debug("rejected a gossiped batch from the future", "from", from, "ahead", ahead)
		return pubsub.ValidationReject
	case ahead > 0:
		decodedBatches.Put(d)
		g.counts.batchesHeld.Add(1)
		g.replica.retry(from, ahead)
		return pubsub.ValidationIgnore
	}
	g.cache.put(a.hash, body)
	d.events = xs
	msg.ValidatorData = d
	return pubsub.ValidationAccept
}

// fetchAny fetches the batch a announces from first, the peer that
// announced it, or failing that from the others that announced it
// meanwhile, one after another.
func (g *gossip) fetchAny(ctx context.Context, first lpeer.ID, id string, a announcement) ([]byte, error) {
	g.alts.begin(id)
	defer g.alts.end(id)
	p := first
	var errs []error
	for range 1 + maxAlternates {
		body, err := g.fetch(ctx, p, a)
		if err == nil {
			return body, nil
		}
		errs = append(errs, fmt.Errorf("from %s: %w", p, err))
		var ok bool
		if p, ok = g.alts.next(id); !ok || ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// decodedBatch is a gossiped batch decoded in place: its events share
// memory with the message or, if it was compressed, with body.
type decodedBatch struct {
	events []events.Encoded
	body   []byte
}

// decodedBatches holds the buffers gossiped batches are decoded into: the
// receive loop hands each back once the merge has copied what it keeps.
// A new slice of events for every batch, a thousand events of a couple of
// hundred bytes each, was a large part of replicating an event; events
// are decoded in place rather than copied out of the batch for the same
// reason.
var decodedBatches = sync.Pool{New: func() any { return new(decodedBatch) }}

// receiveLoop merges the validated batches of peers that arrive on c.
func (g *gossip) receiveLoop(ctx context.Context, c *channel) {
	for {
		msg, err := c.sub.Next(ctx)
		if err != nil {
			return
		}
		if msg.ReceivedFrom == g.self {
			continue
		}
		d, _ := msg.ValidatorData.(*decodedBatch)
		if d == nil {
			continue
		}
		g.counts.batchesReceived.Add(1)
		added, _, err := g.replica.merge(ctx, msg.ReceivedFrom, d.events)
		// The merge copied what it keeps of the events.
		clear(d.events[:cap(d.events)])
		decodedBatches.Put(d)
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

// publishLoop publishes this node's new events in batches: those recorded
// within batchLinger of the first, in messages of at most batchMaxEvents
// events and about batchMaxBytes bytes.
func (g *gossip) publishLoop(ctx context.Context) {
	defer g.watch.Close()
	var batch []events.Encoded
	for ctx.Err() == nil {
		batch = g.collect(ctx, batch[:0])
		g.publish(ctx, batch)
	}
}

// collect appends this node's next new events to batch: it waits for the
// first without a deadline, then lets more gather for batchLinger and takes
// them at once. Waking for each event, as a fast writer's events arrive a
// few microseconds apart, would cost the node more than publishing them.
func (g *gossip) collect(ctx context.Context, batch []events.Encoded) []events.Encoded {
	for len(batch) == 0 {
		var ok bool
		if batch, ok = g.take(ctx, batch, true); !ok {
			return batch
		}
	}
	linger := time.NewTimer(batchLinger)
	defer linger.Stop()
	select {
	case <-linger.C:
		batch, _ = g.take(ctx, batch, false)
	case <-ctx.Done():
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

// take appends to batch this node's new events from the watch: those it
// holds, or, if wait, the next one, once there is one. After a gap it
// appends this node's events from the gap on. It reports false when ctx
// ended or the watch closed.
func (g *gossip) take(ctx context.Context, batch []events.Encoded, wait bool) ([]events.Encoded, bool) {
	from := len(batch)
	var err error
	if wait {
		var x events.Encoded
		if x, err = g.watch.NextEncoded(ctx); err == nil {
			batch = append(batch, x)
		}
	} else {
		batch, err = g.watch.Available(batch, 0)
	}
	// The watch filters by a digest of the node's name: a rare other
	// node's event shares it.
	batch = batch[:from+len(slices.DeleteFunc(batch[from:], func(x events.Encoded) bool {
		return x.Header().Node != g.selfStr
	}))]
	var gap *crdt.GapError
	switch {
	case errors.As(err, &gap):
		g.counts.publishGaps.Add(1)
		batch = append(batch, g.ownSince(ctx, gap.From)...)
		g.counts.eventsRecorded.Add(uint64(len(batch) - from))
		return batch, true
	case err != nil:
		return batch, false
	}
	g.counts.eventsRecorded.Add(uint64(len(batch) - from))
	return batch, true
}

// ownSince returns this node's events from key from on, read back from the
// store after the publisher fell behind its watch.
func (g *gossip) ownSince(ctx context.Context, from crdt.Key) []events.Encoded {
	var out []events.Encoded
	err := g.replica.set.ScanIndex(ctx, crdt.ByNode, g.selfStr, crdt.Range{From: from, To: crdt.MaxKey}, false,
		func(e events.Event) bool {
			x, err := g.replica.limits.Encode(e)
			if err != nil {
				g.log.Warn("re-encoding an own event after a publish gap", "event", e.ID, "err", err)
				return true
			}
			out = append(out, x)
			return true
		})
	if err != nil && ctx.Err() == nil {
		g.log.Warn("re-reading own events after a publish gap", "err", err)
	}
	return out
}

// publish sends batch in as many messages as its size needs.
func (g *gossip) publish(ctx context.Context, batch []events.Encoded) {
	out := g.channels[0]
	if len(out.topic.ListPeers()) == 0 {
		// Nobody to tell: members that join later reconcile with this
		// node, which costs less than encoding for no one.
		return
	}
	for len(batch) > 0 {
		n := messageEvents(batch)
		body, err := g.replica.limits.EncodeBatchEncoded(batch[:n])
		for errors.Is(err, events.ErrTooLarge) && n > 1 {
			n /= 2
			body, err = g.replica.limits.EncodeBatchEncoded(batch[:n])
		}
		if err == nil && len(body) > maxBatchBody {
			err = fmt.Errorf("%w: a batch of %d bytes, limit %d", events.ErrTooLarge, len(body), maxBatchBody)
		}
		if err == nil {
			a := announcement{hash: sha256.Sum256(body), size: len(body)}
			g.cache.put(a.hash, body)
			var data []byte
			if data, err = g.replica.seal(out.name)(a.encode(), nil); err == nil {
				err = out.topic.Publish(ctx, data)
			}
		}
		if err != nil {
			if ctx.Err() == nil {
				g.counts.publishErrors.Add(1)
				g.log.Warn("publishing a batch failed", "events", n, "err", err)
			}
		} else {
			g.counts.batchesPublished.Add(1)
			g.counts.eventsPublished.Add(uint64(n))
			g.counts.bytesPublished.Add(uint64(len(body)))
		}
		batch = batch[n:]
	}
}

// messageEvents returns how many of batch's first events go in one
// message: at most batchMaxEvents, and as many as fit in batchMaxBytes, but
// at least one.
func messageEvents(batch []events.Encoded) int {
	n, size := 1, len(batch[0].Wire())
	for n < min(len(batch), batchMaxEvents) && size+len(batch[n].Wire()) <= batchMaxBytes {
		size += len(batch[n].Wire())
		n++
	}
	return n
}

// joinLoop reports peers that subscribe to c's topic.
func (g *gossip) joinLoop(ctx context.Context, c *channel, joined func(lpeer.ID)) {
	for {
		ev, err := c.peers.NextPeerEvent(ctx)
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

// Graft and Prune follow the mesh of the event topics, not the view's.
func (t tracer) Graft(p lpeer.ID, topic string) {
	if slices.Contains(t.g.topics, topic) {
		t.g.members.setMesh(p, true)
	}
}

func (t tracer) Prune(p lpeer.ID, topic string) {
	if slices.Contains(t.g.topics, topic) {
		t.g.members.setMesh(p, false)
	}
}

// RejectMessage counts the announcements dropped for want of room to
// validate them, and has the batches they name synced from the peer that
// sent them.
func (t tracer) RejectMessage(m *pubsub.Message, reason string) {
	if reason == pubsub.RejectValidationQueueFull || reason == pubsub.RejectValidationThrottled {
		t.g.counts.droppedInbound.Add(1)
		t.g.replica.retry(m.ReceivedFrom, repairAfter)
	}
}

// DuplicateMessage notes another peer that announced a batch: it holds it.
func (t tracer) DuplicateMessage(m *pubsub.Message) { t.g.alts.add(m.ID, m.ReceivedFrom) }

func (tracer) OnNewOutboundStream(lpeer.ID, protocol.ID)             {}
func (tracer) OnClosedOutboundStream(lpeer.ID)                       {}
func (tracer) Join(string)                                           {}
func (tracer) Leave(string)                                          {}
func (tracer) ValidateMessage(*pubsub.Message)                       {}
func (tracer) DeliverMessage(*pubsub.Message)                        {}
func (tracer) ThrottlePeer(lpeer.ID)                                 {}
func (tracer) RecvRPC(*pubsub.RPC)                                   {}
func (tracer) SendRPC(*pubsub.RPC, lpeer.ID)                         {}
func (tracer) SendRPCCompleted(*pubsub.RPC, lpeer.ID, time.Duration) {}
