package peer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/scopemesh/scopemesh/crdt"
	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/hlc"
)

// ErrClosed reports use of a Host after Close.
var ErrClosed = errors.New("peer: closed")

// ErrInvalidPeer reports a peer address or ID that cannot be parsed.
var ErrInvalidPeer = errors.New("peer: invalid peer")

// Config configures a Host.
type Config struct {
	Cluster   string           // the cluster's name; it names the topic and protocols
	Name      string           // the node's name in its member record, at most MaxNameBytes
	Set       *crdt.Set        // the replica to replicate
	Clock     *hlc.Clock       // the node's clock, moved by remote events
	Limits    events.Limits    // bounds of accepted events
	Bootstrap []lpeer.AddrInfo // dialled at start and re-dialled while unreachable
	MDNS      bool             // find peers on the local network
	DHT       DHTMode          // find peers through the cluster's DHT
	Gater     *Gater           // the gater installed in the libp2p host, if any
	OwnsHost  bool             // Close closes the libp2p host
	Logger    *slog.Logger     // nil: slog.Default()

	SyncInterval time.Duration // how often to reconcile with a random member; 0: 30s
	ForgetAfter  time.Duration // a member unreachable this long leaves the view; 0: DefaultForgetAfter

	// Members are the member records the node held when it last ran, as
	// SaveMembers was given them: it starts knowing those members, and
	// dials them besides Bootstrap. Records that do not open are skipped.
	Members []byte
	// SaveMembers, if set, is given the member records the node holds
	// every ten minutes and when it closes, to keep for the next start.
	SaveMembers func([]byte) error
	SyncLimits  SyncLimits // bounds of one sync session

	// ClusterKeys close the cluster: members must prove they hold one of
	// them, and event batches are sealed with the first (see closed.go).
	// Each is KeyLen bytes. Empty: an open cluster.
	ClusterKeys [][]byte
	// AllowPeers, if set, are the only peers the node talks to (the Gater
	// made when Gater is nil enforces it; a given Gater should already).
	AllowPeers []lpeer.ID
	// SignEvents makes the node accept only events signed by their origin
	// (events.Sign with the origin's Ed25519 identity).
	SignEvents bool
	// RelayACL, if the host relays for others, is the ACL it was built
	// with (HostOptions.RelayACL): New binds it to the cluster's members.
	RelayACL *RelayACL
}

// Host runs a node's part of the cluster on a libp2p host: discovery,
// membership, delta replication over gossipsub, reconciliation and cluster
// queries. It is safe for concurrent use; Close stops every goroutine it
// started and waits for the sessions it serves.
type Host struct {
	h       host.Host
	cfg     Config
	names   names   // the names this node uses: of its first cluster key, if closed
	keys    keyring // nil: an open cluster
	proofs  proofs  // membership proofs of peers, in a closed cluster
	log     *slog.Logger
	gater   *Gater
	members *memberTable
	replica *replica
	gossip  *gossip
	view    *view
	disc    *discovery
	started time.Time
	stats   hostStats

	sessions   sessions
	retries    retryTable
	queries    queryGate
	serves     chan struct{} // batches being sent to peers that fetch them
	syncLimits SyncLimits
	syncNow    chan lpeer.ID // members to sync with soon
	// joinResync is how long after a join its second sync waits:
	// meshSettle, which tests may change before the host connects.
	joinResync time.Duration

	ctx     context.Context // ends at Close
	cancel  context.CancelFunc
	wg      sync.WaitGroup // every goroutine the Host runs, or serves in
	closing sync.RWMutex   // guards closed against wg.Add during Wait
	closed  bool
	notify  network.Notifiee

	closeOnce sync.Once
	closeErr  error
}

