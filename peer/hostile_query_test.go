package peer

import (
	"bufio"
	"context"
	crand "crypto/rand"
	"errors"
	"io"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	lpeer "github.com/libp2p/go-libp2p/core/peer"

	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/hlc"
	"github.com/scopemesh/scopemesh/query"
)

// inProgress returns how many queries n is serving.
func inProgress(n *testNode) int {
	n.queries.mu.Lock()
	defer n.queries.mu.Unlock()
	return n.queries.total
}

// liveHeap returns the bytes of live heap objects, after a collection.
func liveHeap() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// bigEvents returns n sealed events of kind from node, each with a payload
// of size random (incompressible) bytes, at wall times from wall on.
func bigEvents(t testing.TB, n, size int, node, kind string, wall int64) []events.Event {
	t.Helper()
	out := make([]events.Event, n)
	for i := range out {
		payload := make([]byte, size)
		crand.Read(payload)
		e, err := events.Seal(events.Event{Time: hlc.Timestamp{Wall: wall + int64(i)}, Node: node, Kind: kind, Payload: payload})
		if err != nil {
			t.Fatal(err)
		}
		out[i] = e
	}
	return out
}

// admitAll makes members of hosts, which are connected to n, as each
// would become one by completing a sync session: all an open cluster asks.
func admitAll(t testing.TB, n *testNode, hosts []host.Host) {
	t.Helper()
	for _, h := range hosts {
		eventually(t, 10*time.Second, "the node to count the host's connection", func() bool {
			return n.members.admit(h.ID()).admitted != "" || n.trusted(expired, h.ID())
		})
	}
}

