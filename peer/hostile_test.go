package peer

// The hostile-peer suite: each test runs an attack through the node's own
// protocols and asserts the bound that defeats it. README.md's "What a
// hostile peer gets" names each one.

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"

	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/hlc"
)

// A rogue gossips batches of events stamped an hour ahead, each naming a
// new origin, and one whose origin is 64 KiB long. The node that hears
// them forwards none, keeps at most maxSkewOrigins origins in its skew
// table, and its Status stays small; the rogue's score drops.
func TestHostileSkewFloodIsBoundedAndNotForwarded(t *testing.T) {
	ctx := context.Background()
	mn, nodes := newCluster(t, 2, clusterOptions{})
	meshed(t, nodes)
	a, b := nodes[0], nodes[1]
	rogue, topic := joinRogue(t, mn, nodes[:1])

	future := time.Now().Add(time.Hour).UnixNano()
	var batches [][]byte
	for i := range 200 {
		var evs []events.Event
		for j := range 10 {
			e, err := events.Seal(events.Event{Time: hlc.Timestamp{Wall: future}, Node: fmt.Sprintf("origin-%d-%d", i, j), Kind: "k"})
			if err != nil {
				t.Fatal(err)
			}
			evs = append(evs, e)
		}
		data, err := events.EncodeBatch(evs)
		if err != nil {
			t.Fatal(err)
		}
		batches = append(batches, data)
	}
	huge := events.DefaultLimits
	huge.MaxNodeBytes, huge.MaxEventBytes = 1<<20, 1<<20
	longNode, err := huge.Seal(events.Event{Time: hlc.Timestamp{Wall: future}, Node: strings.Repeat("n", 64<<10), Kind: "k"})
	if err != nil {
		t.Fatal(err)
	}
	longBatch, err := huge.EncodeBatch([]events.Event{longNode})
	if err != nil {
		t.Fatal(err)
	}
	for _, data := range append([][]byte{longBatch}, batches...) {
		if err := topic.announce(ctx, data); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, "the rogue to be penalised", func() bool {
		return a.Status().Gossip.BatchesRejected >= 2 && score(a, rogue.ID().String()) < 0
	})
	st := a.Status()
	if len(st.ClockSkew) == 0 || len(st.ClockSkew) > maxSkewOrigins {
		t.Fatalf("the skew table holds %d origins, want 1 to %d", len(st.ClockSkew), maxSkewOrigins)
	}
	if js, _ := json.Marshal(st); len(js) > 64<<10 {
		t.Errorf("Status is %d bytes of JSON", len(js))
	}
	if a.set.Len() != 0 {
		t.Errorf("the node stored %d events from the future", a.set.Len())
	}
	// b hears the rogue only through a, which forwarded none of it: a
	// canary a does forward arrives, the rogue's batches never did.
	canary := a.record(t, "canary")
	eventually(t, 10*time.Second, "a's own event to reach b", func() bool { return b.set.Len() == 1 })
	if bs := b.Status(); bs.Gossip.BatchesRejected != 0 || bs.Gossip.BatchesHeld != 0 || len(bs.ClockSkew) != 0 {
		t.Errorf("the rogue's batches reached b through a: %+v, skew %v", bs.Gossip, bs.ClockSkew)
	}
	if got, err := b.set.Get(ctx, canary.ID); err != nil || got.Kind != "canary" {
		t.Fatalf("canary: %v, %v", got, err)
	}
}

