package peer

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	lpeer "github.com/libp2p/go-libp2p/core/peer"

	"github.com/scopemesh/scopemesh/hlc"
)

// PeerInfo is what a node knows of one member of its cluster.
type PeerInfo struct {
	ID               string
	Name             string        // the name it gives itself (Config.Name); empty until its record arrives
	State            MemberState   // how this node last heard from it
	Clock            hlc.Timestamp // its clock reading in its latest record
	Addrs            []string      // known multiaddrs, without the /p2p part
	Connected        bool          // a connection is open now
	Member           bool          // proved the cluster key, or completed a sync session with this node
	Refused          bool          // disconnected on request: refused until Connect
	ConnectedSince   time.Time     // start of the current connection; zero if none
	UnreachableSince time.Time     // when the last connection closed; zero while connected
	LastSeen         time.Time     // last connection or message from it
	Reconnects       int           // times it came back after being unreachable
	RTT              time.Duration // smoothed round-trip time; zero if unknown
	InMesh           bool          // in this node's gossip mesh: gossip flows to it directly
	GossipScore      float64       // its gossipsub peer score here; negative means penalised
	EventsReceived   uint64        // events new to this node that it delivered by gossip
	LastSync         time.Time     // end of the last sync session with it, either side's; zero if none
	LastSyncResult   SyncResult    // that session's result
	InSync           bool          // the last session ended with both sets equal
	Connections      []Connection  // the open connections, oldest first
}

// MemberState says how a node last heard from a member.
type MemberState string

const (
	StateConnected   MemberState = "connected"   // a connection to it is open
	StateReachable   MemberState = "reachable"   // a member this node reaches has a connection to it, or its record just came
	StateSuspect     MemberState = "suspect"     // neither, for suspectAfter
	StateUnreachable MemberState = "unreachable" // neither, for unreachableAfter
	StateLeft        MemberState = "left"        // it said goodbye when it closed
)

// Connection is one open connection to a peer. It tells a direct
// connection, for instance one made by hole punching, from one through a
// relay.
type Connection struct {
	Addr    string    // the peer's end, a multiaddr; through a relay it contains /p2p-circuit
	Relayed bool      // it runs through a relay
	Limited bool      // the relay caps its time and bytes: gossip does not use it
	Inbound bool      // the peer dialled
	Opened  time.Time // when it was established
}

// member is the table's record of one peer.
type member struct {
	PeerInfo
	record    *memberRecord       // the newest record it signed; nil if none came
	envelope  []byte              // that record as signed, to pass on
	digest    uint64              // linkDigest of its ID, as records list it
	heard     time.Time           // when there was last news of it: a new record, or a member reached linking it
	conns     map[string]struct{} // IDs of the open connections
	candidate bool                // speaks the cluster protocol or subscribed to its topic
	wanted    bool                // registered by Connect or Bootstrap: re-dialled while unreachable
	syncOwed  bool                // a requested sync failed for want of a connection: see oweSync
	stalled   time.Time           // when its last session stalled; zero if it did not
	backoff   time.Duration
	nextDial  time.Time
}

// Redial backoff bounds.
const (
	minRedial = time.Second
	maxRedial = 30 * time.Second
)

// Membership bounds. A peer becomes a member by proving itself (see
// admit), or through its signed record, passed on by members (learn), and
// then costs the node a record, a protected connection and redials: at
// most maxMembers of them, of which the maxRedials seen last are
// redialled while fewer than maxRedials are connected; a member
// unreachable for the table's expiry (Config.ForgetAfter) is forgotten,
// and so is one that left, after leftExpiry.
const (
	maxMembers         = 512
	maxRedials         = 64
	DefaultForgetAfter = 24 * time.Hour
	leftExpiry         = time.Hour
)

// How long a member not connected, with no news of it, is suspect, then
// unreachable: half a beat and two. Variables: tests shorten them with
// memberBeat.
var (
	suspectAfter     = memberBeat / 2
	unreachableAfter = 2 * memberBeat
)

