// Package scopemesh gives every node of a distributed application one
// shared, causally ordered log of runtime events, so a request can be
// followed across node boundaries.
//
// A Node records events stamped by a hybrid logical clock, keeps them in a
// grow-only set replicated to every node of its cluster, and answers queries
// from that replica.
//
// # Usage
//
//	node, err := scopemesh.Open(ctx, scopemesh.Config{DataDir: "/var/lib/app/scopemesh"})
//	defer node.Close()
//	ctx = events.ContextWithTrace(ctx, events.NewTraceID())
//	ev, err := node.Record(ctx, events.Event{Kind: "http.request", Attrs: map[string]string{"path": "/cart"}})
//	evs, err := node.Query(ctx, query.Filter{Correlation: ev.Correlation})
package scopemesh