func TestSkewTableKeepsTheLatestOrigins(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	tab := &skewTable{now: func() time.Time { return now }}
	for i := range 10_000 {
		now = now.Add(time.Millisecond)
		tab.record(fmt.Sprintf("origin-%05d", i), hlcAt(now.Add(time.Hour)))
	}
	got := tab.list()
	if len(got) != maxSkewOrigins {
		t.Fatalf("%d origins kept, want %d", len(got), maxSkewOrigins)
	}
	if got[0].Origin != fmt.Sprintf("origin-%05d", 10_000-maxSkewOrigins) {
		t.Errorf("kept %s first, want the latest origins", got[0].Origin)
	}
	now = now.Add(skewExpiry + time.Second)
	if got := tab.list(); len(got) != 0 {
		t.Errorf("%d origins listed after an hour unseen", len(got))
	}
	tab.record("fresh", hlcAt(now.Add(time.Hour)))
	if got := tab.list(); len(got) != 1 || len(tab.origins) != 1 {
		t.Errorf("expired origins were kept: %d listed, %d held", len(got), len(tab.origins))
	}
}

func hlcAt(t time.Time) hlc.Timestamp { return hlc.Timestamp{Wall: t.UnixNano()} }

// Five fresh identities open sync streams to a node and send nothing, and
// a rogue member it syncs with answers nothing. An honest member's
// session with the node, either way, completes regardless; the silent
// streams are refused or cut within the idle limit; the rogue's session
// reports that it stalled, and it is tried after the others.
func TestHostileFrozenReconciliation(t *testing.T) {
	ctx := context.Background()
	const idle = 300 * time.Millisecond
	mn, nodes := newCluster(t, 2, clusterOptions{
		dropGossip: func(int) bool { return true },
		syncLimits: SyncLimits{Idle: idle},
	})
	meshed(t, nodes)
	victim, honest := nodes[0], nodes[1]
	proto := namesFor("test").sync

	var silent []network.Stream
	for range 5 {
		h := connectedPeer(t, mn, victim)
		s, err := h.NewStream(ctx, victim.h.ID(), proto)
		if err != nil {
			t.Fatal(err)
		}
		silent = append(silent, s)
	}
	rogue := connectedPeer(t, mn, victim)
	rogue.SetStreamHandler(proto, func(s network.Stream) {
		io.Copy(io.Discard, s) // takes every frame, answers none
	})
	victim.register(lpeer.AddrInfo{ID: rogue.ID()})

	for range 20 {
		victim.record(t, "victim")
		honest.record(t, "honest")
	}
	start := time.Now()
	res := honest.syncPeer(ctx, victim.h.ID())
	if res.Err != nil || !res.InSync {
		t.Fatalf("the honest member's session with the node: %+v", res)
	}
	results := victim.Sync(ctx)
	if r := results[honest.h.ID().String()]; r.Err != nil || !r.InSync {
		t.Errorf("the node's session with the honest member: %+v", r)
	}
	if r := results[rogue.ID().String()]; !errors.Is(r.Err, ErrStalled) || r.Duration > 5*idle {
		t.Errorf("the session with the silent rogue: %v after %v, want ErrStalled within %v", r.Err, r.Duration, 5*idle)
	}
	if took := time.Since(start); took > 20*idle {
		t.Errorf("the sessions took %v, with an idle limit of %v", took, idle)
	}
	for i, s := range silent {
		if !endedWithin(s, time.Second) {
			t.Errorf("silent stream %d is still open", i)
		}
	}
	if healthy, stalled := victim.members.byHealth([]lpeer.ID{rogue.ID(), honest.h.ID()}); len(stalled) != 1 || stalled[0] != rogue.ID() || len(healthy) != 1 {
		t.Errorf("healthy %v, stalled %v: want the rogue alone stalled", healthy, stalled)
	}
}

// endedWithin reports whether the other end of s reset or closed it
// within d, whatever it sent first. Mocknet streams ignore read deadlines.
func endedWithin(s network.Stream, d time.Duration) bool {
	ended := make(chan struct{})
	go func() {
		io.Copy(io.Discard, s)
		close(ended)
	}()
	select {
	case <-ended:
		return true
	case <-time.After(d):
		s.Reset()
		return false
	}
}

