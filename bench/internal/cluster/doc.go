// Package cluster runs scopemesh clusters inside one process on loopback
// TCP and measures them: how fast recorded events reach every node, how
// long after recording they become visible elsewhere, and what a partition
// heal costs in time and bytes — against the least any protocol could send
// and against a naive full-state exchange.
//
// # Usage
//
//	c, err := cluster.Start(ctx, cluster.Options{Nodes: 3})
//	defer c.Close()
//	rep, err := c.Replicate(ctx, cluster.ReplicateConfig{Events: 200_000})
//	// or, on a fresh cluster:
//	heal, err := c.Heal(ctx, cluster.HealConfig{History: 10_000, PerSide: 10_000, FullState: true})
//
// Each node runs on a libp2p host built here (NewHost), so that a Wire can
// count what it sends by protocol; otherwise the nodes are configured as
// an application would configure them, with discovery off and every pair
// connected explicitly.
package cluster
