package peer

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// Gater decides which peers a node talks to: none that it was told to
// disconnect from (until it is told to connect to them again), none that
// recently failed to prove membership of a closed cluster, and, when it has
// an allowlist, only the peers on it. Install it in the libp2p host
// (HostOptions.Gater) so refused peers cannot even connect; for a host built
// elsewhere, the Host closes their connections as they open and ignores
// their messages.
type Gater struct {
	allow map[lpeer.ID]bool // nil: everyone not refused

	mu      sync.RWMutex
	refused map[lpeer.ID]struct{}
	until   map[lpeer.ID]time.Time // refused until then
}

var _ connmgr.ConnectionGater = (*Gater)(nil)

// NewGater returns a Gater that refuses nobody, or, given an allowlist,
// everybody else.
func NewGater(allow ...lpeer.ID) *Gater {
	g := &Gater{refused: make(map[lpeer.ID]struct{}), until: make(map[lpeer.ID]time.Time)}
	if len(allow) > 0 {
		g.allow = make(map[lpeer.ID]bool, len(allow))
		for _, p := range allow {
			g.allow[p] = true
		}
	}
	return g
}

func (g *Gater) refuse(p lpeer.ID) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.refused[p] = struct{}{}
}

// maxGated bounds the peers refused for a while: each failed a proof of
// membership, and a peer can make new identities at will. Past it, the
// refusal ending soonest is dropped.
const maxGated = 4096

// refuseFor refuses p for d.
func (g *Gater) refuseFor(p lpeer.ID, d time.Duration) {
	now := time.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.until[p]; !ok && len(g.until) >= maxGated {
		var soonest lpeer.ID
		for q, t := range g.until {
			if now.After(t) {
				delete(g.until, q)
			} else if soonest == "" || t.Before(g.until[soonest]) {
				soonest = q
			}
		}
		if len(g.until) >= maxGated {
			delete(g.until, soonest)
		}
	}
	g.until[p] = now.Add(d)
}

func (g *Gater) allowPeer(p lpeer.ID) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.refused, p)
	delete(g.until, p)
}

// Refused reports whether p is refused.
func (g *Gater) Refused(p lpeer.ID) bool {
	if g.allow != nil && !g.allow[p] {
		return true
	}
	g.mu.RLock()
	_, refused := g.refused[p]
	until, gated := g.until[p]
	g.mu.RUnlock()
	return refused || gated && time.Now().Before(until)
}

func (g *Gater) InterceptPeerDial(p lpeer.ID) bool                 { return !g.Refused(p) }
func (g *Gater) InterceptAddrDial(p lpeer.ID, _ ma.Multiaddr) bool { return !g.Refused(p) }
func (g *Gater) InterceptAccept(network.ConnMultiaddrs) bool       { return true }
func (g *Gater) InterceptSecured(_ network.Direction, p lpeer.ID, _ network.ConnMultiaddrs) bool {
	return !g.Refused(p)
}
func (g *Gater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }
