package scopemesh

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"

	"github.com/ipfs/go-datastore"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	lpeer "github.com/libp2p/go-libp2p/core/peer"

	"github.com/scopemesh/scopemesh/crdt"
	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/hlc"
	"github.com/scopemesh/scopemesh/peer"
	"github.com/scopemesh/scopemesh/query"
)

// ErrClosed reports use of a Node after Close.
var ErrClosed = errors.New("scopemesh: node closed")

// Errors of Connect, Disconnect, Join and Forget.
var (
	ErrInvalidPeer   = peer.ErrInvalidPeer   // an address or peer ID that does not parse
	ErrUnknownMember = peer.ErrUnknownMember // no member has that ID or name
)

// PeerInfo is what a node knows of one member of its cluster.
type PeerInfo = peer.PeerInfo

// Connection is one open connection to a member (PeerInfo.Connections).
type Connection = peer.Connection

// Key is an event's place in a node's order of its events: query results
// are paged by passing the last one's key as query.Filter.After.
type Key = crdt.Key

// ParseKey reads a Key's hex form (Key.String).
func ParseKey(s string) (Key, error) { return crdt.ParseKey(s) }

// MemberState says how a node last heard from a member (PeerInfo.State).
type MemberState = peer.MemberState

// The states of a member, as one node sees it.
const (
	StateConnected   = peer.StateConnected   // a connection to it is open
	StateReachable   = peer.StateReachable   // its records reach this node through others
	StateSuspect     = peer.StateSuspect     // neither for half of its one-minute beat
	StateUnreachable = peer.StateUnreachable // neither for two beats
	StateLeft        = peer.StateLeft        // it said goodbye when it closed
)

// Status is the cluster as one node sees it; Status.Events counts the events
// held here.
type Status = peer.Status

// SyncResult reports one reconciliation session with one peer.
type SyncResult = peer.SyncResult

// GossipStats counts what gossip delivered and dropped (Status.Gossip).
type GossipStats = peer.GossipStats

// ClockSkew is an origin whose clock ran ahead of the allowed offset
// (Status.ClockSkew).
type ClockSkew = peer.ClockSkew

// ValidateAddr reports whether addr is a member's address as Bootstrap,
// Relays and Join take it: a multiaddr ending in /p2p/<peer ID>.
func ValidateAddr(addr string) error {
	_, err := peer.ParseAddr(addr)
	return err
}

// Node is one member of a scopemesh cluster: it records events, holds a
// replica of the cluster's event set, replicates it with the other members,
// and answers queries. A Node is safe for concurrent use.
type Node struct {
	cfg   Config
	id    string // the peer ID's string form, which costs a base58 encoding
	clock *hlc.Clock
	set   *crdt.Set
	net   *peer.Host

	signer ed25519.PrivateKey // signs recorded events, if Config.SignEvents

	retain     *retainer
	stopRetain context.CancelFunc // ends retain's loop
	retaining  sync.WaitGroup

	closeStore func() error
	closeOnce  sync.Once
	closeErr   error
}

