package peer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
)

// partition cuts every link between the two groups and waits until no
// connection crosses.
func partition(t testing.TB, mn mocknet.Mocknet, a, b []*testNode) {
	t.Helper()
	for _, x := range a {
		for _, y := range b {
			if err := mn.UnlinkPeers(x.h.ID(), y.h.ID()); err != nil {
				t.Fatal(err)
			}
		}
	}
	eventually(t, 5*time.Second, "the groups to disconnect", func() bool {
		crossing := 0
		for _, x := range a {
			for _, y := range b {
				mn.DisconnectPeers(x.h.ID(), y.h.ID())
				mn.DisconnectPeers(y.h.ID(), x.h.ID())
				crossing += len(x.h.Network().ConnsToPeer(y.h.ID())) + len(y.h.Network().ConnsToPeer(x.h.ID()))
			}
		}
		return crossing == 0
	})
}

// heal links the groups again and connects them, as the redial loop would
// (without waiting for its backoff).
func heal(t testing.TB, mn mocknet.Mocknet, a, b []*testNode) {
	t.Helper()
	for _, x := range a {
		for _, y := range b {
			if _, err := mn.LinkPeers(x.h.ID(), y.h.ID()); err != nil {
				t.Fatal(err)
			}
			if _, err := mn.ConnectPeers(x.h.ID(), y.h.ID()); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// convergedTo waits until every node holds want events, listed in the same
// order everywhere.
func convergedTo(t testing.TB, nodes []*testNode, want int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var state []string
		ok := true
		for _, n := range nodes {
			state = append(state, fmt.Sprintf("%d events, %+v", n.set.Len(), n.Status().Gossip))
			ok = ok && n.set.Len() == want
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for every node to hold %d events:\n%s", timeout, want, strings.Join(state, "\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	first := nodes[0].keys(t)
	for i, n := range nodes[1:] {
		if !slices.Equal(n.keys(t), first) {
			t.Fatalf("node %d lists the events in a different order", i+1)
		}
	}
}

func TestPartitionHealsBySync(t *testing.T) {
	mn, nodes := newCluster(t, 5, clusterOptions{})
	left, right := nodes[:2], nodes[2:]
	meshed(t, nodes)
	partition(t, mn, left, right)
	const each = 1500
	for i := range each {
		left[i%2].record(t, "left")
		right[i%3].record(t, "right")
	}
	convergedTo(t, left, each, 20*time.Second)
	convergedTo(t, right, each, 20*time.Second)

	heal(t, mn, left, right)
	convergedTo(t, nodes, 2*each, 30*time.Second)
	synced := false
	for _, p := range left[0].Peers() {
		if !p.LastSync.IsZero() {
			synced = true
		}
	}
	if !synced {
		t.Fatal("the heal converged without a recorded sync session")
	}
}

func TestLongOfflineNodeCatchesUp(t *testing.T) {
	mn, nodes := newCluster(t, 3, clusterOptions{})
	meshed(t, nodes)
	offline, online := nodes[2:], nodes[:2]
	partition(t, mn, offline, online)
	for i := range 4000 {
		online[i%2].record(t, "while-away")
	}
	for range 50 {
		offline[0].record(t, "alone")
	}
	heal(t, mn, offline, online)
	convergedTo(t, nodes, 4050, 30*time.Second)
}

func TestPeriodicSyncRepairsLostGossip(t *testing.T) {
	_, nodes := newCluster(t, 3, clusterOptions{
		syncInterval: 200 * time.Millisecond,
		dropGossip:   func(i int) bool { return i == 2 },
	})
	meshed(t, nodes)
	for i := range 600 {
		nodes[i%2].record(t, "gossiped")
	}
	convergedTo(t, nodes, 600, 30*time.Second)
	if nodes[2].Status().Gossip.EventsMerged != 0 {
		t.Fatal("node 2 merged gossip it should have dropped")
	}
}

func TestSyncReportsResultsAndLimits(t *testing.T) {
	ctx := context.Background()
	_, nodes := newCluster(t, 2, clusterOptions{dropGossip: func(int) bool { return true }})
	meshed(t, nodes)
	a, b := nodes[0], nodes[1]
	for range 30 {
		a.record(t, "a")
	}
	for range 20 {
		b.record(t, "b")
	}
	results := a.Sync(ctx)
	res, ok := results[b.h.ID().String()]
	if !ok || res.Err != nil {
		t.Fatalf("Sync results: %+v", results)
	}
	// The join already started a session; this one may find less to do,
	// but afterwards both hold everything.
	if !res.InSync || res.Rounds == 0 || res.BytesSent == 0 || res.BytesReceived == 0 {
		t.Fatalf("result %+v", res)
	}
	convergedTo(t, nodes, 50, 10*time.Second)

}

func TestSyncSessionLimits(t *testing.T) {
	_, nodes := newCluster(t, 2, clusterOptions{
		dropGossip: func(int) bool { return true },
		syncLimits: SyncLimits{Events: 5},
	})
	meshed(t, nodes)
	for range 40 {
		nodes[1].record(t, "more than the limit")
	}
	res := nodes[0].syncPeer(context.Background(), nodes[1].h.ID())
	if !errors.Is(res.Err, ErrSyncLimit) {
		t.Fatalf("a session past its event limit ended with %v, want ErrSyncLimit", res.Err)
	}
	if got := nodes[0].set.Len(); got > 5 {
		t.Fatalf("%d events merged past a limit of 5", got)
	}
}