// memberTable tracks the peers of the cluster. It keeps a record of every
// connected peer and, once a peer disconnects, only of members, wanted and
// refused peers, so that what a stranger costs ends with its connections.
// It is safe for concurrent use; its methods never block on the network.
type memberTable struct {
	now    func() time.Time
	expiry time.Duration // a member unreachable this long is forgotten

	mu       sync.Mutex
	peers    map[lpeer.ID]*member
	admitted chan struct{} // closed, and replaced, when a member is admitted
	// forgotten holds the incarnation of each member Forget dropped, so
	// that its old records, still passed around, do not bring it back; a
	// newer incarnation does. At most maxMembers, each for expiry.
	forgotten map[lpeer.ID]forgetting
	// broughtForward is when a returning member last brought the other
	// redials forward: a member that flaps does so once per maxRedial.
	broughtForward time.Time
}

type forgetting struct {
	incarnation uint64
	at          time.Time
}

func newMemberTable(now func() time.Time, expiry time.Duration) *memberTable {
	return &memberTable{now: now, expiry: expiry, peers: make(map[lpeer.ID]*member),
		admitted: make(chan struct{}), forgotten: make(map[lpeer.ID]forgetting)}
}

// getLocked returns p's record, creating it.
//
// REQUIRES: t.mu
func (t *memberTable) getLocked(p lpeer.ID) *member {
	m, ok := t.peers[p]
	if !ok {
		m = &member{PeerInfo: PeerInfo{ID: p.String()}, digest: linkDigest(p)}
		t.peers[p] = m
	}
	return m
}

// reachedLocked marks as heard from now the members this node reaches:
// those a member it has a connection to lists a connection to, and so on.
// A member's records come once a beat, but its neighbours' connections to
// it say, for as long as they last, that it is alive.
//
// REQUIRES: t.mu
func (t *memberTable) reachedLocked(now time.Time) {
	byDigest := make(map[uint64]*member, len(t.peers))
	var frontier []*member
	for _, m := range t.peers {
		byDigest[m.digest] = m
		if m.Connected && !m.Refused {
			frontier = append(frontier, m)
		}
	}
	reached := make(map[*member]bool, len(frontier))
	for _, m := range frontier {
		reached[m] = true
	}
	for len(frontier) > 0 {
		m := frontier[len(frontier)-1]
		frontier = frontier[:len(frontier)-1]
		if m.record == nil || m.left() {
			continue
		}
		for _, d := range m.record.Links {
			if o := byDigest[d]; o != nil && !reached[o] {
				reached[o] = true
				o.heard = now
				frontier = append(frontier, o)
			}
		}
	}
}

// kept reports whether m's record outlives its connections.
func (m *member) kept() bool { return m.inView() || m.wanted || m.Refused }

// inView reports whether m counts among the cluster's members: admitted,
// or known by its record.
func (m *member) inView() bool { return m.Member || m.record != nil }

// left reports whether m said goodbye in its latest record.
func (m *member) left() bool { return m.record != nil && m.record.Left }

// lastHeard is when the node last had news that m is alive.
func (m *member) lastHeard() time.Time {
	latest := m.heard
	for _, t := range []time.Time{m.LastSeen, m.UnreachableSince, m.ConnectedSince} {
		if t.After(latest) {
			latest = t
		}
	}
	return latest
}

// state says how the node last heard from m at now.
func (m *member) state(now time.Time) MemberState {
	switch since := now.Sub(m.lastHeard()); {
	case m.left():
		return StateLeft
	case m.Connected:
		return StateConnected
	case since < suspectAfter:
		return StateReachable
	case since < unreachableAfter:
		return StateSuspect
	}
	return StateUnreachable
}

// listed reports whether m appears among the cluster's peers: a kept
// record, or a candidate while it is connected.
func (m *member) listed() bool { return m.kept() || m.candidate && m.Connected }