// validate reports a Config New cannot run with, before New starts
// anything.
func (c *Config) validate(h host.Host) error {
	switch {
	case h == nil:
		return errors.New("peer: no libp2p host")
	case c.Cluster == "":
		return errors.New("peer: Config.Cluster is empty")
	case c.Set == nil:
		return errors.New("peer: Config.Set is nil")
	case c.Clock == nil:
		return errors.New("peer: Config.Clock is nil")
	case len(c.Name) > MaxNameBytes || !utf8.ValidString(c.Name):
		return fmt.Errorf("peer: Config.Name: %d bytes, want at most %d of UTF-8", len(c.Name), MaxNameBytes)
	case c.SyncInterval < 0:
		return fmt.Errorf("peer: Config.SyncInterval %v is negative", c.SyncInterval)
	case c.ForgetAfter < 0:
		return fmt.Errorf("peer: Config.ForgetAfter %v is negative", c.ForgetAfter)
	}
	return nil
}

// New starts the cluster services on h.
func New(h host.Host, cfg Config) (_ *Host, err error) {
	if err := cfg.validate(h); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Gater == nil {
		cfg.Gater = NewGater(cfg.AllowPeers...)
	}
	keys, err := newKeyring(cfg.Cluster, cfg.ClusterKeys)
	if err != nil {
		return nil, err
	}
	if cfg.SyncInterval <= 0 {
		cfg.SyncInterval = 30 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &Host{
		h:       h,
		cfg:     cfg,
		names:   namesFor(cfg.Cluster),
		keys:    keys,
		log:     cfg.Logger.With("node", h.ID().String()),
		gater:   cfg.Gater,
		members: newMemberTable(time.Now, cmp.Or(cfg.ForgetAfter, DefaultForgetAfter)),
		started: time.Now(),

		syncLimits: cfg.SyncLimits.withDefaults(),
		syncNow:    make(chan lpeer.ID, 64),
		joinResync: meshSettle,
		ctx:        ctx,
		cancel:     cancel,
	}
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	if keys != nil {
		n.names = keys[0].names
		h.SetStreamHandler(authProtocol, n.handleProof)
	}
	if n.view, err = newView(n, cfg.Name); err != nil {
		return nil, err
	}
	n.notify = &network.NotifyBundle{ConnectedF: n.onConnected, DisconnectedF: n.onDisconnected}
	h.Network().Notify(n.notify)
	// Connections a host of the caller's had before the notifee was in
	// place: counted once each, even if a notification races with this.
	for _, c := range h.Network().Conns() {
		n.onConnected(h.Network(), c)
	}

	n.replica = &replica{set: cfg.Set, clock: cfg.Clock, limits: cfg.Limits, keys: keys, signed: cfg.SignEvents,
		skew: &skewTable{now: time.Now}, log: n.log, retry: n.syncLater}
	n.gossip = &gossip{replica: n.replica, members: n.members, log: n.log,
		member:  n.member,
		batches: n.protocols(func(nm names) protocol.ID { return nm.batches })}
	n.serves = make(chan struct{}, maxServes)
	var topics, viewTopics []string
	for _, nm := range n.keyNames() {
		topics, viewTopics = append(topics, nm.topic), append(viewTopics, nm.viewTopic)
	}
	if err := startGossip(ctx, n.clusterHost(), n.gossip, topics, viewTopics); err != nil {
		return nil, fmt.Errorf("peer: starting gossip: %w", err)
	}
	n.view.restore(cfg.Members)
	if err := n.view.start(ctx, n.gossip.ps); err != nil {
		return nil, fmt.Errorf("peer: starting the member view: %w", err)
	}
	if len(cfg.Bootstrap) == 0 && !cfg.MDNS && cfg.DHT == DHTOff {
		n.view.markJoined() // no one to join: a cluster of one until Connect
	}
	if err := n.watchProtocols(ctx); err != nil {
		return nil, fmt.Errorf("peer: watching peers' protocols: %w", err)
	}
	n.goLoop(ctx, n.gossip.publishLoop)
	for _, c := range n.gossip.channels {
		n.goLoop(ctx, func(ctx context.Context) { n.gossip.receiveLoop(ctx, c) })
		n.goLoop(ctx, func(ctx context.Context) { n.gossip.joinLoop(ctx, c, n.onJoined) })
	}

	for _, nm := range n.keyNames() {
		h.SetStreamHandler(nm.sync, n.handleSync)
		h.SetStreamHandler(nm.query, n.handleQuery)
		h.SetStreamHandler(nm.batches, n.handleBatch)
	}
	n.goLoop(ctx, n.syncLoop)

	for _, ai := range cfg.Bootstrap {
		n.register(ai)
	}
	n.goLoop(ctx, n.redialLoop)
	if n.disc, err = startDiscovery(ctx, n, cfg); err != nil {
		return nil, err
	}
	if cfg.RelayACL != nil {
		cfg.RelayACL.host.Store(n)
	}
	return n, nil
}

// goLoop runs loop in a goroutine that Close waits for.
func (n *Host) goLoop(ctx context.Context, loop func(context.Context)) {
	if !n.enter() {
		return
	}
	go func() {
		defer n.wg.Done()
		loop(ctx)
	}()
}

// accept starts serving a stream a peer opened and returns the peer. It
// resets the stream and reports false once Close has begun, or if the peer
// may not be served, as may says (n.member or n.trusted).
// A true result must be paired with n.wg.Done.
func (n *Host) accept(s network.Stream, may func(context.Context, lpeer.ID) bool) (lpeer.ID, bool) {
	p := s.Conn().RemotePeer()
	if !n.enter() {
		s.Reset()
		return p, false
	}
	if !may(n.ctx, p) {
		n.wg.Done()
		s.Reset()
		return p, false
	}
	return p, true
}

// enter registers a goroutine Close must wait for — a loop, a stream
// handler libp2p started, a caller's Sync — or reports false once Close has
// begun. A true result must be paired with n.wg.Done.
func (n *Host) enter() bool {
	n.closing.RLock()
	defer n.closing.RUnlock()
	if n.closed {
		return false
	}
	n.wg.Add(1)
	return true
}

// Close stops every service and goroutine of the Host, and the libp2p host
// if the Host owns it. Later calls return the first call's result.
func (n *Host) Close() error {
	n.closeOnce.Do(func() {
		n.closing.Lock()
		n.closed = true
		n.closing.Unlock()
		var errs []error
		if n.view != nil {
			// Say goodbye while the members still answer.
			n.view.leave()
			errs = append(errs, n.view.stop(), n.view.save())
		}
		if n.gossip != nil {
			// Leave the topics while pubsub, which runs under ctx, still
			// answers.
			errs = append(errs, n.gossip.leave())
		}
		for _, nm := range n.keyNames() {
			n.h.RemoveStreamHandler(nm.sync)
			n.h.RemoveStreamHandler(nm.query)
			n.h.RemoveStreamHandler(nm.batches)
		}
		if n.keys != nil {
			n.h.RemoveStreamHandler(authProtocol)
		}
		n.cancel()
		if n.disc != nil {
			errs = append(errs, n.disc.close())
		}
		n.h.Network().StopNotify(n.notify)
		if n.cfg.OwnsHost {
			errs = append(errs, n.h.Close())
		}
		n.wg.Wait()
		n.closeErr = errors.Join(errs...)
	})
	return n.closeErr
}

// Addrs returns the host's dialable multiaddrs, each ending in /p2p/<ID>.
func (n *Host) Addrs() []string {
	addrs, err := lpeer.AddrInfoToP2pAddrs(&lpeer.AddrInfo{ID: n.h.ID(), Addrs: n.h.Addrs()})
	if err != nil {
		return nil
	}
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = a.String()
	}
	return out
}

