package peer

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	lpeer "github.com/libp2p/go-libp2p/core/peer"

	"github.com/scopemesh/scopemesh/crdt"
	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/hlc"
)

// TestMergeHoldsWhatTheClockCannotFollow merges one batch holding events
// within the allowed offset, one beyond it, and one the clock cannot reach
// because it fails to persist a bound that far: only the first are merged,
// the clock moves past the latest of them, and a sync is asked for once the
// one ahead is in range.
func TestMergeHoldsWhatTheClockCannotFollow(t *testing.T) {
	start := time.Unix(1_700_000_000, 0)
	wall := hlc.NewManualClock(start)
	const offset, ahead = 100 * time.Millisecond, time.Second
	persistable := start.Add(ahead + offset/2).UnixNano()
	clock, err := hlc.NewClock(hlc.Config{WallClock: wall, MaxOffset: offset, PersistAhead: ahead,
		Persist: func(upper int64) error {
			if upper > persistable {
				return errors.New("disk full")
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	var retried time.Duration
	r := &replica{set: crdt.NewMemory(crdt.Options{}), clock: clock, limits: events.DefaultLimits,
		skew: &skewTable{now: wall.Now}, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		retry: func(_ lpeer.ID, after time.Duration) { retried = after }}
	defer r.set.Close()

	at := func(d time.Duration) events.Encoded {
		x, err := events.DefaultLimits.SealEncoded(events.Event{Time: hlc.Timestamp{Wall: start.Add(d).UnixNano()}, Node: "origin", Kind: d.String()})
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	// The clock persisted start+ahead when it was made, and can persist a
	// bound up to half the offset past that.
	within, latest := at(-time.Second), at(offset/2)
	tooFar := at(offset + 30*time.Millisecond)
	unfollowable := at(ahead + offset)

	added, held, err := r.merge(context.Background(), "", []events.Encoded{within, tooFar, latest})
	if err != nil {
		t.Fatal(err)
	}
	if added != 2 || held != 1 {
		t.Fatalf("merged %d and held %d events, want 2 and 1", added, held)
	}
	if got := clock.Last(); got != latest.Header().Time {
		t.Fatalf("the clock is at %v after the merge, want the latest event's %v", got, latest.Header().Time)
	}
	if want := 30 * time.Millisecond; retried != want {
		t.Fatalf("a sync was asked for in %v, want %v, when the held event is within the offset", retried, want)
	}
	if s := r.skew.list(); len(s) != 1 || s[0].Origin != "origin" || s[0].Events != 1 {
		t.Fatalf("skew table %+v, want one event of origin", s)
	}

	wall.Set(start.Add(ahead + offset/4))
	added, held, err = r.merge(context.Background(), "", []events.Encoded{unfollowable, tooFar})
	if err != nil {
		t.Fatal(err)
	}
	if added != 1 || held != 1 {
		t.Fatalf("merged %d and held %d events, want 1 and 1 when the clock cannot persist a bound past one", added, held)
	}
	if ok := r.set.Has(crdt.KeyOf(unfollowable.Header())); ok {
		t.Fatal("the event the clock cannot follow was merged")
	}
	if ok := r.set.Has(crdt.KeyOf(tooFar.Header())); !ok {
		t.Fatal("the event within range was not merged alongside one the clock cannot follow")
	}
}