// connected records that connection conn with p opened; recording one
// twice changes nothing. It reports whether p is a member that was
// unreachable and is back, and whether a sync with p is owed (oweSync).
func (t *memberTable) connected(p lpeer.ID, conn string) (returned, owed bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.getLocked(p)
	now := t.now()
	m.LastSeen = now
	if m.conns == nil {
		m.conns = make(map[string]struct{})
	}
	m.conns[conn] = struct{}{}
	owed, m.syncOwed = m.syncOwed, false
	if m.Connected {
		return false, owed
	}
	returned = m.kept() && !m.Refused && !m.UnreachableSince.IsZero()
	if returned {
		m.Reconnects++
		t.soonerLocked(now)
	}
	m.Connected, m.ConnectedSince, m.UnreachableSince = true, now, time.Time{}
	m.backoff, m.nextDial = 0, time.Time{}
	return returned, owed
}

// soonerLocked brings the redials of the unreachable members forward to
// within minRedial: a member came back, so a path to the cluster did,
// and those behind it may be back too. Their backoff starts over. It
// does so at most once per maxRedial.
func (t *memberTable) soonerLocked(now time.Time) {
	if now.Sub(t.broughtForward) < maxRedial {
		return
	}
	t.broughtForward = now
	for _, o := range t.peers {
		if !o.Connected && o.nextDial.After(now.Add(minRedial)) {
			o.backoff = minRedial
			o.nextDial = now.Add(rand.N(minRedial)) // jitter spreads the redials
		}
	}
}

// oweSync records that a requested sync with p failed while no connection
// to p was open, so that p's next connection asks for it again. The table
// alone cannot tell: the swarm reports a closed connection asynchronously,
// so the next connection may open while the table still counts the closed
// one, and p never looks as if it came back. The caller must record the
// debt before it checks that p is not connected: then either that check
// sees the next connection, or the next connection sees the debt. The
// debt of a peer that is not listed goes with its record.
func (t *memberTable) oweSync(p lpeer.ID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if m, ok := t.peers[p]; ok {
		m.syncOwed = true
	}
}

// disconnected records that connection conn with p closed. It reports
// whether it was the last, and forgets p then unless p is listed.
func (t *memberTable) disconnected(p lpeer.ID, conn string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	m, ok := t.peers[p]
	if !ok {
		return false
	}
	if _, open := m.conns[conn]; !open {
		return false
	}
	if delete(m.conns, conn); len(m.conns) > 0 {
		return false
	}
	if !m.kept() {
		delete(t.peers, p)
		return true
	}
	m.Connected, m.ConnectedSince, m.UnreachableSince = false, time.Time{}, t.now()
	m.InMesh = false
	return true
}

// joined records that p, which is connected, speaks the cluster protocol
// or subscribed to its topic. It reports whether p is new to the cluster:
// neither a candidate nor a member before. (The news may come before the
// connection's: dueForDial sweeps a record left without connections.)
func (t *memberTable) joined(p lpeer.ID) (first bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.getLocked(p)
	first = !m.candidate && !m.Member
	m.candidate = true
	m.LastSeen = t.now()
	return first
}

// An admission is what admit decided: the peer admitted and the member
// evicted to make room for it, each empty if none.
type admission struct{ admitted, evicted lpeer.ID }

// admit makes p a member: it proved the cluster key, or completed a sync
// session. Past maxMembers it first forgets the member unreachable the
// longest, if there is one that is not wanted; if not, p is not admitted.
func (t *memberTable) admit(p lpeer.ID) admission {
	t.mu.Lock()
	defer t.mu.Unlock()
	m, ok := t.peers[p]
	if !ok || m.Member || m.Refused {
		return admission{}
	}
	var evicted lpeer.ID
	if !m.inView() {
		var ok bool
		if evicted, ok = t.makeRoomLocked(); !ok {
			return admission{}
		}
	}
	m.Member = true
	close(t.admitted)
	t.admitted = make(chan struct{})
	return admission{admitted: p, evicted: evicted}
}

