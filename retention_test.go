package scopemesh

import (
	"context"
	"testing"
	"time"

	"github.com/scopemesh/scopemesh/crdt"
	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/hlc"
	"github.com/scopemesh/scopemesh/query"
)

// recordN records n events of kind on node, at its clock's time.
func recordN(t testing.TB, node *Node, kind string, n int) []events.Event {
	t.Helper()
	out := make([]events.Event, n)
	for i := range out {
		e, err := node.Record(context.Background(), events.Event{Kind: kind})
		if err != nil {
			t.Fatal(err)
		}
		out[i] = e
	}
	return out
}

func TestRetentionHorizonIsStepped(t *testing.T) {
	at := time.Date(2026, 12, 7, 12, 34, 56, 789, time.UTC)
	h := retentionHorizon(at.UnixNano(), time.Hour).Time()
	want := time.Date(2026, 12, 7, 11, 34, 0, 0, time.UTC)
	if h != (hlc.Timestamp{Wall: want.UnixNano()}) {
		t.Fatalf("horizon %v, want %v: an hour before, rounded down to the minute", time.Unix(0, h.Wall).UTC(), want)
	}
	// Nodes a few hundred milliseconds apart agree, but at a minute's turn.
	if other := retentionHorizon(at.Add(300*time.Millisecond).UnixNano(), time.Hour); other.Time() != h {
		t.Fatal("two nodes 300 ms apart disagree on the horizon")
	}
}

// TestEventsExpireAtTheHorizon: with a manual clock, a node deletes what
// falls below its horizon once the clock passes it, and only that.
func TestEventsExpireAtTheHorizon(t *testing.T) {
	wall := hlc.NewManualClock(time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC))
	n := open(t, isolated(t, Config{WallClock: wall, Retention: time.Hour}))
	old := recordN(t, n, "old", 20)
	wall.Advance(30 * time.Minute)
	kept := recordN(t, n, "kept", 10)
	wall.Advance(31 * time.Minute) // old is 61 minutes old: a minute past the horizon
	eventually(t, 10*time.Second, "the old events to expire", func() bool { return n.Status().Events == len(kept) })
	st := n.Status()
	if st.Expired != uint64(len(old)) || st.Horizon.IsZero() || st.Retention != time.Hour {
		t.Fatalf("status after expiry: %d expired, horizon %v, retention %v", st.Expired, st.Horizon, st.Retention)
	}
	if !old[len(old)-1].Time.Less(st.Horizon) || kept[0].Time.Less(st.Horizon) {
		t.Fatalf("horizon %v not between the old events (last %v) and the kept ones (first %v)", st.Horizon, old[len(old)-1].Time, kept[0].Time)
	}
	evs, err := n.Query(context.Background(), query.Filter{})
	if err != nil || len(evs) != len(kept) || evs[0].ID != kept[0].ID {
		t.Fatalf("query after expiry: %d events, %v", len(evs), err)
	}
}

// TestRestartKeepsTheHorizon: a node reopened on its data dir keeps its
// horizon, and deletes at once what expired while it was down.
func TestRestartKeepsTheHorizon(t *testing.T) {
	dir := t.TempDir()
	wall := hlc.NewManualClock(time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC))
	cfg := isolated(t, Config{DataDir: dir, WallClock: wall, Retention: time.Hour})
	n, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	first := recordN(t, n, "first", 10)
	wall.Advance(40 * time.Minute)
	second := recordN(t, n, "second", 10)
	wall.Advance(30 * time.Minute)
	eventually(t, 10*time.Second, "the first events to expire", func() bool { return n.Status().Events == len(second) })
	horizon := n.Status().Horizon
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	// Down for long enough that the second events expired too.
	wall.Advance(time.Hour)
	n = open(t, cfg)
	st := n.Status()
	if st.Events != 0 || st.Horizon.Less(horizon) || !second[len(second)-1].Time.Less(st.Horizon) {
		t.Fatalf("reopened with %d events, horizon %v (was %v): want none, and a horizon past them", st.Events, st.Horizon, horizon)
	}
	if _, err := n.Query(context.Background(), query.Filter{After: crdt.KeyOf(first[0])}); err == nil {
		t.Fatal("a cursor below the horizon was taken")
	}
}

// TestRetentionsDifferAcrossNodes: a node that keeps a day and one that
// keeps an hour reconcile only above the hour's horizon: the short one
// never takes the long one's older events back, the long one keeps them.
func TestRetentionsDifferAcrossNodes(t *testing.T) {
	ctx := context.Background()
	wall := hlc.NewManualClock(time.Now())
	long := open(t, isolated(t, Config{WallClock: wall, Retention: 24 * time.Hour}))
	short := open(t, isolated(t, Config{WallClock: wall, Retention: time.Hour, Bootstrap: addrsWith(long, "/tcp/")}))
	eventually(t, 10*time.Second, "the nodes to connect", func() bool { return connectedToAll([]*Node{long, short}, []*Node{long, short}, false) })
	old := recordN(t, long, "old", 30)
	eventually(t, 10*time.Second, "the old events to replicate", func() bool { return short.Status().Events == len(old) })
	wall.Advance(2 * time.Hour)
	eventually(t, 10*time.Second, "the short node to let them expire", func() bool { return short.Status().Events == 0 })
	fresh := recordN(t, long, "fresh", 10)
	for range 3 {
		if _, err := short.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := long.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, "the fresh events to replicate", func() bool { return short.Status().Events == len(fresh) })
	if got := long.Status().Events; got != len(old)+len(fresh) {
		t.Fatalf("the long node holds %d events, want %d", got, len(old)+len(fresh))
	}
	if _, refused := short.set.Expired(); refused != 0 {
		t.Fatalf("the short node was offered %d expired events", refused)
	}
}

// TestMaxBytesHoldsTheStoreUnderItsCap records into a memory node capped
// well under what it records: it lets its oldest events go until it is
// under the cap, and keeps the newest.
func TestMaxBytesHoldsTheStoreUnderItsCap(t *testing.T) {
	const limit = 4 << 20
	n := open(t, isolated(t, Config{MaxBytes: limit}))
	var last events.Event
	for range 40_000 {
		last = recordN(t, n, "filler", 1)[0]
	}
	eventually(t, 10*time.Second, "the store to get under its cap", func() bool { return n.Status().StoreBytes <= limit })
	st := n.Status()
	if st.Expired == 0 || st.Horizon.IsZero() || st.MaxBytes != limit {
		t.Fatalf("status: %+v", st)
	}
	if !n.set.Has(crdt.KeyOf(last)) {
		t.Fatal("the newest event expired")
	}
	if st.StoreBytes < limit/2 {
		t.Errorf("the store holds %d bytes under a cap of %d: it let go of too much", st.StoreBytes, limit)
	}
}
