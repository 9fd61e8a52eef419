// Command bench measures scopemesh: recording, replication across loopback
// nodes, partition heals, the reconciler alone, and queries. Each run
// prints a table, checks the figures the issues set as targets, and writes
// its results as JSON under bench/results/ with the machine it ran on;
// "plot" renders those results as the charts the README shows.
//
// # Usage
//
//	go run ./bench record                     # Record on one node, in memory and Pebble
//	go run ./bench replicate -nodes 3,10,50   # throughput and latency on loopback TCP
//	go run ./bench heal -per-side 1000,10000  # split, write, heal; vs a full-state exchange
//	go run ./bench reconcile -n 10000000      # the reconciler alone
//	go run ./bench query -n 1000000           # trace and filter queries, local and cluster
//	go run ./bench plot                       # bench/results/*.json → bench/charts/*.png
//
// Each scenario's defaults finish within a minute on a 2-core machine;
// flags reach the larger sizes. bench/README.md explains what each number
// means. The side-by-side comparison with go-ds-crdt lives in bench/compare,
// a module of its own so the library never depends on it.
package main