// askRaw opens a query stream from h to p and sends f, as an asker that
// then does what it likes with the stream.
func askRaw(t testing.TB, h host.Host, p lpeer.ID, f query.Filter) network.Stream {
	t.Helper()
	s, err := h.NewStream(context.Background(), p, namesFor("test").query)
	if err != nil {
		t.Fatal(err)
	}
	req, err := query.MarshalFilter(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeFrame(bufio.NewWriter(s), frameQuery, req); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestHostileSilentAskersLoseTheirSlots: eight members open four query streams
// each to another and send nothing, which takes every query slot it has.
// Another member's query is refused while they hold them, and answered
// once the request deadline has freed them (without it, after the 10 s a
// query may last); the silent streams are reset.
func TestHostileSilentAskersLoseTheirSlots(t *testing.T) {
	ctx := context.Background()
	mn, nodes := newCluster(t, 2, clusterOptions{dropGossip: func(int) bool { return true }})
	admitted(t, nodes)
	victim, honest := nodes[0], nodes[1]
	for range 3 {
		victim.record(t, "wanted")
	}
	var attackers []host.Host
	for range 8 {
		h, err := mn.GenPeer()
		if err != nil {
			t.Fatal(err)
		}
		attackers = append(attackers, h)
	}
	connectAll(t, mn)
	// A stranger's query is refused at once; members' take slots.
	if _, err := io.ReadAll(askRaw(t, attackers[0], victim.h.ID(), query.Filter{})); !errors.Is(err, network.ErrReset) {
		t.Fatalf("a stranger's query ended with %v, want a reset", err)
	}
	admitAll(t, victim, attackers)

	reads := make(chan error, 8*queriesPerPeer)
	for _, h := range attackers {
		for range queriesPerPeer {
			s, err := h.NewStream(ctx, victim.h.ID(), namesFor("test").query)
			if err != nil {
				t.Fatal(err)
			}
			// Reading sends the protocol's handshake, and nothing else.
			go func() {
				_, err := s.Read(make([]byte, 1))
				reads <- err
			}()
		}
	}
	f := query.Filter{Kinds: []string{"wanted"}}
	ask := func() query.PeerAnswer {
		return honest.QueryPeers(ctx, f, []lpeer.ID{victim.h.ID()}, query.NewMerger(f))[0]
	}
	eventually(t, queryRequestTimeout, "the silent streams to take every slot", func() bool { return inProgress(victim) == queriesServed })
	if a := ask(); a.Answered || !strings.Contains(a.Err, ErrQueryBusy.Error()) {
		t.Fatalf("a query while the slots are taken: %+v", a)
	}
	eventually(t, 3*queryRequestTimeout, "the honest query to be answered", func() bool {
		a := ask()
		return a.Answered && a.Count == 3
	})
	for range cap(reads) {
		if err := <-reads; !errors.Is(err, network.ErrReset) {
			t.Fatalf("a silent stream ended with %v, want a reset", err)
		}
	}
}

// TestHostileUnreadAnswersHoldLittleMemory: sixteen queries (four members, four
// each) ask a member for all of its 5,000 events of 4 KiB and read only
// the first byte of each answer. The member's live heap must grow by less
// than 48 MiB while it serves them; collecting each answer whole before
// sending it grew it by 356 MiB here. Then the write deadline frees their
// slots.
func TestHostileUnreadAnswersHoldLittleMemory(t *testing.T) {
	mn, nodes := newCluster(t, 1, clusterOptions{})
	victim := nodes[0]
	const count, size = 5000, 4 << 10
	for i := 0; i < count; i += 500 {
		if _, err := victim.set.Merge(context.Background(), bigEvents(t, 500, size, "elsewhere", "big", int64(1+i))); err != nil {
			t.Fatal(err)
		}
	}
	var attackers []host.Host
	for range 4 {
		h, err := mn.GenPeer()
		if err != nil {
			t.Fatal(err)
		}
		attackers = append(attackers, h)
	}
	connectAll(t, mn)
	admitAll(t, victim, attackers)

	before := liveHeap()
	var started atomic.Int32
	f := query.Filter{Kinds: []string{"big"}, Limit: query.MaxRemoteLimit}
	for _, h := range attackers {
		for range queriesPerPeer {
			s := askRaw(t, h, victim.h.ID(), f)
			go func() {
				if _, err := io.ReadFull(s, make([]byte, 1)); err == nil {
					started.Add(1)
				}
			}()
		}
	}
	eventually(t, 30*time.Second, "the member to start every answer", func() bool { return started.Load() == 4*queriesPerPeer })
	grown := liveHeap() - before
	t.Logf("live heap grew by %d MiB serving %d unread answers", grown>>20, 4*queriesPerPeer)
	if grown > 48<<20 {
		t.Fatalf("live heap grew by %d MiB, want under 48 MiB", grown>>20)
	}
	eventually(t, 3*queryWriteTimeout, "the unread answers to lose their slots", func() bool { return inProgress(victim) == 0 })
}

// TestHostileOversizedAnswerStopsAtItsBudget: an answer that would send more than
// maxAnswerBytes stops there and tells the asker to narrow the filter.
func TestHostileOversizedAnswerStopsAtItsBudget(t *testing.T) {
	_, nodes := newCluster(t, 2, clusterOptions{dropGossip: func(int) bool { return true }})
	admitted(t, nodes)
	asker, big := nodes[0], nodes[1]
	const count = 2 * maxAnswerBytes / (60 << 10)
	if _, err := big.set.Merge(context.Background(), bigEvents(t, count, 60<<10, "elsewhere", "big", 1)); err != nil {
		t.Fatal(err)
	}
	f := query.Filter{Kinds: []string{"big"}, Limit: query.MaxRemoteLimit}
	m := query.NewMerger(f)
	a := asker.QueryPeers(context.Background(), f, []lpeer.ID{big.h.ID()}, m)[0]
	if a.Answered || !strings.Contains(a.Err, "narrow the filter") || a.Count == 0 || a.Count >= count/2 {
		t.Fatalf("answer of %d events of 60 KiB: %+v", count, a)
	}
	if got, _ := m.Result(); len(got) != a.Count {
		t.Fatalf("%d events merged, want the %d sent before the budget ran out", len(got), a.Count)
	}
}

// TestHostileFakeMembersCannotFloodAnAsker: six members of the cluster answer a
// query with 58 MiB each of matching events, the seventh honestly. The
// asker's live heap grows by less than the query's budget and a few
// frames, it returns the honest member's events, and it lists the six as
// cut off. Collecting the answers whole grew it by 360 MiB here.
func TestHostileFakeMembersCannotFloodAnAsker(t *testing.T) {
	_, nodes := newCluster(t, 8, clusterOptions{dropGossip: func(int) bool { return true }})
	admitted(t, nodes)
	asker, honest, fakes := nodes[0], nodes[1], nodes[2:]
	var want []events.ID
	for range 5 {
		want = append(want, honest.record(t, "wanted").ID)
	}

	// Each fake cycles through eight batches of 16 distinct events of 60
	// KiB, newer than the honest member's, until it has sent 960 events,
	// 58 MiB, or is cut off; then it waits for release before it ends its
	// answer. It never sends more events than the limit, 1000.
	const answerBatches = 60
	release := make(chan struct{})
	var done atomic.Int32
	for i, fake := range fakes {
		var batches [][]byte
		for j := range 8 {
			evs := bigEvents(t, 16, 60<<10, fake.h.ID().String(), "wanted", time.Now().UnixNano()+int64(i*1000+j*100))
			b, err := events.EncodeBatch(evs)
			if err != nil {
				t.Fatal(err)
			}
			batches = append(batches, b)
		}
		fake.h.SetStreamHandler(namesFor("test").query, func(s network.Stream) {
			defer s.Reset()
			readFrame(bufio.NewReader(s), maxFrame)
			w := bufio.NewWriter(s)
			for j := range answerBatches {
				if writeFrame(w, frameEvents, batches[j%len(batches)]) != nil {
					done.Add(1)
					return
				}
			}
			done.Add(1)
			<-release
			writeFrame(w, frameEnd, nil)
			s.CloseWrite()
		})
	}

	before := liveHeap()
	peers := []lpeer.ID{honest.h.ID()}
	for _, fake := range fakes {
		peers = append(peers, fake.h.ID())
	}
	f := query.Filter{Kinds: []string{"wanted"}}
	m := query.NewMerger(f)
	answered := make(chan []query.PeerAnswer, 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	go func() { answered <- asker.QueryPeers(ctx, f, peers, m) }()
	eventually(t, time.Minute, "every fake to send its answer or be cut off", func() bool { return done.Load() == int32(len(fakes)) })
	grown := liveHeap() - before
	close(release)
	answers := <-answered
	t.Logf("live heap grew by %d MiB while fakes answered", grown>>20)
	if grown > (queryBudget+8*maxFrame)>>20<<20 {
		t.Fatalf("live heap grew by %d MiB, want under %d MiB", grown>>20, (queryBudget+8*maxFrame)>>20)
	}
	if a := answers[0]; !a.Answered || a.Count != len(want) {
		t.Fatalf("honest member's answer: %+v", a)
	}
	for _, a := range answers[1:] {
		if a.Answered || !strings.Contains(a.Err, ErrAnswerTooLarge.Error()) {
			t.Fatalf("fake member's answer: %+v", a)
		}
	}
	got, _ := m.Result()
	if len(got) < len(want) {
		t.Fatalf("%d events, want the honest member's %d first", len(got), len(want))
	}
	for i, id := range want {
		if got[i].ID != id {
			t.Fatalf("event %d is not the honest member's", i)
		}
	}
}