// makeRoomLocked makes room for one more member past maxMembers: it
// forgets one that left or, if none has, the one not heard from the
// longest, if one is neither wanted nor connected. It returns the member
// forgotten, if any, and whether there is room.
//
// REQUIRES: t.mu
func (t *memberTable) makeRoomLocked() (lpeer.ID, bool) {
	n := 0
	var evicted lpeer.ID
	older := func(a, b *member) bool {
		return a.left() && !b.left() || a.left() == b.left() && a.lastHeard().Before(b.lastHeard())
	}
	for q, o := range t.peers {
		if !o.inView() {
			continue
		}
		n++
		if !o.wanted && !o.Connected && (evicted == "" || older(o, t.peers[evicted])) {
			evicted = q
		}
	}
	if n < maxMembers {
		return "", true
	}
	if evicted == "" {
		return "", false
	}
	delete(t.peers, evicted)
	return evicted, true
}

// learn takes r, the record p signed, as env, if it is newer than what
// the table holds of p and p was not forgotten since. It reports whether
// it took it, and the incarnation of the record it held before (0: none;
// another than r's: p started anew), and returns a member it forgot to
// make room, if any.
func (t *memberTable) learn(p lpeer.ID, r *memberRecord, env []byte) (news bool, previous uint64, evicted lpeer.ID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if f, ok := t.forgotten[p]; ok && r.Incarnation <= f.incarnation {
		return false, 0, ""
	}
	m, ok := t.peers[p]
	if ok && m.record != nil && !r.newer(m.record) {
		return false, 0, ""
	}
	if !ok || !m.inView() {
		var room bool
		if evicted, room = t.makeRoomLocked(); !room {
			return false, 0, ""
		}
		m = t.getLocked(p)
	}
	if m.record != nil {
		previous = m.record.Incarnation
	}
	delete(t.forgotten, p)
	m.record, m.envelope, m.heard = r, env, t.now()
	m.Name, m.Clock = r.Name, r.clock()
	return true, previous, evicted
}

// restore adds p's record from a node's last run, unless the table holds
// one as new or the record is older than the expiry: p is last heard of
// when it signed it. It reports whether p was added.
func (t *memberTable) restore(p lpeer.ID, r *memberRecord, env []byte) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.now().Sub(time.Unix(0, r.Wall)) > t.expiry {
		return false
	}
	m, ok := t.peers[p]
	if ok && m.record != nil && !r.newer(m.record) {
		return false
	}
	if !ok || !m.inView() {
		if _, room := t.makeRoomLocked(); !room { // at start: nothing to unprotect
			return false
		}
		m = t.getLocked(p)
	}
	m.record, m.envelope = r, env
	m.heard = time.Unix(0, r.Wall)
	if now := t.now(); m.heard.After(now) {
		m.heard = now
	}
	m.Name, m.Clock = r.Name, r.clock()
	return true
}

// forget drops p from the table, unless it is connected now, and keeps
// its records out until it starts again. It reports whether p was known.
func (t *memberTable) forget(p lpeer.ID) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	m, ok := t.peers[p]
	if !ok {
		return false
	}
	var inc uint64
	if m.record != nil {
		inc = m.record.Incarnation
	}
	if len(t.forgotten) >= maxMembers {
		var oldest lpeer.ID
		for q, f := range t.forgotten {
			if oldest == "" || f.at.Before(t.forgotten[oldest].at) {
				oldest = q
			}
		}
		delete(t.forgotten, oldest)
	}
	t.forgotten[p] = forgetting{inc, t.now()}
	delete(t.peers, p)
	return true
}

// byName returns the members whose record gives them name.
func (t *memberTable) byName(name string) []lpeer.ID {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []lpeer.ID
	for p, m := range t.peers {
		if m.Name == name {
			out = append(out, p)
		}
	}
	return out
}

// size counts the members in the view.
func (t *memberTable) size() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, m := range t.peers {
		if m.inView() {
			n++
		}
	}
	return n
}

// holds reports whether env is the signed record the table holds for
// some member: a list exchange then need not check its signature again.
func (t *memberTable) holds(env []byte) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, m := range t.peers {
		if bytes.Equal(m.envelope, env) {
			return true
		}
	}
	return false
}

// envelopes returns the signed records the table holds, for a member
// that joins.
func (t *memberTable) envelopes() [][]byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([][]byte, 0, len(t.peers))
	for _, m := range t.peers {
		if m.envelope != nil {
			out = append(out, m.envelope)
		}
	}
	return out
}

