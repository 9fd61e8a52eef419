// Package testcluster starts clusters of real nodes on loopback for the
// tests of packages that serve a node, the web view and the metrics:
//
//	nodes := testcluster.Start(t, 3) // node-1 to node-3: connected, gossip meshed, closed at the end of t
package testcluster
