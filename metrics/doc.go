// Package metrics exports a node's counters to Prometheus, as a
// prometheus.Collector that an application registers on its own
// registry:
//
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(metrics.NewCollector(node))
//	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// The collector reads Node.Status when scraped: recording an event costs
// nothing more for it. The metrics are named scopemesh_..., in base units
// (seconds, bytes), counters ending in _total; their labels take a few
// fixed values each (a role, a direction, a member state), never a peer
// ID or a kind. libp2p registers its own metrics on
// prometheus.DefaultRegisterer, where `scopemesh node` serves them too.
//
// Sync sessions and cluster queries are counted from each side:
// scopemesh_sync_sessions_total{role="initiator"} counts those this node
// started, role="responder" those its peers started; for queries,
// side="asked" and side="served". Events received by sync are counted
// on both sides of a session, once: by the side they were new to.
package metrics
