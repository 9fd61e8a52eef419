package memberstate

import "github.com/scopemesh/scopemesh/peer"

// The states Of returns.
const (
	Connected   = "connected"   // a connection is open now
	Unreachable = "unreachable" // no connection; the node redials it
	Left        = "left"        // disconnected on request: refused until Connect
)

// States lists every state Of returns, in the order to show them.
var States = []string{Connected, Unreachable, Left}

// Of returns p's state.
func Of(p peer.PeerInfo) string {
	switch {
	case p.Refused:
		return Left
	case p.Connected:
		return Connected
	}
	return Unreachable
}
