package peer

import (
	"context"
	"errors"
	"log/slog"

	"github.com/scopemesh/scopemesh/crdt"
	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/hlc"
)

// replica stores what peers send: the one path by which gossip and sync
// merge remote events into the local set.
type replica struct {
	set    *crdt.Set
	clock  *hlc.Clock
	limits events.Limits
	skew   *skewTable
	log    *slog.Logger
}

// merge adds the events whose clocks are within the allowed offset, moving
// the local clock past each. The others are not merged now: they are counted
// against their origin, and reconciliation offers them again later. It
// returns how many events were new here and how many were held back.
func (r *replica) merge(ctx context.Context, evs []events.Event) (added, held int, err error) {
	accepted := evs[:0:0]
	for _, e := range evs {
		if err := r.clock.Update(e.Time); err != nil {
			held++
			if errors.Is(err, hlc.ErrClockOffset) {
				r.skew.record(e.Node, e.Time)
			} else {
				r.log.Warn("not merging an event the clock cannot follow", "event", e.ID, "err", err)
			}
			continue
		}
		accepted = append(accepted, e)
	}
	news, err := r.set.Merge(ctx, accepted)
	return len(news), held, err
}
