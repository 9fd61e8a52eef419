// Package memberstate names the state of a cluster member, for the web
// view and the metrics alike:
//
//	memberstate.Of(p) // "connected", "unreachable" or "left"
//
// It derives the state from PeerInfo's flags, in one place, so that when
// PeerInfo carries a state of its own only Of changes.
package memberstate