// 300 identities that claim the cluster's sync protocol, but never complete
// a session, connect to a node and leave: they are never members, never
// protected, and once gone the node keeps nothing of them and dials none.
func TestHostileFakeMembersLeaveNothing(t *testing.T) {
	const fakes = 300
	mn, nodes := newCluster(t, 1, clusterOptions{})
	victim := nodes[0]
	proto := namesFor("test").sync
	var ids []lpeer.ID
	for range fakes {
		h, err := mn.GenPeer()
		if err != nil {
			t.Fatal(err)
		}
		h.SetStreamHandler(proto, func(s network.Stream) { s.Reset() })
		ids = append(ids, h.ID())
	}
	// Connected once all claim the protocol: identify may answer from a
	// snapshot of a host's protocols taken just before it registered one.
	for _, id := range ids {
		if _, err := mn.LinkPeers(id, victim.h.ID()); err != nil {
			t.Fatal(err)
		}
		if _, err := mn.ConnectPeers(id, victim.h.ID()); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 20*time.Second, "identify to announce every fake's protocol", func() bool {
		return len(victim.Peers()) == fakes
	})
	// Give their join syncs time to fail: the victim tries those whose
	// peer ID is larger than its own.
	eventually(t, 20*time.Second, "the join syncs to fail", func() bool {
		for _, p := range victim.Peers() {
			id, _ := lpeer.Decode(p.ID)
			if victim.h.ID() < id && p.LastSyncResult.Err == nil {
				return false
			}
		}
		return true
	})
	for _, p := range victim.Peers() {
		if p.Member {
			t.Fatalf("fake %s became a member", p.ID)
		}
	}
	for _, id := range ids {
		if victim.h.ConnManager().IsProtected(id, memberTag) {
			t.Fatalf("fake %s is protected from the connection manager", id)
		}
		mn.UnlinkPeers(id, victim.h.ID())
		mn.DisconnectPeers(id, victim.h.ID())
	}
	eventually(t, 10*time.Second, "the fakes' records to go", func() bool {
		victim.members.mu.Lock()
		defer victim.members.mu.Unlock()
		return len(victim.members.peers) == 0
	})
	if st := victim.Status(); len(st.Peers) != 0 {
		t.Fatalf("Status lists %d peers after the fakes left", len(st.Peers))
	}
	if due, _ := victim.members.dueForDial(); len(due) != 0 {
		t.Fatalf("the node would redial %d fakes", len(due))
	}
}

func TestMemberTableIsBounded(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	tab := newMemberTable(func() time.Time { return now }, DefaultForgetAfter)
	var ids []lpeer.ID
	for i := range 2 * maxMembers {
		p := lpeer.ID(fmt.Sprintf("peer-%04d", i))
		ids = append(ids, p)
		now = now.Add(time.Second)
		tab.connected(p, "c")
		tab.joined(p)
		tab.admit(p)
		tab.disconnected(p, "c")
	}
	if n := len(tab.peers); n != maxMembers {
		t.Fatalf("%d records after admitting %d members, want %d", n, 2*maxMembers, maxMembers)
	}
	if _, ok := tab.peers[ids[len(ids)-1]]; !ok {
		t.Fatal("the newest member was not kept")
	}
	due, _ := tab.dueForDial()
	if len(due) != maxRedials {
		t.Fatalf("%d members due for a redial, want the %d seen last", len(due), maxRedials)
	}
	now = now.Add(DefaultForgetAfter + time.Hour)
	if _, expired := tab.dueForDial(); len(expired) != maxMembers || len(tab.peers) != 0 {
		t.Fatalf("%d members expired, %d kept, a day after they left", len(expired), len(tab.peers))
	}
}

func TestGaterForgetsOldRefusals(t *testing.T) {
	g := NewGater()
	for i := range 2 * maxGated {
		g.refuseFor(lpeer.ID(fmt.Sprintf("peer-%05d", i)), time.Minute+time.Duration(i)*time.Millisecond)
	}
	if len(g.until) != maxGated {
		t.Fatalf("%d refusals held, want %d", len(g.until), maxGated)
	}
	if !g.Refused(lpeer.ID(fmt.Sprintf("peer-%05d", 2*maxGated-1))) || g.Refused("peer-00000") {
		t.Fatal("the gater dropped the wrong refusals: it should drop those ending soonest")
	}
}