// Open starts a node configured by cfg: it opens the store, joins the
// cluster and starts finding peers. Close releases everything it started.
func Open(ctx context.Context, cfg Config) (_ *Node, err error) {
	cfg, err = cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	ds, closeStore, err := openStore(cfg)
	if err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, closeStore: closeStore}
	defer func() {
		if err != nil {
			n.Close()
		}
	}()

	clockCfg := hlc.Config{WallClock: cfg.WallClock, MaxOffset: cfg.MaxClockOffset}
	if cfg.DataDir != "" || cfg.Datastore != nil {
		// A durable store gets a durable clock bound, so the node's clock
		// never runs backwards across restarts.
		if clockCfg.LastUpper, err = loadClockBound(ctx, ds); err != nil {
			return nil, err
		}
		clockCfg.Persist = clockBoundSaver(ds)
	}
	if n.clock, err = hlc.NewClock(clockCfg); err != nil {
		return nil, fmt.Errorf("scopemesh: starting the clock: %w", err)
	}
	setOpts := crdt.Options{Limits: cfg.Limits}
	if cfg.Retention > 0 {
		// Buckets an eighth of the retention keep a trace lookup to
		// nine or so, and expired entries to an eighth of the index.
		setOpts.TraceBucket = cfg.Retention / 8
	}
	if cfg.DataDir == "" && cfg.Datastore == nil {
		// Nothing to persist: the set keeps its events itself, several
		// times faster than through a datastore.
		n.set = crdt.NewMemory(setOpts)
	} else if n.set, err = crdt.New(ctx, ds, setOpts); err != nil {
		return nil, fmt.Errorf("scopemesh: opening the event set: %w", err)
	}

	// Expire what fell below the horizon while the node was down before
	// it talks to anyone; the loop goes on from there.
	n.retain = &retainer{set: n.set, clock: n.clock, retention: cfg.Retention, maxBytes: cfg.MaxBytes, log: slog.Default()}
	n.retain.expire(ctx)
	retainCtx, stop := context.WithCancel(context.Background())
	n.stopRetain = stop
	n.retaining.Add(1)
	go func() {
		defer n.retaining.Done()
		n.retain.loop(retainCtx)
	}()

	allow := make([]lpeer.ID, len(cfg.AllowPeers))
	for i, id := range cfg.AllowPeers {
		allow[i], _ = lpeer.Decode(id) // checked by withDefaults
	}
	h, gater := cfg.Host, cfg.Gater
	var relayACL *peer.RelayACL
	if h == nil {
		gater = peer.NewGater(allow...)
		if cfg.RelayService {
			relayACL = peer.NewRelayACL()
		}
		if h, err = newHost(ctx, cfg, ds, gater, relayACL); err != nil {
			return nil, err
		}
	}
	n.id = h.ID().String()
	if cfg.SignEvents {
		if n.signer, err = signingKey(h); err != nil {
			if cfg.Host == nil {
				h.Close()
			}
			return nil, err
		}
	}
	var keys [][]byte
	if cfg.ClusterKey != nil {
		keys = append([][]byte{cfg.ClusterKey}, cfg.AcceptKeys...)
	}
	bootstrap, _ := parseAddrs(cfg.Bootstrap) // checked by withDefaults
	n.net, err = peer.New(h, peer.Config{
		Cluster:   cfg.Cluster,
		Name:      cfg.Name,
		Set:       n.set,
		Clock:     n.clock,
		Limits:    cfg.Limits,
		Bootstrap: bootstrap,
		MDNS:      !cfg.DisableMDNS,
		DHT:       cfg.DHT,
		Gater:     gater,
		OwnsHost:  cfg.Host == nil,

		SyncInterval: cfg.SyncInterval,
		ForgetAfter:  cfg.ForgetAfter,
		ClusterKeys:  keys,
		AllowPeers:   allow,
		SignEvents:   cfg.SignEvents,
		RelayACL:     relayACL,
	})
	if err != nil {
		if cfg.Host == nil {
			h.Close()
		}
		return nil, fmt.Errorf("scopemesh: joining the cluster: %w", err)
	}
	return n, nil
}

// newHost builds the node's libp2p host with its persistent identity.
func newHost(ctx context.Context, cfg Config, ds datastore.Datastore, gater *peer.Gater, relayACL *peer.RelayACL) (host.Host, error) {
	key, err := loadIdentity(ctx, cfg, ds)
	if err != nil {
		return nil, err
	}
	relays, _ := parseAddrs(cfg.Relays) // checked by withDefaults
	h, err := peer.NewLibp2pHost(peer.HostOptions{
		Key:          key,
		ListenAddrs:  cfg.ListenAddrs,
		Relays:       relays,
		RelayService: cfg.RelayService,
		RelayACL:     relayACL,
		Reachability: cfg.Reachability,
		Gater:        gater,
	})
	if err != nil {
		return nil, fmt.Errorf("scopemesh: %w", err)
	}
	return h, nil
}

