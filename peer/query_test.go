package peer

import (
	"bufio"
	"context"
	"io"
	"slices"
	"strings"
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
	admitted(t, nodes)
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
	silent.SetStreamHandler(proto, func(s network.Stream) {
		defer s.Reset()
		io.Copy(io.Discard, s) // until the asker gives up
	})
	for _, h := range []lpeer.ID{rogue.ID(), silent.ID()} {
		if _, err := mn.ConnectPeers(a.h.ID(), h); err != nil {
			t.Fatal(err)
		}
	}

	ctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	f := query.Filter{Kinds: []string{"wanted"}}
	m := query.NewMerger(f)
	answers := a.QueryPeers(ctx, f, []lpeer.ID{b.h.ID(), rogue.ID(), silent.ID()}, m)
	if !answers[0].Answered || answers[0].Count != 5 {
		t.Fatalf("member's answer: %+v", answers[0])
	}
	if answers[1].Answered || answers[1].Err == "" || answers[1].Count != 0 {
		t.Fatalf("rogue's answer accepted: %+v", answers[1])
	}
	if answers[2].Answered || answers[2].Err == "" || answers[2].Latency > time.Second {
		t.Fatalf("silent peer's answer: %+v", answers[2])
	}
	got, _ := m.Result()
	if len(got) != 5 || slices.ContainsFunc(got, func(e events.Event) bool { return e.Kind != "wanted" }) {
		t.Fatalf("merged %d events, want the member's 5", len(got))
	}

	// A limit above what peers answer is refused.
	f.Limit = query.MaxRemoteLimit + 1
	if ans := a.QueryPeers(context.Background(), f, []lpeer.ID{b.h.ID()}, query.NewMerger(f))[0]; ans.Answered || !strings.Contains(ans.Err, ErrQueryLimit.Error()) {
		t.Fatalf("a query above the remote limit: %+v", ans)
	}
}