// A member of a signing cluster can sign events under any number of fresh
// identities; the cache of their keys stays bounded.
func TestOriginKeysAreBounded(t *testing.T) {
	r := &replica{}
	for range maxOrigins + 100 {
		key, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		id, _ := lpeer.IDFromPrivateKey(key)
		e, err := events.Seal(events.Event{Node: id.String(), Kind: "k"})
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := key.Raw()
		if err := r.checkSignature(events.Sign(e, ed25519.PrivateKey(raw))); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	r.origins.Range(func(any, any) bool { n++; return true })
	if n > maxOrigins {
		t.Fatalf("%d origin keys cached, limit %d", n, maxOrigins)
	}
}

// An outsider connects to a member of a closed cluster that serves its
// DHT. It learns neither the cluster's name ("test") nor any name derived
// from its key: not from identify, not from gossipsub (no subscription
// reaches it), not from a proof it asks for (no key ID in it).
func TestHostileOutsiderLearnsNoNames(t *testing.T) {
	ctx := context.Background()
	key := newKey(t)
	mn, nodes := newCluster(t, 2, clusterOptions{keys: func(int) [][]byte { return [][]byte{key} }, dht: DHTServer})
	victim := nodes[0]
	ring, _ := newKeyring("test", [][]byte{key})
	secrets := []string{"/test/", string(ring[0].id[:])}
	for _, nm := range []names{ring[0].names, namesFor("test")} {
		secrets = append(secrets, nm.topic, nm.rendezvous, string(nm.dhtPrefix)+"/")
	}
	secrets = slices.DeleteFunc(secrets, func(s string) bool { return strings.HasPrefix("/scopemesh/closed/", s) })

	outsider, err := mn.GenPeer()
	if err != nil {
		t.Fatal(err)
	}
	// The outsider proves nothing, and only once it has asked for a proof
	// of its own: the victim cuts it off then.
	asked := make(chan struct{})
	outsider.SetStreamHandler(authProtocol, func(s network.Stream) {
		defer s.Close()
		<-asked
		readFrame(bufio.NewReader(s), nonceLen)
		writeFrame(bufio.NewWriter(s), frameProof, make([]byte, proofEntryLen))
	})
	heard := &subscriptionTracer{}
	if _, err := pubsub.NewGossipSub(ctx, outsider, append(unsignedMessages(), pubsub.WithRawTracer(heard))...); err != nil {
		t.Fatal(err)
	}
	if _, err := mn.LinkPeers(outsider.ID(), victim.h.ID()); err != nil {
		t.Fatal(err)
	}
	if _, err := mn.ConnectPeers(outsider.ID(), victim.h.ID()); err != nil {
		t.Fatal(err)
	}
	var protos []protocol.ID
	eventually(t, 10*time.Second, "identify to list the victim's protocols", func() bool {
		protos, _ = outsider.Peerstore().GetProtocols(victim.h.ID())
		return slices.Contains(protos, authProtocol)
	})
	// The outsider asks for a proof while it can.
	s, err := outsider.NewStream(ctx, victim.h.ID(), authProtocol)
	if err != nil {
		t.Fatal(err)
	}
	nonce := make([]byte, nonceLen)
	rand.Read(nonce)
	bw := bufio.NewWriter(s)
	if err := writeFrame(bw, frameNonce, nonce); err != nil {
		t.Fatal(err)
	}
	_, answer, err := readFrame(bufio.NewReader(s), maxProofKeys*proofEntryLen)
	close(asked)
	if err != nil || len(answer) != proofEntryLen {
		t.Fatalf("the proof answer: %d bytes, %v", len(answer), err)
	}
	eventually(t, 10*time.Second, "the victim to refuse the outsider", func() bool { return victim.gater.Refused(outsider.ID()) })

	seen := append(protos, protocol.ID(answer))
	for _, sub := range heard.topics() {
		seen = append(seen, protocol.ID(sub))
	}
	for _, p := range seen {
		for _, secret := range secrets {
			if strings.Contains(string(p), secret) {
				t.Errorf("the outsider saw %q, which holds %q", p, secret)
			}
		}
	}
	if topics := heard.topics(); len(topics) != 0 {
		t.Errorf("the outsider heard of topics %v", topics)
	}
	// The members themselves do find each other's topics.
	meshed(t, nodes)
}

// subscriptionTracer collects the topics of the subscriptions a gossipsub
// instance hears of.
type subscriptionTracer struct {
	mu   sync.Mutex
	subs []string
}

func (*subscriptionTracer) AddPeer(lpeer.ID, protocol.ID)                         {}
func (*subscriptionTracer) RemovePeer(lpeer.ID)                                   {}
func (*subscriptionTracer) Join(string)                                           {}
func (*subscriptionTracer) Leave(string)                                          {}
func (*subscriptionTracer) Graft(lpeer.ID, string)                                {}
func (*subscriptionTracer) Prune(lpeer.ID, string)                                {}
func (*subscriptionTracer) ValidateMessage(*pubsub.Message)                       {}
func (*subscriptionTracer) DeliverMessage(*pubsub.Message)                        {}
func (*subscriptionTracer) RejectMessage(*pubsub.Message, string)                 {}
func (*subscriptionTracer) DuplicateMessage(*pubsub.Message)                      {}
func (*subscriptionTracer) ThrottlePeer(lpeer.ID)                                 {}
func (*subscriptionTracer) SendRPC(*pubsub.RPC, lpeer.ID)                         {}
func (*subscriptionTracer) DropRPC(*pubsub.RPC, lpeer.ID)                         {}
func (*subscriptionTracer) UndeliverableMessage(*pubsub.Message)                  {}
func (*subscriptionTracer) OnNewOutboundStream(lpeer.ID, protocol.ID)             {}
func (*subscriptionTracer) OnClosedOutboundStream(lpeer.ID)                       {}
func (*subscriptionTracer) SendRPCCompleted(*pubsub.RPC, lpeer.ID, time.Duration) {}

func (s *subscriptionTracer) RecvRPC(rpc *pubsub.RPC) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sub := range rpc.GetSubscriptions() {
		s.subs = append(s.subs, sub.GetTopicid())
	}
}

