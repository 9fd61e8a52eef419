package peer

import (
	"context"
	"sync/atomic"
	"time"

	lpeer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	ma "github.com/multiformats/go-multiaddr"
)

// RelayACL lets a node's relay service serve its cluster's members only:
// a reservation for a member, a circuit from a member to a member. The
// relay lifts libp2p's caps on a circuit's time and bytes, since it
// carries replication; this keeps strangers from using it. Build it before
// the libp2p host (HostOptions.RelayACL) and hand it to New
// (Config.RelayACL), which binds it to the cluster's members; until then
// it refuses everyone.
type RelayACL struct {
	host atomic.Pointer[Host]
}

var _ relay.ACLFilter = (*RelayACL)(nil)

// NewRelayACL returns a RelayACL that refuses everyone until New binds it.
func NewRelayACL() *RelayACL { return new(RelayACL) }

// relayWait bounds how long the relay waits for a peer to become a
// member: one that just connected is still proving the key, or running
// its first sync session.
const relayWait = 10 * time.Second

// AllowReserve reports whether p, a member, may reserve a slot.
func (a *RelayACL) AllowReserve(p lpeer.ID, _ ma.Multiaddr) bool { return a.admits(p) }

// AllowConnect reports whether src may reach dest through the relay: both
// must be members.
func (a *RelayACL) AllowConnect(src lpeer.ID, _ ma.Multiaddr, dest lpeer.ID) bool {
	return a.admits(src) && a.admits(dest)
}

// admits reports whether p is a member, or a candidate that becomes one
// within relayWait.
func (a *RelayACL) admits(p lpeer.ID) bool {
	n := a.host.Load()
	if n == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(n.ctx, relayWait)
	defer cancel()
	if n.keys != nil {
		return provenHost{Host: n.h, n: n}.proven(ctx, p)
	}
	// Identify makes a peer a candidate without news: look again now and
	// then.
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for !n.gater.Refused(p) {
		member, candidate, admitted := n.members.standing(p)
		switch {
		case member:
			return true
		case !candidate && n.identified(p):
			return false // a stranger: it does not speak the cluster's protocol
		}
		select {
		case <-admitted:
		case <-t.C:
		case <-ctx.Done():
			return false
		}
	}
	return false
}
