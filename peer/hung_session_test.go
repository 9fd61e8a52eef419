package peer

import (
	"context"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
)

// A peer whose sync session hangs — its stream takes frames and answers
// none, or stops in the middle of a frame, as over a connection that froze
// mid-session — holds one of a node's session slots until the idle limit
// (the default 10 s) ends it. Meanwhile sessions with two other members
// complete within about a second: the hung session delays them by at most
// SyncLimits.shareAfter, not by the idle limit. Where the node started the
// hung session, with sessions the node starts and one a member starts;
// where the frozen peer did.
func TestHungSessionDoesNotBlockOthers(t *testing.T) {
	type syncFunc func(victim, left, right *testNode) SyncResult
	byNode := func(victim, other *testNode) SyncResult {
		return victim.syncPeer(context.Background(), other.h.ID())
	}
	for _, tc := range []struct {
		name     string
		byNode   bool     // the node starts the hung session; else the frozen peer does
		sessions []string // who starts the two sessions beside it
		run      [2]syncFunc
	}{
		{"started by the node", true, []string{"the node, with one member", "the node, with another"}, [2]syncFunc{
			func(v, l, _ *testNode) SyncResult { return byNode(v, l) },
			func(v, _, r *testNode) SyncResult { return byNode(v, r) },
		}},
		{"started by the node, beside a member's", true, []string{"the node", "a member"}, [2]syncFunc{
			func(v, l, _ *testNode) SyncResult { return byNode(v, l) },
			func(v, _, r *testNode) SyncResult { return byNode(r, v) },
		}},
		{"started by the frozen peer", false, []string{"the node", "a member"}, [2]syncFunc{
			func(v, l, _ *testNode) SyncResult { return byNode(v, l) },
			func(v, _, r *testNode) SyncResult { return byNode(r, v) },
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mn, nodes := newCluster(t, 3, clusterOptions{dropGossip: func(int) bool { return true }})
			meshed(t, nodes)
			victim, left, right := nodes[0], nodes[1], nodes[2]
			proto := namesFor("test").sync
			frozen := connectedPeer(t, mn, victim)
			if tc.byNode {
				frozen.SetStreamHandler(proto, func(s network.Stream) {
					io.Copy(io.Discard, s) // takes every frame, answers none
				})
				ctx, cancel := context.WithCancel(context.Background())
				var wg sync.WaitGroup
				t.Cleanup(func() { cancel(); wg.Wait() })
				wg.Go(func() {
					if res := victim.syncPeer(ctx, frozen.ID()); res.Err == nil {
						t.Errorf("the session with the frozen peer completed: %+v", res)
					}
				})
			} else {
				// The frozen peer opens a session and sends the start of a
				// frame, then nothing more; one refused as busy, by a
				// session the node runs just then, is opened again.
				eventually(t, 10*time.Second, "the frozen peer's session to start", func() bool {
					s, err := frozen.NewStream(context.Background(), victim.h.ID(), proto)
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { s.Reset() })
					if _, err := s.Write([]byte{10}); err != nil { // a frame's length: 10 bytes follow
						t.Fatal(err)
					}
					return sessionRuns(victim, frozen.ID(), 200*time.Millisecond)
				})
			}
			eventually(t, 5*time.Second, "the hung session to take a slot", func() bool {
				return sessionRuns(victim, frozen.ID(), 0)
			})

			const each = 20
			for range each {
				victim.record(t, "victim")
				left.record(t, "left")
				right.record(t, "right")
			}
			start := time.Now()
			var results [2]SyncResult
			var wg sync.WaitGroup
			for i, run := range tc.run {
				wg.Go(func() { results[i] = run(victim, left, right) })
			}
			wg.Wait()
			took := time.Since(start)
			for i, r := range results {
				if r.Err != nil {
					t.Errorf("a session started by %s beside the hung one: %v", tc.sessions[i], r.Err)
				}
			}
			if got := [3]int{victim.set.Len(), left.set.Len(), right.set.Len()}; got[0] != 3*each || got[1] < 2*each || got[2] < 2*each {
				t.Errorf("the node and the members hold %v events", got)
			}
			idle := victim.syncLimits.Idle
			if took > idle/3 {
				t.Errorf("the sessions took %v beside one hung for up to %v", took, idle)
			}
			if !sessionRuns(victim, frozen.ID(), 0) {
				t.Error("the hung session ended before the others: the test proves nothing")
			}
			t.Logf("two sessions completed in %v beside one hung (idle limit %v)", took.Round(time.Millisecond), idle)
		})
	}
}

// sessionRuns reports whether n runs a session with p, waiting up to d
// for one to start.
func sessionRuns(n *testNode, p lpeer.ID, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		n.sessions.mu.Lock()
		runs, ended := n.sessions.peers[p], n.sessions.ended
		n.sessions.mu.Unlock()
		if runs || !time.Now().Before(deadline) {
			return runs
		}
		select {
		case <-ended:
		case <-time.After(time.Until(deadline)):
		}
	}
}