func (s *subscriptionTracer) topics() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.subs)
}

// A node's relay service reserves slots for members only: a stranger that
// connects and asks is refused, a member that joins is served.
func TestHostileRelayServesMembersOnly(t *testing.T) {
	ctx := context.Background()
	mn, nodes := newCluster(t, 2, clusterOptions{})
	relayNode, member := nodes[0], nodes[1]
	acl := NewRelayACL()
	acl.host.Store(relayNode.Host)
	r, err := relay.New(relayNode.h, relay.WithInfiniteLimits(), relay.WithACL(acl))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	at := lpeer.AddrInfo{ID: relayNode.h.ID(), Addrs: relayNode.h.Addrs()}

	stranger, err := mn.GenPeer()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mn.LinkPeers(stranger.ID(), relayNode.h.ID()); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := client.Reserve(ctx, stranger, at); err == nil {
		t.Fatal("a stranger reserved a slot on a member's relay")
	}
	if took := time.Since(start); took > relayWait/2 {
		t.Errorf("the stranger's refusal took %v: the relay waited for it as for a candidate", took)
	}
	eventually(t, 10*time.Second, "the member to be admitted", func() bool { return relayNode.members.isMember(member.h.ID()) })
	if _, err := client.Reserve(ctx, member.h, at); err != nil {
		t.Fatalf("a member's reservation: %v", err)
	}
	if acl.AllowConnect(stranger.ID(), nil, member.h.ID()) {
		t.Error("a stranger may open a circuit to a member")
	}
}