// onConnected runs in the network's notification goroutine: it must not
// block. Connected and Disconnected come in pairs, one per connection.
func (n *Host) onConnected(_ network.Network, c network.Conn) {
	p := c.RemotePeer()
	if n.gater.Refused(p) {
		// A host built without our gater still accepts the connection.
		go c.Close()
	}
	if n.keys != nil {
		n.proofCheck(p)
	}
	n.view.nudge()
	switch returned, owed := n.members.connected(p, c.ID()); {
	case owed:
		// A sync this node asked for failed for want of a connection.
		n.requestSync(p)
	case returned:
		// A member is back after a partition or a restart: exchange what
		// each side recorded meanwhile, and what each knows of the others.
		n.syncTwice(p)
		n.exchangeViews(p)
	}
}

func (n *Host) onDisconnected(_ network.Network, c network.Conn) {
	n.view.nudge()
	if n.members.disconnected(c.RemotePeer(), c.ID()) {
		// Its next connection is checked again.
		n.proofs.forget(c.RemotePeer())
	}
}

// watchProtocols makes a member of every peer that speaks the cluster's
// sync protocol, as identify reports it. Gossipsub's topic subscriptions
// say the same, but not always: pubsub gives up on a peer whose stream it
// once failed to open, and never reports it.
func (n *Host) watchProtocols(ctx context.Context) error {
	sub, err := n.h.EventBus().Subscribe([]any{new(event.EvtPeerIdentificationCompleted), new(event.EvtPeerProtocolsUpdated)})
	if err != nil {
		return err
	}
	syncs := n.protocols(func(nm names) protocol.ID { return nm.sync })
	speaks := func(protos []protocol.ID) bool {
		return slices.ContainsFunc(protos, func(p protocol.ID) bool { return slices.Contains(syncs, p) })
	}
	for _, p := range n.h.Network().Peers() {
		if ps, _ := n.h.Peerstore().SupportsProtocols(p, syncs...); len(ps) > 0 {
			n.onJoined(p)
		}
	}
	n.goLoop(ctx, func(ctx context.Context) {
		defer sub.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case e := <-sub.Out():
				switch e := e.(type) {
				case event.EvtPeerIdentificationCompleted:
					if speaks(e.Protocols) {
						n.onJoined(e.Peer)
					}
				case event.EvtPeerProtocolsUpdated:
					if speaks(e.Added) {
						n.onJoined(e.Peer)
					}
				}
			}
		}
	})
	return nil
}