// signingKey returns the host's identity as an Ed25519 key, for signing
// events.
func signingKey(h host.Host) (ed25519.PrivateKey, error) {
	key := h.Peerstore().PrivKey(h.ID())
	if key == nil || key.Type() != crypto.Ed25519 {
		return nil, errors.New("scopemesh: SignEvents needs an Ed25519 identity (the host's is not, or its key is unknown)")
	}
	raw, err := key.Raw()
	if err != nil {
		return nil, fmt.Errorf("scopemesh: reading the identity key: %w", err)
	}
	return ed25519.PrivateKey(raw), nil
}

func parseAddrs(addrs []string) ([]lpeer.AddrInfo, error) {
	out := make([]lpeer.AddrInfo, 0, len(addrs))
	for _, a := range addrs {
		ai, err := peer.ParseAddr(a)
		if err != nil {
			return nil, err
		}
		out = append(out, ai)
	}
	return out, nil
}

// Close leaves the cluster, stops every goroutine the node started and
// releases its store. Later calls return the first call's result.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		var errs []error
		if n.net != nil {
			errs = append(errs, n.net.Close())
		}
		if n.stopRetain != nil {
			n.stopRetain()
			n.retaining.Wait()
		}
		if n.set != nil {
			errs = append(errs, n.set.Close())
		}
		errs = append(errs, n.closeStore())
		n.closeErr = errors.Join(errs...)
	})
	return n.closeErr
}

// ID returns the node's peer ID, the Node field of the events it records.
func (n *Node) ID() string { return n.id }

// Addrs returns the node's dialable multiaddrs, each ending in /p2p/<ID>.
func (n *Node) Addrs() []string { return n.net.Addrs() }

// Clock returns the node's hybrid logical clock.
func (n *Node) Clock() *hlc.Clock { return n.clock }

// Record stores an event that happened on this node and returns it as
// stored. It sets Time from the node's clock, Node to the node's ID, and ID
// from the content; a zero Correlation or Parent is taken from ctx (see
// events.ContextWithTrace and events.ContextWithParent). An event left
// without a parent, of a trace whose traceparent named a span rather than
// an event (events.RemoteSpanFromContext), names that span in
// events.AttrParentSpanID, unless it names one itself: the trace then joins
// it to the span's event. Record returns once the event is durable in the
// node's store; replication to the cluster follows in the background.
func (n *Node) Record(ctx context.Context, e events.Event) (events.Event, error) {
	if e.Correlation.IsZero() {
		e.Correlation, _ = events.TraceFromContext(ctx)
	}
	if e.Parent.IsZero() {
		e.Parent, _ = events.ParentFromContext(ctx)
	}
	if e.Parent.IsZero() && !e.Correlation.IsZero() {
		if span, ok := events.RemoteSpanFromContext(ctx, e.Correlation); ok {
			e.Attrs = withParentSpan(e.Attrs, span)
		}
	}
	e.Node = n.id
	e.Signature = nil
	var err error
	if e.Time, err = n.clock.Stamp(); err != nil {
		return events.Event{}, fmt.Errorf("scopemesh: record: %w", err)
	}
	buf := wireBuffers.Get().(*[]byte)
	defer putWireBuffer(buf)
	x, err := n.seal(buf, e)
	if err != nil {
		return events.Event{}, fmt.Errorf("scopemesh: record: %w", err)
	}
	if _, err := n.set.AddEncoded(ctx, x); err != nil {
		if errors.Is(err, crdt.ErrClosed) {
			err = ErrClosed
		}
		return events.Event{}, fmt.Errorf("scopemesh: record: %w", err)
	}
	return x.Event(), nil
}

// withParentSpan returns attrs with events.AttrParentSpanID set to span,
// copied so that the caller's map stays as it was, or attrs itself if it
// names a parent span already.
func withParentSpan(attrs map[string]string, span events.SpanID) map[string]string {
	if _, ok := attrs[events.AttrParentSpanID]; ok {
		return attrs
	}
	out := make(map[string]string, len(attrs)+1)
	maps.Copy(out, attrs)
	out[events.AttrParentSpanID] = span.String()
	return out
}

