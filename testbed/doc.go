// Package testbed runs scopemesh nodes on simulated networks built from
// Linux network namespaces, to check on real network stacks what the
// project claims for nodes behind NAT (TestNAT) and under faults
// (TestFaults).
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
// The tests need root, ip(8) and iptables(8) (Debian: apt-get install
// iptables iproute2), and skip without them; -short skips them too. Every
// namespace they make is named after a prefix of its own run and removed at
// the end, also when a check fails.
//
// Run it with the timings it measured:
//
//	go test -v -run TestNAT ./testbed
//
// # Faults
//
// The nemesis package strikes nodes in one process, on mocknet or loopback
// sockets; only real processes on real network stacks show what a kill -9,
// a dropped packet or a slow link does to libp2p's connections, the
// keepalives and the redials. faults.sh builds a LAN of five namespaces on
// one bridge (10.55.0.0/24; the bridge sits in a namespace of its own) and
// strikes it: cuts (silent iptables DROP rules in the nodes' namespaces)
// and slow links (netem, or where the kernel lacks it, tbf rate limits and
// random drops with iptables' statistic match; the test log says which).
// TestFaults runs a `scopemesh node` in each namespace, on TCP and QUIC,
// with mDNS off, each bootstrapping from the nodes started before it. A
// writer per node records an event every 250ms through `scopemesh record`
// and keeps the IDs of those acknowledged; a record on a node that is down
// fails and is not. A schedule drawn from the seed alone strikes a fault at
// the start of every step, lasting one to three steps: a partition into two
// groups, a node isolated, kill -9 or SIGTERM and a restart from the same
// data dir (half of them without --bootstrap: the node must find the
// cluster from the members it saved), a slow link. Then everything heals,
// the writers stop, and the test polls every node's events until they
// converge, and checks that
//
//  1. every acknowledged event is on every node, exactly once;
//  2. nothing else is, but the events of failed records (which a crash may
//     have caught after they were stored);
//  3. every node holds the identical sequence.
//
// It logs the faults as they strike, the events acknowledged, the time
// from the final heal to convergence and when each node held every
// acknowledged event, and how each node sees the others then: connections,
// their transport and when they opened, the last sync session, relative to
// the heal. With several seeds it logs the median and worst convergence.
//
//	go test -v -run TestFaults ./testbed                      # one short schedule, as CI runs it
//	go test -v -run TestFaults ./testbed -faults.seeds 5      # five seeds, with median and worst
//	go test -v -run TestFaults ./testbed -faults.seed 42      # replay seed 42
//	go test -v -run TestFaults ./testbed -faults.long         # 40 steps of 5s
//	go test -v -run TestFaults ./testbed -faults.tcp          # TCP only: every connection on yamux
//	go test -v -run TestFaults ./testbed -faults.logs DIR     # keep the nodes' debug logs in DIR
//
// A seed fixes the schedule, not the timing of goroutines and packets.
//
// TestSlowLink, opt-in, has two nodes on TCP (so on yamux) record a backlog
// of large events each while apart, then meet over a link limited to the
// given rate, and reports whether the backlogs cross, how long they take,
// and whether yamux's write timeout closed the connection meanwhile:
//
//	go test -v -run TestSlowLink ./testbed -slowlink.rate 256kbit
package testbed