// meshSettle is how long after a member joins its gossip mesh has surely
// formed.
const meshSettle = 3 * time.Second

// onJoined makes p a candidate when it speaks the cluster's protocol or
// subscribes to its topic, and reconciles with it: a completed session
// makes it a member (admitted).
func (n *Host) onJoined(p lpeer.ID) {
	if n.h.Network().Connectedness(p) != network.Connected {
		return
	}
	if n.members.joined(p) {
		n.log.Debug("peer joined", "peer", p)
		n.syncTwice(p)
	}
}

// syncTwice reconciles with p, which joined or came back: now, for what
// it holds from before, and once the gossip mesh has taken it in, for what
// gossip published before then (about a second), which reached it not.
func (n *Host) syncTwice(p lpeer.ID) {
	n.requestSyncOnce(p)
	n.goLoop(n.ctx, func(ctx context.Context) {
		if sleep(ctx, n.joinResync) {
			n.requestSyncOnce(p)
		}
	})
}

// restarted follows up on a record of a member's new incarnation, which
// says when its process started. A connection to it opened before then
// belongs to a process that is gone: until a keepalive noticed, sessions
// and gossip would go into it rather than the member's new connection.
// What the member missed while down, and what it kept, are reconciled now,
// whichever side's ID is smaller: both sides' connections stayed up.
func (n *Host) restarted(p lpeer.ID, incarnation uint64) {
	// Its clock may run ahead of this node's by a little.
	started := time.Unix(0, int64(incarnation)).Add(-time.Second)
	for _, c := range n.h.Network().ConnsToPeer(p) {
		if opened := c.Stat().Opened; !opened.IsZero() && opened.Before(started) { // mocknet's are zero
			n.log.Debug("closing a connection to a member's last run", "peer", p, "opened", opened)
			c.Close()
		}
	}
	if n.h.Network().Connectedness(p) == network.Connected {
		n.requestSync(p)
	}
}

// admitted follows up on a membership decision of the member table: a new
// member's connections are kept when the connection manager trims, and
// those of the member it evicted, if any, no longer are.
func (n *Host) admitted(a admission) {
	if a.admitted != "" {
		n.h.ConnManager().Protect(a.admitted, memberTag)
		n.log.Debug("member admitted", "peer", a.admitted)
		n.exchangeViews(a.admitted)
	}
	if a.evicted != "" {
		n.h.ConnManager().Unprotect(a.evicted, memberTag)
	}
}