// A queryTarget is a member a cluster query asks, and the neighbours that
// may pass the query on to it: the connected members whose records list a
// connection to it.
type queryTarget struct {
	id         lpeer.ID
	connected  bool
	neighbours []lpeer.ID
}

// queryTargets returns the members a cluster query must ask: those in the
// view that did not leave, and the wanted peers; with candidates, the
// connected candidates too, which in an open cluster may hold events
// before they are admitted.
func (t *memberTable) queryTargets(candidates bool) []queryTarget {
	t.mu.Lock()
	defer t.mu.Unlock()
	links := make(map[uint64][]lpeer.ID)
	for q, m := range t.peers {
		if m.Connected && m.record != nil && !m.Refused {
			for _, d := range m.record.Links {
				links[d] = append(links[d], q)
			}
		}
	}
	var out []queryTarget
	for p, m := range t.peers {
		asked := m.inView() || m.wanted || candidates && m.candidate && m.Connected
		if asked && !m.left() && !m.Refused {
			out = append(out, queryTarget{id: p, connected: m.Connected, neighbours: links[linkDigest(p)]})
		}
	}
	return out
}

// isMember reports whether p is a member and not refused.
func (t *memberTable) isMember(p lpeer.ID) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	m, ok := t.peers[p]
	return ok && m.Member && !m.Refused
}

// standing reports whether p is a member — admitted, or in the view by
// its record — or a wanted peer, not refused, and whether it is a
// candidate; and returns a channel that closes when a member is next
// admitted.
func (t *memberTable) standing(p lpeer.ID) (member, candidate bool, admitted <-chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	m, ok := t.peers[p]
	if !ok || m.Refused {
		return false, false, t.admitted
	}
	return m.inView() || m.wanted, m.candidate, t.admitted
}

// want marks p to be re-dialled while unreachable, and no longer refused.
func (t *memberTable) want(p lpeer.ID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.getLocked(p)
	m.wanted, m.Refused = true, false
	m.backoff, m.nextDial = 0, time.Time{}
}

// refuse marks p refused and no longer wanted.
func (t *memberTable) refuse(p lpeer.ID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.getLocked(p)
	m.wanted, m.Refused = false, true
}

// delivered credits p with n new events.
func (t *memberTable) delivered(p lpeer.ID, n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if m, ok := t.peers[p]; ok {
		m.EventsReceived += uint64(n)
		m.LastSeen = t.now()
	}
}

// synced records the result of a sync session with p; a completed one
// admits p.
func (t *memberTable) synced(p lpeer.ID, res SyncResult) admission {
	t.mu.Lock()
	m, ok := t.peers[p]
	if ok {
		m.LastSync, m.LastSyncResult, m.InSync = t.now(), res, res.InSync
		m.stalled = time.Time{}
		switch {
		case res.Err == nil:
			m.syncOwed = false
		case errors.Is(res.Err, ErrStalled):
			m.stalled = m.LastSync
		}
	}
	t.mu.Unlock()
	if !ok || res.Err != nil {
		return admission{}
	}
	return t.admit(p)
}

// stallMemory is how long a peer whose session stalled is tried after the
// others.
const stallMemory = 10 * time.Minute

// byHealth splits peers into those whose last session did not stall
// within stallMemory, and those whose did.
func (t *memberTable) byHealth(peers []lpeer.ID) (healthy, stalled []lpeer.ID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	for _, p := range peers {
		if m, ok := t.peers[p]; ok && !m.stalled.IsZero() && now.Sub(m.stalled) < stallMemory {
			stalled = append(stalled, p)
		} else {
			healthy = append(healthy, p)
		}
	}
	return healthy, stalled
}

// known returns the members and wanted peers that are not refused and
// did not leave.
func (t *memberTable) known() []lpeer.ID {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []lpeer.ID
	for p, m := range t.peers {
		if (m.inView() || m.wanted) && !m.Refused && !m.left() {
			out = append(out, p)
		}
	}
	return out
}

