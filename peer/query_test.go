package peer

import (
	"bufio"
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	lpeer "github.com/libp2p/go-libp2p/core/peer"

	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/internal/fixture"
	"github.com/scopemesh/scopemesh/query"
)

func TestQueryPeers(t *testing.T) {
	ctx := context.Background()
	mn, nodes := newCluster(t, 2, clusterOptions{dropGossip: func(int) bool { return true }})
	a, b := nodes[0], nodes[1]
	for range 5 {
		b.record(t, "wanted")
		b.record(t, "other")
	}

	// A rogue host answers the query protocol with events the filter does
	// not match, and another never answers.
	rogue, err := mn.GenPeer()
	if err != nil {
		t.Fatal(err)
	}
	silent, err := mn.GenPeer()
	if err != nil {
		t.Fatal(err)
	}
	if err := mn.LinkAll(); err != nil {
		t.Fatal(err)
	}
	proto := namesFor("test").query
	rogue.SetStreamHandler(proto, func(s network.Stream) {
		defer s.Close()
		w := bufio.NewWriter(s)
		readFrame(bufio.NewReader(s), maxFrame)
		batch, _ := events.EncodeBatch(fixture.New(9, 1).Batch(3))
		writeFrame(w, frameEvents, batch)
		writeFrame(w, frameEnd, nil)
	})
	silent.SetStreamHandler(proto, func(s network.Stream) { time.Sleep(time.Second); s.Reset() })
	for _, h := range []lpeer.ID{rogue.ID(), silent.ID()} {
		if _, err := mn.ConnectPeers(a.h.ID(), h); err != nil {
			t.Fatal(err)
		}
	}

	ctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	f := query.Filter{Kinds: []string{"wanted"}}
	answers, found := a.QueryPeers(ctx, f, []lpeer.ID{b.h.ID(), rogue.ID(), silent.ID()})
	if !answers[0].Answered || answers[0].Count != 5 || len(found[0]) != 5 {
		t.Fatalf("member's answer: %+v", answers[0])
	}
	if answers[1].Answered || answers[1].Err == "" || len(found[1]) != 0 {
		t.Fatalf("rogue's answer accepted: %+v", answers[1])
	}
	if answers[2].Answered || answers[2].Err == "" || answers[2].Latency > time.Second {
		t.Fatalf("silent peer's answer: %+v", answers[2])
	}
}
