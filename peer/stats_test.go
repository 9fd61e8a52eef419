package peer

import (
	"context"
	"testing"
	"time"

	lpeer "github.com/libp2p/go-libp2p/core/peer"

	"github.com/scopemesh/scopemesh/query"
)

func TestDurationsFallInTheirBuckets(t *testing.T) {
	var d durations
	for _, v := range []time.Duration{0, time.Millisecond, time.Millisecond + 1, 3 * time.Second, time.Hour} {
		d.observe(v)
	}
	h := d.snapshot()
	want := map[int]uint64{0: 2, 1: 1, 11: 1, len(durationBounds): 1}
	for i, c := range h.Counts {
		if c != want[i] {
			t.Errorf("bucket %d (up to %v) counted %d, want %d", i, h.Bounds[min(i, len(h.Bounds)-1)], c, want[i])
		}
	}
	if h.Count() != 5 || h.Sum != time.Hour+3*time.Second+2*time.Millisecond+1 {
		t.Fatalf("count %d, sum %v", h.Count(), h.Sum)
	}
}

func TestStatusCountsSessionsAndQueriesOnBothSides(t *testing.T) {
	ctx := context.Background()
	_, nodes := newCluster(t, 2, clusterOptions{dropGossip: func(int) bool { return true }})
	meshed(t, nodes)
	a, b := nodes[0], nodes[1]
	for range 30 {
		b.record(t, "b")
	}
	before := a.Status()
	if res := a.Sync(ctx)[b.h.ID().String()]; res.Err != nil {
		t.Fatal(res.Err)
	}
	after := a.Status()
	if got := after.SyncInitiated.Sessions - before.SyncInitiated.Sessions; got != 1 {
		t.Fatalf("a's Sync counted %d sessions it started, want 1", got)
	}
	if after.SyncInitiated.BytesSent <= before.SyncInitiated.BytesSent || after.SyncInitiated.Durations.Count() != after.SyncInitiated.Sessions {
		t.Fatalf("session stats before %+v, after %+v", before.SyncInitiated, after.SyncInitiated)
	}
	eventually(t, 5*time.Second, "b to count the session it served", func() bool {
		return b.Status().SyncServed.Sessions >= after.SyncInitiated.Sessions
	})

	f := query.Filter{Kinds: []string{"b"}}
	a.QueryPeers(ctx, f, []lpeer.ID{b.h.ID()}, query.NewMerger(f))
	if got := a.Status().QueriesAsked; got.Queries != 1 || got.Failed != 0 || got.Latencies.Count() != 1 {
		t.Fatalf("a asked one query: %+v", got)
	}
	eventually(t, 5*time.Second, "b to count the query it answered", func() bool {
		got := b.Status().QueriesServed
		return got.Queries == 1 && got.Failed == 0
	})
	eventually(t, 5*time.Second, "b's publisher to count its 30 events", func() bool { return b.Status().Gossip.EventsRecorded == 30 })
}
