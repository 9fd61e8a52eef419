package peer

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
)

// fakeRecords signs n records of n fresh identities.
func fakeRecords(t testing.TB, n int) [][]byte {
	t.Helper()
	out := make([][]byte, n)
	for i := range out {
		key, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if out[i], err = signRecord(&memberRecord{Name: "fake", Incarnation: 1, Beat: 1,
			Wall: time.Now().Add(-10 * time.Minute).UnixNano()}, key); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// pushList sends payload as a member list to p over the view protocol from
// h, and returns the stream's end: the answer frame, or an error.
func pushList(t testing.TB, h host.Host, p lpeer.ID, payload []byte) error {
	t.Helper()
	s, err := h.NewStream(context.Background(), p, namesFor("test").view)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := writeFrame(bufio.NewWriter(s), frameRecords, payload); err != nil {
		return err
	}
	st := newStream(s, SyncLimits{Idle: 5 * time.Second, Bytes: maxViewFrame + 64})
	if _, _, err = st.recvMax(maxViewFrame, frameRecords); err != nil {
		return err
	}
	// The node closes once it has freed the exchange: the next push from
	// h is then never refused as busy.
	s.CloseWrite()
	_, err = io.Copy(io.Discard, s)
	return err
}

// inView counts the members in a node's view.
func inView(n *testNode) int {
	n.members.mu.Lock()
	defer n.members.mu.Unlock()
	count := 0
	for _, m := range n.members.peers {
		if m.inView() {
			count++
		}
	}
	return count
}

// TestHostileViewFloodIsBounded: a member that hands a node more member
// records than the view holds, records badly signed, and a list frame over
// the limit, gets no more than maxMembers records in, none of the bad ones,
// and its oversized frame refused; a stranger gets nothing in at all.
func TestHostileViewFloodIsBounded(t *testing.T) {
	mn, nodes := newCluster(t, 1, clusterOptions{})
	victim := nodes[0]
	rogue, err := mn.GenPeer()
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := mn.GenPeer()
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []host.Host{rogue, stranger} {
		if _, err := mn.LinkPeers(h.ID(), victim.h.ID()); err != nil {
			t.Fatal(err)
		}
		if _, err := mn.ConnectPeers(h.ID(), victim.h.ID()); err != nil {
			t.Fatal(err)
		}
	}
	admitAll(t, victim, []host.Host{rogue})

	fakes := fakeRecords(t, maxMembers+100)
	if err := pushList(t, stranger, victim.h.ID(), joinRecords(fakes[0], fakes[1:maxMembers])); err == nil {
		t.Fatal("a stranger swapped member lists")
	}
	if n := inView(victim); n != 1 { // the rogue, admitted
		t.Fatalf("a stranger put %d records in the view", n-1)
	}

	tampered := bytes.Clone(fakes[0])
	tampered[len(tampered)-1] ^= 1 // the signature's last byte
	before := victim.view.rejected.Load()
	if err := pushList(t, rogue, victim.h.ID(), joinRecords(tampered, [][]byte{[]byte("not a record")})); err != nil {
		t.Fatal(err)
	}
	if n, rejected := inView(victim), victim.view.rejected.Load()-before; n != 1 || rejected != 2 {
		t.Fatalf("after bad records: %d in the view, %d rejected; want the rogue alone and 2", n, rejected)
	}

	if err := pushList(t, rogue, victim.h.ID(), joinRecords(fakes[0], fakes[1:maxMembers])); err != nil {
		t.Fatal(err)
	}
	if err := pushList(t, rogue, victim.h.ID(), joinRecords(fakes[maxMembers], fakes[maxMembers+1:])); err != nil {
		t.Fatal(err)
	}
	if n := inView(victim); n != maxMembers {
		t.Fatalf("%d members in the view after %d records were offered, want the %d it holds", n, len(fakes), maxMembers)
	}

	huge := make([]byte, maxViewFrame+1)
	if err := pushList(t, rogue, victim.h.ID(), huge); err == nil {
		t.Fatal("an oversized member list was answered")
	}
}

// TestHostileViewExchangesAreBounded: a member that opens exchanges and
// sends nothing holds one slot, not more, for at most viewTimeout.
func TestHostileViewExchangesAreBounded(t *testing.T) {
	mn, nodes := newCluster(t, 1, clusterOptions{})
	victim := nodes[0]
	rogue := connectedPeer(t, mn, victim)
	admitAll(t, victim, []host.Host{rogue})
	silent, err := rogue.NewStream(context.Background(), victim.h.ID(), namesFor("test").view)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Reset()
	if _, err := silent.Write([]byte{0x80}); err != nil { // the start of a frame's length: the protocol is negotiated
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the silent exchange to take its slot", func() bool {
		victim.view.mu.Lock()
		defer victim.view.mu.Unlock()
		return victim.view.served[rogue.ID()]
	})
	if err := pushList(t, rogue, victim.h.ID(), joinRecords(fakeRecords(t, 1)[0], nil)); !errors.Is(err, ErrViewBusy) {
		t.Fatalf("a second exchange of the same peer: %v, want ErrViewBusy", err)
	}
	if !endedWithin(silent, viewTimeout+2*time.Second) {
		t.Fatal("the silent exchange was not cut off")
	}
}

// TestClosedRecordsNeedTheKey: in a closed cluster a record opens only
// with a proof of one of the keys, made for its member and incarnation.
func TestClosedRecordsNeedTheKey(t *testing.T) {
	ring, err := newKeyring("test", [][]byte{bytes.Repeat([]byte{1}, KeyLen)})
	if err != nil {
		t.Fatal(err)
	}
	other, err := newKeyring("test", [][]byte{bytes.Repeat([]byte{2}, KeyLen)})
	if err != nil {
		t.Fatal(err)
	}
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p, err := lpeer.IDFromPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		proof []byte
		ok    bool
	}{
		{"with the proof", proofOfKey(ring[0].auth, p, 7), true},
		{"without one", nil, false},
		{"under another key", proofOfKey(other[0].auth, p, 7), false},
		{"of another incarnation", proofOfKey(ring[0].auth, p, 8), false},
	} {
		env, err := signRecord(&memberRecord{Incarnation: 7, Proof: c.proof}, key)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := openRecord(env, ring); (err == nil) != c.ok {
			t.Errorf("a record %s: %v", c.name, err)
		}
	}
}