// syncTargets returns the peers the table believes connected that a node
// syncs with: members, wanted peers and candidates, not refused.
func (t *memberTable) syncTargets() []lpeer.ID {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []lpeer.ID
	for p, m := range t.peers {
		if m.Connected && (m.Member || m.wanted || m.candidate) && !m.Refused {
			out = append(out, p)
		}
	}
	return out
}

// connectedMembers returns the members and wanted peers the table believes
// connected.
func (t *memberTable) connectedMembers() []lpeer.ID {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []lpeer.ID
	for p, m := range t.peers {
		if m.Connected && (m.inView() || m.wanted) && !m.Refused {
			out = append(out, p)
		}
	}
	return out
}

// setMesh records whether p is in the gossip mesh.
func (t *memberTable) setMesh(p lpeer.ID, in bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if m, ok := t.peers[p]; ok {
		m.InMesh = in
	}
}

// setScores records gossipsub's peer scores.
func (t *memberTable) setScores(scores map[lpeer.ID]float64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for p, s := range scores {
		if m, ok := t.peers[p]; ok {
			m.GossipScore = s
		}
	}
}

// dueForDial returns the members and wanted peers, unrefused, unconnected
// and not gone, whose backoff has passed — the wanted ones, and of the
// members the maxRedials heard from last, while fewer than maxRedials are
// connected — and pushes their next attempt back. It forgets the members
// unreachable for longer than the table's expiry, and those that left
// leftExpiry ago, and returns them in expired.
func (t *memberTable) dueForDial() (due, expired []lpeer.ID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	t.reachedLocked(now)
	type candidate struct {
		p     lpeer.ID
		heard time.Time
	}
	var members []candidate
	connected := 0
	for p, m := range t.peers {
		switch {
		case !m.kept() && len(m.conns) == 0 && now.Sub(m.LastSeen) > time.Minute:
			delete(t.peers, p) // joined, then left before its connection was counted
			continue
		case m.inView() && !m.wanted && !m.Connected &&
			(now.Sub(m.lastHeard()) > t.expiry || m.left() && now.Sub(m.heard) > leftExpiry):
			delete(t.peers, p)
			expired = append(expired, p)
			continue
		case m.Connected:
			if m.inView() {
				connected++
			}
			continue
		case m.Refused || m.left() || !(m.inView() || m.wanted):
			continue
		case m.wanted:
			due = append(due, p)
		default:
			members = append(members, candidate{p, m.lastHeard()})
		}
	}
	for p, f := range t.forgotten {
		if now.Sub(f.at) > t.expiry {
			delete(t.forgotten, p)
		}
	}
	slices.SortFunc(members, func(a, b candidate) int { return b.heard.Compare(a.heard) })
	for _, c := range members[:min(len(members), max(maxRedials-connected, 0))] {
		due = append(due, c.p)
	}
	due = slices.DeleteFunc(due, func(p lpeer.ID) bool { return now.Before(t.peers[p].nextDial) })
	for _, p := range due {
		m := t.peers[p]
		m.backoff = min(max(2*m.backoff, minRedial), maxRedial)
		// Jitter spreads the redials of a healed partition.
		m.nextDial = now.Add(m.backoff/2 + rand.N(m.backoff/2+1))
	}
	return due, expired
}

// list returns the listed peers, sorted by ID, with info filled in by fill.
func (t *memberTable) list(fill func(lpeer.ID, *PeerInfo)) []PeerInfo {
	t.mu.Lock()
	out := make([]PeerInfo, 0, len(t.peers))
	ids := make([]lpeer.ID, 0, len(t.peers))
	now := t.now()
	for p, m := range t.peers {
		if m.listed() {
			info := m.PeerInfo
			info.State = m.state(now)
			out = append(out, info)
			ids = append(ids, p)
		}
	}
	t.mu.Unlock()
	for i := range out {
		fill(ids[i], &out[i])
	}
	slices.SortFunc(out, func(a, b PeerInfo) int { return strings.Compare(a.ID, b.ID) })
	return out
}
