// Package peer runs a scopemesh node's part of its cluster on a libp2p
// host: it finds the other members, replicates events with them, heals
// partitions, and answers and asks cluster queries. It drives the pure
// parts — the event set and its reconciler (crdt), filters (query) — and
// owns every socket, timer and goroutine.
//
// # Usage
//
//	h, err := peer.NewLibp2pHost(peer.HostOptions{Key: key, Gater: gater})
//	host, err := peer.New(h, peer.Config{Cluster: "shop", Set: set, Clock: clock, MDNS: true})
//	defer host.Close()
//	host.Connect(ctx, "/ip4/203.0.113.7/tcp/4001/p2p/12D3KooW...")
//	results := host.Sync(ctx)
//
// Most programs use the root package's Node, which wires this up.
//
// # What runs
//
//   - Membership (members.go): a peer that speaks the cluster's protocol
//     is a candidate; it becomes a member by proving the cluster key
//     (closed clusters) or completing a sync session (open ones). Members
//     and peers registered by Bootstrap or Connect are kept, protected from
//     the connection manager and re-dialled with backoff; what a candidate
//     costs ends with its connections. Disconnect refuses a peer until
//     Connect (gater.go).
//   - Delta replication (gossip.go): a node publishes its own new events in
//     batches on the cluster's gossipsub topic. A topic validator decodes
//     and verifies every batch before it is stored or forwarded; a peer
//     whose batches fail loses gossip score and is graylisted.
//   - Reconciliation (sync.go): when a member joins or comes back, every
//     SyncInterval, and on Sync, two nodes reconcile their sets and move
//     exactly the events each lacks, in bounded batches. The session is
//     package rbsr's state machine; sync.go carries its frames, reads and
//     merges the events it names, and schedules sessions. A node runs a
//     few sessions at once, one per peer, each cut off when its peer
//     stalls; a session waits briefly for the others, so that sessions
//     after a partition run in a row and none moves what another just did.
//   - Cluster queries (query.go): a peer's filter is answered from the local
//     replica; answers are bounded in size and number.
//   - Discovery (discovery.go): mDNS on the local network and the cluster's
//     own Kademlia DHT (its protocol prefix comes from the cluster name).
//   - Closed clusters (closed.go): with cluster keys, names derive from the
//     key, members prove they hold it, and batches are sealed.
//
// Every event that arrives, by gossip, sync or query, goes through one path
// (replica.go): open, decode, verify the ID and, if the cluster signs
// events, the origin's signature; merge only events whose clock is within
// the allowed offset.
//
// # Concurrency
//
// A Host is safe for concurrent use. Its loops, the stream handlers libp2p
// runs for it and the sync sessions a caller starts are all counted, and
// Close waits for every one of them, so nothing touches the event set
// after Close returns.
//
// # Hazards
//
//   - Gossip published before the mesh forms (about a second after peers
//     connect) reaches nobody, and gossipsub drops what its queues cannot
//     hold; reconciliation repairs both, at the next session.
//   - Relayed connections that the relay limits carry sync and queries but
//     not gossip: a member reachable only that way receives events at its
//     next session, not at once.
//   - A mocknet host (or any host built without this package's Gater)
//     accepts a refused peer's connection for a moment before the Host
//     closes it; nothing is served meanwhile.
package peer
