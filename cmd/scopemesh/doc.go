// Command scopemesh runs a scopemesh node and inspects a running one.
//
//	scopemesh node [flags]            run a node until SIGINT or SIGTERM
//	scopemesh status [--json]         the node's identity, addresses, events, replication
//	scopemesh peers [--json]          the members it knows, direct or relayed
//	scopemesh tail [filter] [--json]  events as they reach the node
//	scopemesh query [filter] [--cluster] [--json]
//	scopemesh trace TRACE-ID          one trace across the cluster, drawn lane by lane
//	scopemesh record KIND [K=V...]    record an event (for scripts and demos)
//	scopemesh sync                    reconcile with every connected member now
//	scopemesh mcp [--http ADDR]       a Model Context Protocol server for AI assistants
//	scopemesh version
//
// A node serves a local API — JSON over HTTP — on a unix socket,
// <data-dir>/api.sock by default, or on a loopback port; the other commands
// are its clients and find it through --api, $SCOPEMESH_API or the default
// socket. api.go lists the endpoints.
//
// The socket has mode 0600: only the node's user may call. On a port, every
// request needs the token the node makes at its first start in
// <data-dir>/api.token (0600; an in-memory node keeps it next to its
// runtime socket), sent as "Authorization: Bearer TOKEN"; the commands read
// it from --api-token-file, $SCOPEMESH_API_TOKEN or the default data dir.
// --api-remote lets the API listen on any address, over TLS with a
// self-signed certificate, <data-dir>/api.crt (key api.key, 0600), whose
// SHA-256 fingerprint the node prints at start. A client on another machine
// takes copies of api.crt and api.token, and trusts that certificate
// exactly:
//
//	scopemesh status --api https://HOST:PORT --api-cert api.crt --api-token-file api.token
//
// scopemesh mcp serves the tools cluster_status, list_members,
// query_events, get_trace and find_traces (mcptools.go) over stdin and
// stdout, or with --http over streamable HTTP on loopback, where every
// request carries the node's token as the API's do. It answers through the
// API like the other commands, and records nothing unless --allow-record
// adds record_event.
//
// Exit codes: 0 on success, 1 when a command ran and failed, 2 when the
// command line was wrong and nothing ran.
//
// # Running an edge cluster
//
// One node with a public address serves as bootstrap and relay:
//
//	scopemesh node --listen /ip4/0.0.0.0/udp/4001/quic-v1 --listen /ip4/0.0.0.0/tcp/4001 \
//	    --relay-service --reachability public --dht server
//
// Nodes behind NAT join through it, and hole-punch direct connections to
// each other where their NATs allow:
//
//	scopemesh node --bootstrap $PUBLIC --relays $PUBLIC --reachability private
package main
