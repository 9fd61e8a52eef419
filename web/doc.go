// Package web is a node's web view, as an http.Handler for programs that
// embed a node (scopemesh node serves it with --ui):
//
//	http.Handle("/", web.Handler(node))
//
// Its pages, plain JavaScript and SVG embedded in the binary:
//
//   - / — the cluster as the node sees it: members, their names and states,
//     events held, replication, sync and query counters, the retention
//     horizon;
//   - /events — events filtered by kind, node, attributes, trace and time,
//     from this node or every member, paged with cursors, with a live tail
//     over server-sent events;
//   - /traces/{id} — one trace, one lane per node and one row per event
//     in causal order, parent links drawn as arrows, missing and expired
//     parents marked, an event's attributes and payload on click, and a
//     link to share (/traces/{id}#e={event}).
//
// What a request can make it spend is bounded: MaxPageSize events a page,
// MaxStreams live tails, MaxQueries queries and traces at once. It checks
// no credentials: the program that serves it decides who may reach it.
package web