// exchangeViews swaps member lists with p in the background.
func (n *Host) exchangeViews(p lpeer.ID) {
	if n.view == nil {
		return
	}
	n.goLoop(n.ctx, func(ctx context.Context) {
		if err := n.view.exchange(ctx, p); err != nil {
			n.log.Debug("member list exchange failed", "peer", p, "err", err)
		}
	})
}

// memberTag marks the connections of members in the connection manager.
const memberTag = "scopemesh-member"

// identified reports whether identify has told which protocols p speaks.
func (n *Host) identified(p lpeer.ID) bool {
	protos, err := n.h.Peerstore().GetProtocols(p)
	return err == nil && len(protos) > 0
}

// ParseAddr reads a multiaddr that ends in /p2p/<peer ID>.
func ParseAddr(addr string) (lpeer.AddrInfo, error) {
	m, err := ma.NewMultiaddr(addr)
	if err != nil {
		return lpeer.AddrInfo{}, fmt.Errorf("%w: %q: %v", ErrInvalidPeer, addr, err)
	}
	ai, err := lpeer.AddrInfoFromP2pAddr(m)
	if err != nil {
		return lpeer.AddrInfo{}, fmt.Errorf("%w: %q must end in /p2p/<peer ID>: %v", ErrInvalidPeer, addr, err)
	}
	return *ai, nil
}

// register makes ai a wanted peer: allowed, and re-dialled whenever it is
// unreachable.
func (n *Host) register(ai lpeer.AddrInfo) {
	n.gater.allowPeer(ai.ID)
	n.members.want(ai.ID)
	n.h.ConnManager().Protect(ai.ID, memberTag)
	n.h.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.PermanentAddrTTL)
}

// Connect registers the peer at addr (a multiaddr ending in /p2p/<ID>),
// lifting a Disconnect, and dials it. If the dial fails, Connect returns the
// error and the peer stays registered: it is re-dialled with backoff until
// it answers or Disconnect is called.
func (n *Host) Connect(ctx context.Context, addr string) error {
	ai, err := ParseAddr(addr)
	if err != nil {
		return err
	}
	if ai.ID == n.h.ID() {
		return fmt.Errorf("%w: %s is this node", ErrInvalidPeer, ai.ID)
	}
	n.register(ai)
	if err := n.dial(ctx, ai); err != nil {
		return fmt.Errorf("peer: connecting to %s (it stays registered and is re-dialled): %w", ai.ID, err)
	}
	return nil
}

// Redials of a dial that failed at once: how soon a failed dial must fail
// to be tried again, and how often it is.
const (
	quickFailure = 3 * time.Second
	quickRedials = 3
)

// dialRetried is what a node logs, at debug level, when it tries a dial
// that failed at once again.
const dialRetried = "dial failed at once: trying again"

// dial connects to ai. Two peers dialling each other's listening TCP ports
// at the same moment can make one connection (TCP simultaneous open, as
// both dial from their listening port), on which both handshakes fail at
// once; so a dial that fails quickly is tried again, with the swarm's
// backoff for the peer cleared, after a pause that the peer IDs break the
// tie of: the smaller waits tens of milliseconds, the larger a few
// hundred, so that the smaller's dial has connected them by then. The
// pause ends as soon as a connection to the peer opens: a dial after which
// the peer is connected succeeded. Both sides dial at once the first time,
// so a peer that only one side can reach (behind NAT) is connected as
// fast as before.
func (n *Host) dial(ctx context.Context, ai lpeer.AddrInfo) error {
	pause := func() time.Duration { return time.Duration(10+rand.IntN(40)) * time.Millisecond }
	if n.h.ID() > ai.ID {
		pause = func() time.Duration { return time.Duration(200+rand.IntN(200)) * time.Millisecond }
	}
	for redials := 0; ; redials++ {
		start := time.Now()
		err := n.h.Connect(ctx, ai)
		if err == nil || n.h.Network().Connectedness(ai.ID) == network.Connected {
			return nil
		}
		if redials == quickRedials || time.Since(start) > quickFailure {
			return err
		}
		n.log.Debug(dialRetried, "peer", ai.ID, "err", err)
		switch connected, werr := n.awaitConnection(ctx, ai.ID, pause()); {
		case connected:
			return nil
		case werr != nil:
			return errors.Join(err, werr)
		}
		if sw, ok := n.h.Network().(*swarm.Swarm); ok {
			sw.Backoff().Clear(ai.ID)
		}
	}
}