// wireBuffers holds the buffers Record seals events into. The set keeps
// none of an event's memory once AddEncoded returns (a memory set copies
// it into its slabs, a datastore set makes a copy of its own), so a
// pooled buffer saves an allocation per event and a share of the garbage
// collector's work.
var wireBuffers = sync.Pool{New: func() any { return new([]byte) }}

// putWireBuffer pools buf, unless a large event grew it.
func putWireBuffer(buf *[]byte) {
	if cap(*buf) <= maxPooledWire {
		*buf = (*buf)[:0]
		wireBuffers.Put(buf)
	}
}

// maxPooledWire is the largest buffer wireBuffers keeps.
const maxPooledWire = 16 << 10

// seal seals e, and signs it if the node signs its events, and returns it
// encoded: unless it signs, in *buf, which it grows if need be.
func (n *Node) seal(buf *[]byte, e events.Event) (events.Encoded, error) {
	if n.signer == nil {
		var x events.Encoded
		var err error
		*buf, x, err = n.cfg.Limits.AppendSealEncoded((*buf)[:0], e)
		return x, err
	}
	sealed, err := n.cfg.Limits.Seal(e)
	if err != nil {
		return events.Encoded{}, err
	}
	return n.cfg.Limits.Encode(events.Sign(sealed, n.signer))
}

// Query returns the events of the local replica that match f, in (HLC, ID)
// order (newest first if f.Descending).
func (n *Node) Query(ctx context.Context, f query.Filter) ([]events.Event, error) {
	return query.Local(ctx, n.set, f)
}

// Connect registers the peer at addr, a multiaddr ending in /p2p/<peer ID>,
// and dials it; a peer removed by Disconnect is accepted again. If the dial
// fails, Connect returns the error but keeps the peer registered and
// re-dials it with backoff until it answers.
func (n *Node) Connect(ctx context.Context, addr string) error { return n.net.Connect(ctx, addr) }

// Disconnect drops the peer with the given ID and refuses it — connections,
// gossip and sync — until Connect is called for it again.
func (n *Node) Disconnect(id string) error { return n.net.Disconnect(id) }

// Peers returns the cluster members this node knows of, with their state:
// those it has connections to, and those it knows of through the others'
// member lists.
func (n *Node) Peers() []PeerInfo { return n.net.Peers() }

// Join connects to the members at addrs (multiaddrs ending in /p2p/<ID>,
// registered as Connect registers them) and returns once it holds the
// member list of one of them, with the number of members it knows then.
// With no addrs, it waits until the node has found a member by discovery
// or Connect and holds its list. Until a node has joined, its cluster
// queries say they are incomplete: it may not know every member.
func (n *Node) Join(ctx context.Context, addrs ...string) (int, error) {
	return n.net.Join(ctx, addrs...)
}

// Forget drops a member that will not come back — by peer ID, or by name
// if one member has it — from the node's view of the cluster, so that
// cluster queries stop waiting for it, and returns its ID. If the member
// comes back, started anew, it is a member again. A connected member is
// not forgotten: Disconnect it first.
func (n *Node) Forget(id string) (string, error) { return n.net.Forget(id) }

// Sync reconciles the local replica with every connected member now: each
// side learns exactly which events the other lacks and sends them. It
// returns each session's result by peer ID; a session's failure is in its
// result's Err. Sessions also run by themselves, when a member connects or
// comes back and every Config.SyncInterval.
func (n *Node) Sync(ctx context.Context) (map[string]SyncResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return n.net.Sync(ctx), nil
}

// Status returns the cluster as this node sees it.
func (n *Node) Status() Status {
	st := n.net.Status()
	st.Retention, st.MaxBytes = n.cfg.Retention, n.cfg.MaxBytes
	return st
}
