package peer

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	lpeer "github.com/libp2p/go-libp2p/core/peer"

	"github.com/scopemesh/scopemesh/crdt"
	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/hlc"
)

// ErrUnsignedOrigin reports, in a cluster that signs events, an event whose
// origin has no Ed25519 peer ID, so its signature cannot be checked.
var ErrUnsignedOrigin = errors.New("peer: event origin is not an Ed25519 peer ID")

// replica is the node's side of every exchange of events with peers: it
// encodes (and in a closed cluster seals) what is sent, and opens, decodes
// and checks what arrives, and merges it into the local set. Gossip, sync
// and queries all go through it.
type replica struct {
	set    *crdt.Set
	clock  *hlc.Clock
	limits events.Limits
	keys   keyring // nil: an open cluster, batches travel unsealed
	signed bool    // events must carry their origin's signature
	skew   *skewTable
	log    *slog.Logger
	// retry is told, for events held back because their clock ran ahead,
	// which peer sent them and how long until they can be merged.
	retry func(from lpeer.ID, after time.Duration)

	// origins holds the public keys of origins, once parsed from their
	// peer IDs: at most maxOrigins, as events name their origin, and a
	// member can sign events under any number of fresh identities.
	origins     sync.Map // Node string → ed25519.PublicKey
	originCount atomic.Int64
}

// maxOrigins bounds replica.origins; past it, the cache starts afresh.
const maxOrigins = 1024

// encode encodes evs as a batch for channel (a topic or protocol), sealed
// in a closed cluster.
func (r *replica) encode(channel string, evs []events.Event) ([]byte, error) {
	return r.seal(channel)(r.limits.EncodeBatch(evs))
}

// encodeEncoded is encode for encoded events, which go into the batch as
// they are.
func (r *replica) encodeEncoded(channel string, xs []events.Encoded) ([]byte, error) {
	return r.seal(channel)(r.limits.EncodeBatchEncoded(xs))
}

// seal returns what seals an encoded batch for channel: nothing in an open
// cluster.
func (r *replica) seal(channel string) func([]byte, error) ([]byte, error) {
	return func(data []byte, err error) ([]byte, error) {
		if err != nil || r.keys == nil {
			return data, err
		}
		return r.keys.seal(channel, data), nil
	}
}

// open opens data that arrived on channel: in an open cluster, data is
// not sealed.
func (r *replica) open(channel string, data []byte) ([]byte, error) {
	if r.keys == nil {
		return data, nil
	}
	return r.keys.open(channel, data)
}

// decode opens, decodes and verifies a batch that arrived on channel, and
// appends its events to dst, as decodeOpen does.
func (r *replica) decode(dst []events.Encoded, channel string, data []byte, scratch *[]byte) ([]events.Encoded, error) {
	data, err := r.open(channel, data)
	if err != nil {
		return nil, err
	}
	return r.decodeOpen(dst, data, scratch)
}

// decodeOpen decodes and verifies a batch, and appends its events to dst:
// each event's ID must match its content and, if the cluster signs events,
// its signature must be its origin's. Given a scratch buffer, it decodes in
// place (events.Limits.AppendBatchInPlace).
func (r *replica) decodeOpen(dst []events.Encoded, data []byte, scratch *[]byte) ([]events.Encoded, error) {
	var xs []events.Encoded
	var err error
	if scratch == nil {
		xs, err = r.limits.AppendBatchEncoded(dst, data)
	} else {
		xs, err = r.limits.AppendBatchInPlace(dst, data, scratch)
	}
	if err != nil || !r.signed {
		return xs, err
	}
	for _, x := range xs[len(dst):] {
		if err := r.checkSignature(x.Header()); err != nil {
			return nil, err
		}
	}
	return xs, nil
}

// checkSignature verifies e's signature with the key its origin's peer ID
// embeds.
func (r *replica) checkSignature(e events.Event) error {
	key, ok := r.origins.Load(e.Node)
	if !ok {
		pub, err := originKey(e.Node)
		if err != nil {
			return err
		}
		if r.originCount.Add(1) > maxOrigins {
			r.origins.Clear()
			r.originCount.Store(1)
		}
		key, _ = r.origins.LoadOrStore(e.Node, pub)
	}
	return events.VerifySignature(e, key.(ed25519.PublicKey))
}

// originKey extracts the Ed25519 public key an origin's peer ID embeds.
func originKey(node string) (ed25519.PublicKey, error) {
	id, err := lpeer.Decode(node)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %v", ErrUnsignedOrigin, node, err)
	}
	pub, err := id.ExtractPublicKey()
	if err != nil || pub.Type() != crypto.Ed25519 {
		return nil, fmt.Errorf("%w: %s", ErrUnsignedOrigin, node)
	}
	raw, err := pub.Raw()
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrUnsignedOrigin, node, err)
	}
	return ed25519.PublicKey(raw), nil
}

// skewForgery is how far beyond the allowed clock offset an event must be
// for its batch to be judged forged rather than sent by a node whose clock
// runs ahead: honest nodes that forward a batch accepted it by their own
// clocks, within the offset of this node's.
const skewForgery = time.Minute

// clockAhead reports how far the latest of xs is beyond the clock offset
// the node accepts now, zero if none is, and counts each event beyond it
// against its origin.
func (r *replica) clockAhead(xs []events.Encoded) time.Duration {
	limit := r.clock.Physical() + int64(r.clock.MaxOffset())
	var ahead int64
	for _, x := range xs {
		if e := x.Header(); e.Time.Wall > limit {
			r.skew.record(e.Node, e.Time)
			ahead = max(ahead, e.Time.Wall-limit)
		}
	}
	return time.Duration(ahead)
}

// merge adds the events from peer from whose clocks are within the allowed
// offset, moving the local clock past them. The others are not merged now:
// they are counted against their origin, and a sync with from is asked for
// once they would be accepted. It returns how many events were new here and
// how many were held back. It filters xs in place.
func (r *replica) merge(ctx context.Context, from lpeer.ID, xs []events.Encoded) (added, held int, err error) {
	// One reading of the physical clock serves the whole batch, and the
	// clock moves once, past the latest event, not once an event.
	limit := r.clock.Physical() + int64(r.clock.MaxOffset())
	accepted := xs[:0]
	var latest hlc.Timestamp
	var wait int64 // until the last held-back event is within the offset
	for _, x := range xs {
		e := x.Header()
		if e.Time.Wall > limit {
			held++
			r.skew.record(e.Node, e.Time)
			wait = max(wait, e.Time.Wall-limit)
			continue
		}
		if latest.Less(e.Time) {
			latest = e.Time
		}
		accepted = append(accepted, x)
	}
	if held > 0 {
		r.retry(from, time.Duration(wait))
	}
	if err := r.clock.Update(latest); err != nil {
		var unfollowed int
		accepted, unfollowed = r.followEach(accepted)
		held += unfollowed
	}
	added, err = r.set.MergeEncoded(ctx, accepted)
	return added, held, err
}

// followEach moves the clock past each of xs in turn, for when it could not
// move past the latest at once: its upper bound could not be persisted, or
// the physical clock stepped back. It returns, filtered in place, the events
// the clock followed, and how many it could not.
func (r *replica) followEach(xs []events.Encoded) (followed []events.Encoded, unfollowed int) {
	followed = xs[:0]
	for _, x := range xs {
		e := x.Header()
		if err := r.clock.Update(e.Time); err != nil {
			r.log.Warn("not merging an event the clock cannot follow", "event", e.ID, "err", err)
			unfollowed++
			continue
		}
		followed = append(followed, x)
	}
	return followed, unfollowed
}