// awaitConnection waits up to d for a connection to p, and reports
// whether one is open. Its error is ctx's, the event bus's, or ErrClosed.
func (n *Host) awaitConnection(ctx context.Context, p lpeer.ID, d time.Duration) (bool, error) {
	sub, err := n.h.EventBus().Subscribe(new(event.EvtPeerConnectednessChanged))
	if err != nil {
		return false, fmt.Errorf("peer: watching connections: %w", err)
	}
	defer sub.Close()
	// Subscribed first, so a connection that opens between the check and
	// the wait is not missed.
	if n.h.Network().Connectedness(p) == network.Connected {
		return true, nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-t.C:
			return n.h.Network().Connectedness(p) == network.Connected, nil
		case e, open := <-sub.Out():
			if !open { // the host closed
				return false, ErrClosed
			}
			if e, ok := e.(event.EvtPeerConnectednessChanged); ok && e.Peer == p && e.Connectedness == network.Connected {
				return true, nil
			}
		}
	}
}

// ErrUnknownMember reports a member ID or name this node does not know.
var ErrUnknownMember = errors.New("peer: no such member")

// Join connects to the members at addrs (multiaddrs ending in /p2p/<ID>),
// registering each as Connect does, and returns once it holds the member
// list of one of them, with the number of members it then knows. With no
// addrs it waits until discovery or a Connect has found a member and
// their lists are swapped (at once if the node has no one to find). A
// node that has not joined says its cluster queries are incomplete.
func (n *Host) Join(ctx context.Context, addrs ...string) (int, error) {
	if len(addrs) == 0 {
		select {
		case <-n.view.joined:
			return len(n.members.known()), nil
		case <-ctx.Done():
			return len(n.members.known()), fmt.Errorf("peer: joining: no member found: %w", ctx.Err())
		}
	}
	var ais []lpeer.AddrInfo
	for _, addr := range addrs {
		ai, err := ParseAddr(addr)
		if err != nil {
			return 0, err
		}
		if ai.ID == n.h.ID() {
			return 0, fmt.Errorf("%w: %s is this node", ErrInvalidPeer, ai.ID)
		}
		ais = append(ais, ai)
	}
	errs := make([]error, len(ais))
	var wg sync.WaitGroup
	for i, ai := range ais {
		n.register(ai)
		wg.Go(func() {
			if errs[i] = n.dial(ctx, ai); errs[i] == nil {
				errs[i] = n.view.join(ctx, ai.ID)
			}
		})
	}
	wg.Wait()
	if slices.Contains(errs, nil) {
		return len(n.members.known()), nil
	}
	return len(n.members.known()), fmt.Errorf("peer: joining (the members stay registered and are re-dialled): %w", errors.Join(errs...))
}

// Forget drops the member id (a peer ID, or a member's name) from the
// view, and stops redialling it: a member that will not come back, whose
// absence would otherwise make every cluster query incomplete until it
// had been unreachable for Config.ForgetAfter. If it comes back, started
// anew, it is a member again. A connected member is not forgotten.
func (n *Host) Forget(id string) (string, error) {
	p, err := lpeer.Decode(id)
	if err != nil {
		byName := n.members.byName(id)
		switch len(byName) {
		case 0:
			return "", fmt.Errorf("%w: %q is neither a peer ID nor a member's name", ErrUnknownMember, id)
		case 1:
			p = byName[0]
		default:
			return "", fmt.Errorf("%w: %d members are named %q: give the ID", ErrUnknownMember, len(byName), id)
		}
	}
	if n.h.Network().Connectedness(p) == network.Connected {
		return "", fmt.Errorf("peer: %s is connected: Disconnect it first", p)
	}
	if !n.members.forget(p) {
		return "", fmt.Errorf("%w: %s", ErrUnknownMember, p)
	}
	n.h.ConnManager().Unprotect(p, memberTag)
	return p.String(), nil
}