// TestClosedViewSpreads: the view spreads in a closed cluster as in an
// open one.
func TestClosedViewSpreads(t *testing.T) {
	key := bytes.Repeat([]byte{9}, KeyLen)
	_, nodes := newUnconnected(t, 4, clusterOptions{keys: func(int) [][]byte { return [][]byte{key} }})
	for i := 1; i < len(nodes); i++ {
		join(t, nodes, i, i-1)
	}
	views(t, nodes, StateConnected, 10*time.Second)
}

// TestSavedMembersThatDoNotReadAreSkipped: saved member records that are
// junk, tampered, expired or too many start the node without them; good ones are
// known, as last heard when they were signed.
func TestSavedMembersThatDoNotReadAreSkipped(t *testing.T) {
	_, nodes := newCluster(t, 1, clusterOptions{})
	n := nodes[0]
	fakes := fakeRecords(t, 3)
	tampered := bytes.Clone(fakes[0])
	tampered[len(tampered)-1] ^= 1
	n.view.restore([]byte("junk"))
	n.view.restore(joinRecords(nil, [][]byte{tampered, []byte("not a record")}))
	if got := inView(n); got != 0 {
		t.Fatalf("%d members from records that do not read", got)
	}
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	stale, err := signRecord(&memberRecord{Name: "stale", Incarnation: 1, Beat: 1,
		Wall: time.Now().Add(-DefaultForgetAfter - time.Hour).UnixNano()}, key)
	if err != nil {
		t.Fatal(err)
	}
	n.view.restore(joinRecords(nil, [][]byte{stale}))
	if got := inView(n); got != 0 {
		t.Fatalf("%d members from a record older than the expiry", got)
	}
	n.view.restore(joinRecords(nil, fakes[1:]))
	if got := inView(n); got != 2 {
		t.Fatalf("%d members from 2 good records", got)
	}
	for _, p := range n.Peers() {
		if p.State == StateConnected || p.State == StateReachable {
			t.Fatalf("a restored member is %s before anything was heard of it", p.State)
		}
	}
}

// TestMembersAreSavedSoonAfterTheyChange: a node hands its member records
// to SaveMembers soon after it learns of a member, not only every ten
// minutes and at Close: one killed a minute after it joined still knows
// whom to redial.
func TestMembersAreSavedSoonAfterTheyChange(t *testing.T) {
	var saved atomic.Int64 // records in node 0's latest save
	newCluster(t, 2, clusterOptions{saveMembers: func(i int, b []byte) error {
		if i == 0 {
			envs, err := splitRecords(b)
			if err != nil {
				t.Error(err)
			}
			saved.Store(int64(len(envs)))
		}
		return nil
	}})
	eventually(t, 10*time.Second, "node 0 to save the member it knows", func() bool { return saved.Load() == 1 })
}
