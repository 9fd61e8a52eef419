package scopemesh

import (
	"context"
	"log/slog"
	"time"

	"github.com/scopemesh/scopemesh/crdt"
	"github.com/scopemesh/scopemesh/hlc"
)

// Retention runs in one goroutine per node (retainer.loop). Every second
// it works out the node's horizon and lets the set expire what lies below,
// a batch at a time, so that a Record never waits for more than a batch:
//
//   - the retention horizon: the HLC wall time Retention before now,
//     rounded down to retentionStep, the same on every node with the same
//     setting;
//   - over MaxBytes, a horizon of the node's own, past enough of its
//     oldest events to bring it a tenth under the cap, which holds it to
//     that many events while the store reclaims the space.
//
// The higher wins. The set keeps it (crdt.Set.Expire), so a restart goes
// on from where the last run stopped, and expires at once what lay below
// it meanwhile.

// retentionStep rounds horizons, so that nodes with one setting agree.
const retentionStep = time.Minute

// expireBatch bounds the events one Expire deletes: a memory set holds its
// lock, and a datastore commits one batch, for that many.
const expireBatch = 4096

// capSettle is how long a node over MaxBytes holds to the events it
// found would fit before it measures again: a store on disk reclaims
// deleted space as it compacts, not at once, where a memory set frees it
// at once.
const capSettle = 30 * time.Second

// retentionHorizon returns the horizon of retention r at wall time now.
func retentionHorizon(now int64, r time.Duration) crdt.Key {
	wall := now - int64(r)
	wall -= wall % int64(retentionStep)
	return crdt.TimeKey(hlc.Timestamp{Wall: wall})
}

// retainer expires a node's events.
type retainer struct {
	set       *crdt.Set
	clock     *hlc.Clock
	retention time.Duration // negative: keep everything
	maxBytes  int64         // 0: no cap
	log       *slog.Logger

	// Once the events take more than MaxBytes, capEvents is how many fit
	// under it, worked out when they took capped bytes; until settled,
	// or until they take fewer, that count holds.
	capEvents int
	capped    int64
	settled   time.Time
}

// loop runs until ctx ends.
func (r *retainer) loop(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		r.expire(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// expire raises the horizon where the settings say and deletes what lies
// below it.
func (r *retainer) expire(ctx context.Context) {
	target := r.set.Horizon()
	if r.retention >= 0 {
		if h := retentionHorizon(r.clock.Physical(), r.retention); h.Compare(target) > 0 {
			target = h
		}
	}
	if h, ok := r.capHorizon(ctx); ok && h.Compare(target) > 0 {
		target = h
	}
	for more := true; more && ctx.Err() == nil; {
		var err error
		if _, more, err = r.set.Expire(ctx, target, expireBatch); err != nil {
			if ctx.Err() == nil {
				r.log.Warn("expiring events", "err", err)
			}
			return
		}
	}
}

// capHorizon returns the horizon that holds the node to the events that
// fit a tenth under MaxBytes, once its events take more. How many fit it
// works out from the bytes per event when it finds them over the cap, and
// again once those bytes fall or after capSettle: a store on disk finds
// out only as it compacts how much space a deletion freed, so it counts
// deleted data for a while, and meanwhile the count alone bounds it.
func (r *retainer) capHorizon(ctx context.Context) (crdt.Key, bool) {
	if r.maxBytes <= 0 {
		return crdt.Key{}, false
	}
	total, reclaimable, err := r.set.Bytes(ctx)
	if err != nil {
		return crdt.Key{}, false
	}
	n, held := r.set.Len(), total-reclaimable
	if held <= r.maxBytes {
		r.capEvents = 0
		return crdt.Key{}, false
	}
	if now := time.Now(); r.capEvents == 0 || held < r.capped || !now.Before(r.settled) {
		r.capEvents = max(int(float64(n)*float64(r.maxBytes*9/10)/float64(held)), 1)
		r.capped, r.settled = held, now.Add(capSettle)
	}
	if n <= r.capEvents {
		return crdt.Key{}, false
	}
	k, ok := r.set.KeyAt(n - r.capEvents - 1)
	if !ok {
		return crdt.Key{}, false
	}
	// A time-only key, as every horizon: peers exchange horizons by time.
	t := k.Time()
	t.Logical++
	return crdt.TimeKey(t), true
}