// Disconnect closes every connection with the peer id and refuses it —
// connections, gossip, sync — until Connect is called for it again.
func (n *Host) Disconnect(id string) error {
	p, err := lpeer.Decode(id)
	if err != nil {
		return fmt.Errorf("%w: %q: %v", ErrInvalidPeer, id, err)
	}
	n.gater.refuse(p)
	n.members.refuse(p)
	n.h.ConnManager().Unprotect(p, memberTag)
	return n.h.Network().ClosePeer(p)
}

// redialLoop dials, with backoff, the members and wanted peers that are not
// connected, so a healed partition reconnects without waiting for discovery.
func (n *Host) redialLoop(ctx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		due, expired := n.members.dueForDial()
		for _, p := range expired {
			n.h.ConnManager().Unprotect(p, memberTag)
		}
		for _, p := range due {
			n.goLoop(ctx, func(ctx context.Context) {
				ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				if err := n.dial(ctx, lpeer.AddrInfo{ID: p}); err != nil {
					n.log.Debug("redial failed", "peer", p, "err", err)
				}
			})
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// connectedMembers returns the members and wanted peers with an open
// connection (and, in a closed cluster, a proof of membership).
func (n *Host) connectedMembers() []lpeer.ID { return n.connectedOf(n.members.connectedMembers()) }

// syncTargets returns the peers a node syncs with that are connected:
// members, wanted peers and candidates (which a session admits).
func (n *Host) syncTargets() []lpeer.ID { return n.connectedOf(n.members.syncTargets()) }

// connectedOf returns those of peers with an open connection that may be
// served.
func (n *Host) connectedOf(peers []lpeer.ID) []lpeer.ID {
	var out []lpeer.ID
	for _, p := range peers {
		if n.h.Network().Connectedness(p) == network.Connected && n.member(expired, p) {
			out = append(out, p)
		}
	}
	return out
}

// Peers returns the cluster members this node knows of, sorted by ID.
func (n *Host) Peers() []PeerInfo {
	ps := n.h.Peerstore()
	return n.members.list(func(p lpeer.ID, info *PeerInfo) {
		for _, a := range ps.Addrs(p) {
			info.Addrs = append(info.Addrs, a.String())
		}
		info.RTT = ps.LatencyEWMA(p)
		info.Connections = connections(n.h.Network().ConnsToPeer(p))
	})
}

// Status returns the cluster as this node sees it.
func (n *Host) Status() Status {
	peers := n.Peers()
	connected := 0
	for _, p := range peers {
		if p.Connected {
			connected++
		}
	}
	deleted, _ := n.cfg.Set.Expired()
	bytes, reclaimable, _ := n.cfg.Set.Bytes(n.ctx) // 0 if unknown
	return Status{
		ID:          n.h.ID().String(),
		Name:        n.cfg.Name,
		Joined:      n.view.hasJoined(),
		Addrs:       n.Addrs(),
		Events:      n.cfg.Set.Len(),
		Peers:       peers,
		Connected:   connected,
		Gossip:      n.gossip.counts.snapshot(),
		ClockSkew:   n.replica.skew.list(),
		Uptime:      time.Since(n.started),
		Horizon:     n.cfg.Set.Horizon().Time(),
		StoreBytes:  bytes,
		Reclaimable: reclaimable,
		Expired:     deleted,

		SyncInitiated: n.stats.syncInitiated.snapshot(),
		SyncServed:    n.stats.syncServed.snapshot(),
		QueriesServed: n.stats.queriesServed.snapshot(),
		QueriesAsked:  n.stats.queriesAsked.snapshot(),
	}
}

// connections describes conns, oldest first.
func connections(conns []network.Conn) []Connection {
	out := make([]Connection, 0, len(conns))
	for _, c := range conns {
		st := c.Stat()
		addr := c.RemoteMultiaddr()
		_, err := addr.ValueForProtocol(ma.P_CIRCUIT)
		out = append(out, Connection{
			Addr:    addr.String(),
			Relayed: err == nil,
			Limited: st.Limited,
			Inbound: st.Direction == network.DirInbound,
			Opened:  st.Opened,
		})
	}
	slices.SortFunc(out, func(a, b Connection) int { return a.Opened.Compare(b.Opened) })
	return out
}
