package peer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	datastore "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p/core/protocol"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"

	"github.com/scopemesh/scopemesh/crdt"
	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/hlc"
	"github.com/scopemesh/scopemesh/rbsr"
)

// partition cuts every link between the nodes of a and those of b. Each
// side also refuses the other (Host.Disconnect): mocknet can leave a stream
// that was opened on a closing connection alive — pubsub's, say — and
// gossip would cross the split through it; a refused peer's gossip is
// ignored.
func partition(t testing.TB, mn mocknet.Mocknet, a, b []*testNode) {
	t.Helper()
	for _, x := range a {
		for _, y := range b {
			if err := mn.UnlinkPeers(x.h.ID(), y.h.ID()); err != nil {
				t.Fatal(err)
			}
			if err := x.Disconnect(y.h.ID().String()); err != nil {
				t.Fatal(err)
			}
			if err := y.Disconnect(x.h.ID().String()); err != nil {
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

// heal links the groups again and has each side Connect to the other, as an
// operator would after Disconnect.
func heal(t testing.TB, mn mocknet.Mocknet, a, b []*testNode) {
	t.Helper()
	ctx := context.Background()
	for _, x := range a {
		for _, y := range b {
			if _, err := mn.LinkPeers(x.h.ID(), y.h.ID()); err != nil {
				t.Fatal(err)
			}
			if err := x.Connect(ctx, y.Addrs()[0]); err != nil {
				t.Fatal(err)
			}
			if err := y.Connect(ctx, x.Addrs()[0]); err != nil {
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

// askerAndServer starts two members on a mocknet, not yet linked, that
// ignore gossip, so that only syncs move events: the one with the smaller
// peer ID, which asks for a join's syncs, and the other, which serves
// them. The asker asks for no second join sync.
func askerAndServer(t *testing.T) (mn mocknet.Mocknet, asker, server *testNode) {
	mn = mocknet.New()
	t.Cleanup(func() { mn.Close() })
	opts := clusterOptions{dropGossip: func(int) bool { return true }}
	nodes := []*testNode{addNode(t, mn, 0, opts), addNode(t, mn, 1, opts)}
	slices.SortFunc(nodes, func(a, b *testNode) int { return strings.Compare(string(a.h.ID()), string(b.h.ID())) })
	nodes[0].joinResync = time.Hour
	return mn, nodes[0], nodes[1]
}

// peerInfo returns what n knows of p.
func peerInfo(n, p *testNode) (PeerInfo, bool) {
	peers := n.Peers()
	i := slices.IndexFunc(peers, func(info PeerInfo) bool { return info.ID == p.h.ID().String() })
	if i < 0 {
		return PeerInfo{}, false
	}
	return peers[i], true
}

// TestFailedJoinSyncIsRetried: a sync that a join asked for and that failed
// is retried while the peer stays connected, long before the periodic sync
// (a minute away here).
func TestFailedJoinSyncIsRetried(t *testing.T) {
	mn, asker, server := askerAndServer(t)
	server.h.RemoveStreamHandler(server.names.sync)
	for range 20 {
		server.record(t, "before-join")
	}
	connectAll(t, mn)
	eventually(t, 10*time.Second, "the join's sync to fail", func() bool {
		info, ok := peerInfo(asker, server)
		return ok && info.LastSyncResult.Err != nil
	})
	server.h.SetStreamHandler(server.names.sync, server.handleSync)
	convergedTo(t, []*testNode{asker, server}, 20, 10*time.Second)
}

// TestSyncOwedAcrossStaleConnection: a requested sync that failed while no
// connection was open runs when the next one opens, even if the member
// table still counts a closed connection (the swarm reports closes
// asynchronously), so that the peer does not look as if it came back.
func TestSyncOwedAcrossStaleConnection(t *testing.T) {
	mn, asker, server := askerAndServer(t)
	connectAll(t, mn)
	eventually(t, 10*time.Second, "the join's sync", func() bool {
		info, ok := peerInfo(asker, server)
		return ok && info.InSync
	})

	// The link drops, and the server records apart.
	if err := mn.UnlinkPeers(asker.h.ID(), server.h.ID()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the nodes to disconnect", func() bool {
		mn.DisconnectPeers(asker.h.ID(), server.h.ID())
		return len(asker.h.Network().ConnsToPeer(server.h.ID())) == 0 && len(asker.connectedMembers()) == 0
	})
	for range 20 {
		server.record(t, "apart")
	}
	// A connection opens and closes before its sync can run, and the table
	// has not heard of the close yet when the next connection opens.
	asker.members.connected(server.h.ID(), "closed")
	if res := asker.syncPeer(context.Background(), server.h.ID()); res.Err == nil {
		t.Fatal("a sync without a link succeeded")
	}
	asker.syncRequested(context.Background(), server.h.ID())
	if _, err := mn.LinkPeers(asker.h.ID(), server.h.ID()); err != nil {
		t.Fatal(err)
	}
	if _, err := mn.ConnectPeers(asker.h.ID(), server.h.ID()); err != nil {
		t.Fatal(err)
	}
	convergedTo(t, []*testNode{asker, server}, 20, 10*time.Second)
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

// TestSyncSendsLittleBesideTheEvents runs one session between nodes that
// each recorded events the other lacks, interleaved in time as after a
// partition, and checks what it moved besides the events themselves:
// reconciliation, and a Want that names the events by their place in the
// responder's answers rather than by their 32-byte IDs.
func TestSyncSendsLittleBesideTheEvents(t *testing.T) {
	_, nodes := newCluster(t, 2, clusterOptions{dropGossip: func(int) bool { return true }})
	meshed(t, nodes)
	a, b := nodes[0], nodes[1]
	// Hold a's session slot for b from before the events exist, so that
	// no session but the test's moves them.
	var end func()
	eventually(t, 10*time.Second, "node 0's sessions with node 1 to end", func() bool {
		end, _, _ = a.sessions.tryStart(b.h.ID(), false, true)
		return end != nil
	})
	defer end()
	const each = 2000
	var onA, onB []events.Event
	for range each {
		onA = append(onA, a.record(t, "a"))
		onB = append(onB, b.record(t, "b"))
	}
	// Node 1 may be trying a session of its own with node 0, and refuses
	// while it does.
	var res SyncResult
	eventually(t, 10*time.Second, "node 1 to take a session", func() bool {
		res = a.initiate(context.Background(), b.h.ID())
		return !errors.Is(res.Err, ErrBusy)
	})
	if res.Err != nil || !res.InSync || res.Sent != each || res.Received != each {
		t.Fatalf("result %+v, want %d events each way and the sets equal", res, each)
	}
	overhead := res.BytesSent + res.BytesReceived - batchSize(t, onA) - batchSize(t, onB)
	// IDs in the answers and the Want, as the protocol once sent them,
	// would alone cost 32 bytes for each of the events a fetched.
	if perEvent := float64(overhead) / (2 * each); perEvent > 8 {
		t.Fatalf("%d bytes beside the events: %.1f for each of the %d that differ, want at most 8", overhead, perEvent, 2*each)
	}
	t.Logf("%d rounds, %d bytes sent, %d received, %d beside the events", res.Rounds, res.BytesSent, res.BytesReceived, overhead)
}

// batchSize returns the size of evs encoded in key order as one batch, as
// sync sends a few thousand small events.
func batchSize(t testing.TB, evs []events.Event) int64 {
	t.Helper()
	evs = slices.Clone(evs)
	slices.SortFunc(evs, func(x, y events.Event) int { return crdt.KeyOf(x).Compare(crdt.KeyOf(y)) })
	data, err := events.EncodeBatch(evs)
	if err != nil {
		t.Fatal(err)
	}
	return int64(len(data))
}

// TestServeNumbersListedIDsPerPass plays an initiator against a node's
// sync handler: a Want names the IDs the pass's answers listed, numbered
// afresh from the pass's first message, and a pass that goes on after its
// answers listed rbsr.DefaultMaxListed IDs is cut off.
func TestServeNumbersListedIDsPerPass(t *testing.T) {
	_, nodes := newCluster(t, 2, clusterOptions{dropGossip: func(int) bool { return true }})
	meshed(t, nodes)
	a, b := nodes[0], nodes[1]
	const held = 8192 // within one answer's list limit
	for range held {
		b.record(t, "listed")
	}
	// The first message of an empty set lists no IDs, so each answer to it
	// counts, and lists, every event b holds.
	empty, err := crdt.New(context.Background(), dssync.MutexWrap(datastore.NewMapDatastore()), crdt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer empty.Close()
	rec, err := rbsr.NewReconciler(empty, rbsr.Options{})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := rec.Initiate()
	if err != nil {
		t.Fatal(err)
	}
	// A pass's first message says where it starts: at the beginning.
	initiate := append(hlc.Timestamp{}.AppendBinary(nil), msg...)
	var s *stream
	exchange := func(typ rbsr.FrameType) {
		t.Helper()
		payload := msg
		if typ == rbsr.FrameInitiate {
			payload = initiate
		}
		if err := s.send(byte(typ), payload); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.recv(byte(rbsr.FrameReconciled)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, "node 1 to take a session", func() bool {
		raw, err := a.h.NewStream(context.Background(), b.h.ID(), a.protocols(func(nm names) protocol.ID { return nm.sync })...)
		if err != nil {
			t.Fatal(err)
		}
		s = newStream(raw, a.syncLimits)
		if err := s.send(byte(rbsr.FrameInitiate), initiate); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.recv(byte(rbsr.FrameReconciled)); err != nil {
			raw.Close()
			return false // busy with a session of its own
		}
		return true
	})
	defer s.s.Close()
	want := func(need ...int) []events.ID {
		t.Helper()
		if err := s.send(byte(rbsr.FrameWant), wantBitmap(need)); err != nil {
			t.Fatal(err)
		}
		var got []events.ID
		for {
			typ, payload, err := s.recv(frameEvents, frameEnd)
			if err != nil {
				t.Fatal(err)
			}
			if typ == frameEnd {
				return got
			}
			evs, err := a.replica.decode(nil, s.channel(), payload, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range evs {
				got = append(got, e.Event().ID)
			}
		}
	}
	// The answer counts b's events in key order.
	keys := b.keys(t)
	oldest, newest := keys[0].ID(), keys[held-1].ID()
	if got := want(0, held-1); !slices.Equal(got, []events.ID{oldest, newest}) {
		t.Fatalf("a want for listed IDs 0 and %d brought %d events, not b's oldest and newest", held-1, len(got))
	}
	// A second answer in the pass lists the same IDs after the first's.
	exchange(rbsr.FrameReconcile)
	if got := want(held, 2*held-1); !slices.Equal(got, []events.ID{oldest, newest}) {
		t.Fatal("the second answer's IDs are not numbered after the first's")
	}
	// A new pass counts afresh: it may go on until its own answers have
	// listed rbsr.DefaultMaxListed IDs, and no further.
	exchange(rbsr.FrameInitiate)
	for listed := held; listed < rbsr.DefaultMaxListed; listed += held {
		exchange(rbsr.FrameReconcile)
	}
	if err := s.send(byte(rbsr.FrameReconcile), msg); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.recv(byte(rbsr.FrameReconciled)); err == nil || !strings.Contains(err.Error(), ErrSyncLimit.Error()) {
		t.Fatalf("a pass going on after listing %d IDs: %v, want the responder to end it for exceeding a limit", rbsr.DefaultMaxListed, err)
	}
}

// TestSyncAboveTheHigherHorizon: a node that keeps less and one that keeps
// more reconcile, each way, only what lies above the higher horizon: the
// one that keeps less is offered none of the older events, the one that
// keeps more keeps them, and above the horizon they end equal.
func TestSyncAboveTheHigherHorizon(t *testing.T) {
	ctx := context.Background()
	_, nodes := newCluster(t, 2, clusterOptions{dropGossip: func(int) bool { return true }})
	meshed(t, nodes)
	short, long := nodes[0], nodes[1]
	var old []events.Event
	for range 50 {
		old = append(old, long.record(t, "old"))
	}
	horizon := crdt.TimeKey(long.clock.Now())
	if _, _, err := short.set.Expire(ctx, horizon, 0); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		long.record(t, "new")
		short.record(t, "new")
	}
	for _, pair := range [][2]*testNode{{long, short}, {short, long}} {
		for range 5 {
			long.record(t, "newer")
		}
		res := pair[0].syncPeer(ctx, pair[1].h.ID())
		if res.Err != nil || !res.InSync {
			t.Fatalf("a session from %s: %+v", pair[0].h.ID(), res)
		}
	}
	if _, refused := short.set.Expired(); refused != 0 {
		t.Fatalf("the node that keeps less was offered %d expired events", refused)
	}
	for _, e := range old {
		if short.set.Has(crdt.KeyOf(e)) || !long.set.Has(crdt.KeyOf(e)) {
			t.Fatal("an old event moved, or the node that keeps more lost it")
		}
	}
	above := crdt.Range{From: horizon, To: crdt.MaxKey}
	shortSum, shortLen := short.set.Sum(above)
	longSum, longLen := long.set.Sum(above)
	if shortSum != longSum || shortLen != longLen {
		t.Fatal("the two differ above the horizon")
	}
}

// wantBitmap encodes a Want for the listed IDs numbered need, as an
// initiator writes it: bit i%8 of byte i/8 for the i-th.
func wantBitmap(need []int) []byte {
	bitmap := make([]byte, slices.Max(need)/8+1)
	for _, i := range need {
		bitmap[i/8] |= 1 << (i % 8)
	}
	return bitmap
}

// TestAReturnedMemberIsSyncedAgainOnceMeshed: a member back after a
// partition is reconciled with at once and again once the gossip mesh has
// taken it in: an event recorded between the two, which gossip did not
// bring it (here it takes no gossip at all), arrives by the second.
func TestAReturnedMemberIsSyncedAgainOnceMeshed(t *testing.T) {
	mn, nodes := newCluster(t, 2, clusterOptions{dropGossip: func(i int) bool { return i == 1 }})
	a, b := nodes[0], nodes[1]
	partition(t, mn, nodes[:1], nodes[1:])
	healed := time.Now()
	heal(t, mn, nodes[:1], nodes[1:])
	eventually(t, 10*time.Second, "the first sync after the heal", func() bool {
		for _, p := range b.Peers() {
			if p.ID == a.h.ID().String() && p.LastSync.After(healed) {
				return true
			}
		}
		return false
	})
	e := a.record(t, "between the syncs")
	eventually(t, 2*meshSettle, "the event to arrive by the second sync", func() bool { return b.set.Has(crdt.KeyOf(e)) })
}
