// Package testbed runs scopemesh nodes on simulated networks built from
// Linux network namespaces, to check on real network stacks what the
// project claims for nodes behind NAT.
//
// nat.sh builds a small internet (11.0.0.0/24, which libp2p treats as
// public), a public bootstrap and relay node on it, and two home networks
// behind routers that masquerade, port-preserving or port-randomising
// (--random-fully). TestNAT drives it: it runs the `scopemesh node` binary
// in each namespace with its API on a unix socket, and acts and checks only
// through the client commands (record, peers --json, query --json),
// polling with deadlines. It checks that
//
//  1. the nodes behind NAT join the cluster through the public node, and
//     the events recorded behind each NAT reach every node;
//  2. hole punching (DCUtR) gives them a direct connection, and over which
//     transport;
//  3. behind port-randomising NATs, where hole punching fails, replication
//     completes through the relay;
//  4. when a router's uplink fails, both sides keep recording, and once it
//     returns every node converges.
//
// The test needs root, ip(8) and iptables(8) (Debian: apt-get install
// iptables iproute2), and skips without them; -short skips it too. Every
// namespace it makes is named after a prefix of its own run and removed at
// the end, also when a check fails.
//
// Run it with the timings it measured:
//
//	go test -v -run TestNAT ./testbed
package testbed
