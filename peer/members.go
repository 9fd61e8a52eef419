package peer

import (
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	lpeer "github.com/libp2p/go-libp2p/core/peer"
)

// PeerInfo is what a node knows of one member of its cluster.
type PeerInfo struct {
	ID               string
	Addrs            []string      // known multiaddrs, without the /p2p part
	Connected        bool          // a connection is open now
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
	conns    map[string]struct{} // IDs of the open connections
	joined   bool                // speaks the cluster protocol or subscribed to its topic: a cluster member
	wanted   bool                // registered by Connect or Bootstrap: re-dialled while unreachable
	syncOwed bool                // a requested sync failed for want of a connection: see oweSync
	stalled  time.Time           // when its last session stalled; zero if it did not
	backoff  time.Duration
	nextDial time.Time
}

// Redial backoff bounds.
const (
	minRedial = time.Second
	maxRedial = 30 * time.Second
)

// memberTable tracks the peers of the cluster. It is safe for concurrent
// use; its methods never block on the network.
type memberTable struct {
	now func() time.Time

	mu    sync.Mutex
	peers map[lpeer.ID]*member
}

func newMemberTable(now func() time.Time) *memberTable {
	return &memberTable{now: now, peers: make(map[lpeer.ID]*member)}
}

// getLocked returns p's record, creating it.
//
// REQUIRES: t.mu
func (t *memberTable) getLocked(p lpeer.ID) *member {
	m, ok := t.peers[p]
	if !ok {
		m = &member{PeerInfo: PeerInfo{ID: p.String()}}
		t.peers[p] = m
	}
	return m
}

// listed reports whether m appears among the cluster's peers.
func (m *member) listed() bool { return m.joined || m.wanted || m.Refused }

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
	returned = m.listed() && !m.Refused && !m.UnreachableSince.IsZero()
	if returned {
		m.Reconnects++
	}
	m.Connected, m.ConnectedSince, m.UnreachableSince = true, now, time.Time{}
	m.backoff, m.nextDial = 0, time.Time{}
	return returned, owed
}

// oweSync records that a requested sync with p failed while no connection
// to p was open, so that p's next connection asks for it again. The table
// alone cannot tell: the swarm reports a closed connection asynchronously,
// so the next connection may open while the table still counts the closed
// one, and p never looks as if it came back. The caller must record the
// debt before it checks that p is not connected: then either that check
// sees the next connection, or the next connection sees the debt.
func (t *memberTable) oweSync(p lpeer.ID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.getLocked(p).syncOwed = true
}

// disconnected records that connection conn with p closed. It reports
// whether it was the last.
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
	m.Connected, m.ConnectedSince, m.UnreachableSince = false, time.Time{}, t.now()
	m.InMesh = false
	return true
}

// joined records that p subscribed to the cluster topic. It reports whether
// p was not known as a member before.
func (t *memberTable) joined(p lpeer.ID) (first bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.getLocked(p)
	first = !m.joined
	m.joined = true
	m.LastSeen = t.now()
	return first
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
	m := t.getLocked(p)
	m.EventsReceived += uint64(n)
	m.LastSeen = t.now()
}

// synced records the result of a sync session with p.
func (t *memberTable) synced(p lpeer.ID, res SyncResult) {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.getLocked(p)
	m.LastSync, m.LastSyncResult, m.InSync = t.now(), res, res.InSync
	m.stalled = time.Time{}
	switch {
	case res.Err == nil:
		m.syncOwed = false
	case errors.Is(res.Err, ErrStalled):
		m.stalled = m.LastSync
	}
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

// known returns the members and wanted peers that are not refused.
func (t *memberTable) known() []lpeer.ID {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []lpeer.ID
	for p, m := range t.peers {
		if (m.joined || m.wanted) && !m.Refused {
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
		if m.Connected && (m.joined || m.wanted) && !m.Refused {
			out = append(out, p)
		}
	}
	return out
}

// setMesh records whether p is in the gossip mesh.
func (t *memberTable) setMesh(p lpeer.ID, in bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.getLocked(p).InMesh = in
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

// dueForDial returns the listed, unrefused, unconnected peers whose backoff
// has passed, and pushes their next attempt back.
func (t *memberTable) dueForDial() []lpeer.ID {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	var due []lpeer.ID
	for p, m := range t.peers {
		if m.Connected || m.Refused || !(m.joined || m.wanted) || now.Before(m.nextDial) {
			continue
		}
		m.backoff = min(max(2*m.backoff, minRedial), maxRedial)
		// Jitter spreads the redials of a healed partition.
		m.nextDial = now.Add(m.backoff/2 + rand.N(m.backoff/2+1))
		due = append(due, p)
	}
	return due
}

// list returns the listed peers, sorted by ID, with info filled in by fill.
func (t *memberTable) list(fill func(lpeer.ID, *PeerInfo)) []PeerInfo {
	t.mu.Lock()
	out := make([]PeerInfo, 0, len(t.peers))
	ids := make([]lpeer.ID, 0, len(t.peers))
	for p, m := range t.peers {
		if m.listed() {
			out = append(out, m.PeerInfo)
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
