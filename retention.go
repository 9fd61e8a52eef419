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
//     oldest events to bring it a tenth under the cap; it then leaves the
//     store time to reclaim the space before it expires more.
//
// The higher wins. The set keeps it (crdt.Set.Expire), so a restart goes
// on from where the last run stopped, and expires at once what lay below
// it meanwhile.

// retentionStep rounds horizons, so that nodes with one setting agree.
const retentionStep = time.Minute

// expireBatch bounds the events one Expire deletes: a memory set holds its
// lock, and a datastore commits one batch, for that many.
const expireBatch = 4096

// capSettle is how long a node waits, after expiring events to get under
// MaxBytes, for its size to fall before it expires more: a store on disk
// reclaims deleted space as it compacts, not at once, where a memory set
// frees it at once.
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

	// After a size expiry, capped is the store's size then, and settled
	// when the store may have reclaimed what it freed: until then, a size
	// no smaller than capped is space not yet reclaimed, not new data.
	capped  int64
	settled time.Time
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

// capHorizon returns the horizon that brings the store a tenth under
// MaxBytes, if it is over, estimating bytes per event from the whole.
func (r *retainer) capHorizon(ctx context.Context) (crdt.Key, bool) {
	if r.maxBytes <= 0 {
		return crdt.Key{}, false
	}
	bytes, err := r.set.Bytes(ctx)
	if err != nil || bytes <= r.maxBytes || bytes >= r.capped && time.Now().Before(r.settled) {
		return crdt.Key{}, false
	}
	n := r.set.Len()
	drop := int(float64(n) * float64(bytes-r.maxBytes*9/10) / float64(bytes))
	k, ok := r.set.KeyAt(min(drop, n-1))
	if !ok {
		return crdt.Key{}, false
	}
	r.capped, r.settled = bytes, time.Now().Add(capSettle)
	// A time-only key, as every horizon: peers exchange horizons by time.
	t := k.Time()
	t.Logical++
	return crdt.TimeKey(t), true
}
