// Command compare runs the same replication and partition-heal workloads on
// scopemesh and on github.com/ipfs/go-ds-crdt, the closest existing Go
// system, in one process run, alternating which goes first each round, and
// prints each round's figures and the ratios between the two.
//
// It is a module of its own so that the library never depends on
// go-ds-crdt or its IPFS stack. Run it from this directory:
//
//	cd bench/compare && go run . -rounds 2
//
// go-ds-crdt runs as deployed: gossipsub broadcasts DAG heads and boxo
// bitswap, over the same kind of loopback libp2p host scopemesh uses,
// fetches the blocks a replica lacks. Its rebroadcast interval, which
// decides when a healed partition resyncs, is shortened from its 1 minute
// default by -rebroadcast and stated in the output.
package main
