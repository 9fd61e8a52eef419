package peer

import (
	"sync"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// Gater refuses connections with the peers a node was told to disconnect
// from, until it is told to connect to them again. Install it in the libp2p
// host (HostOptions.Gater) so refused peers cannot even connect; for a host
// built elsewhere, the Host closes their connections as they open and
// ignores their messages.
type Gater struct {
	mu      sync.RWMutex
	refused map[lpeer.ID]struct{}
}

var _ connmgr.ConnectionGater = (*Gater)(nil)

// NewGater returns a Gater that refuses nobody.
func NewGater() *Gater { return &Gater{refused: make(map[lpeer.ID]struct{})} }

func (g *Gater) refuse(p lpeer.ID) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.refused[p] = struct{}{}
}

func (g *Gater) allow(p lpeer.ID) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.refused, p)
}

// Refused reports whether p is refused.
func (g *Gater) Refused(p lpeer.ID) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	_, ok := g.refused[p]
	return ok
}

func (g *Gater) InterceptPeerDial(p lpeer.ID) bool                 { return !g.Refused(p) }
func (g *Gater) InterceptAddrDial(p lpeer.ID, _ ma.Multiaddr) bool { return !g.Refused(p) }
func (g *Gater) InterceptAccept(network.ConnMultiaddrs) bool       { return true }
func (g *Gater) InterceptSecured(_ network.Direction, p lpeer.ID, _ network.ConnMultiaddrs) bool {
	return !g.Refused(p)
}
func (g *Gater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }
