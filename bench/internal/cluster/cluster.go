package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"

	"github.com/scopemesh/scopemesh"
)

// Options configure a Cluster.
type Options struct {
	// Nodes is how many nodes to start. Zero means 3.
	Nodes int
	// Name is the cluster's name; clusters in one process need different
	// names only if they share hosts, but distinct names keep their
	// protocols apart in a trace. Empty means "bench".
	Name string
	// Dir, if set, gives each node a Pebble store in a directory under it;
	// empty means in-memory stores.
	Dir string
	// SyncInterval is the nodes' anti-entropy period. Zero means the
	// library's default (30s): long enough that periodic syncs stay out
	// of a run of a few seconds, as they would in a deployment.
	SyncInterval time.Duration
	// Stores, if set, are the nodes' datastores, one per node, perhaps
	// holding events already (Config.Datastore). They override Dir; the
	// caller closes them after the cluster.
	Stores []datastore.Batching
	// Settle is how long Start waits after the gossip mesh has formed, so
	// that the syncs a node starts when a member joins (at once and again
	// 3s later, peer.meshSettle) are over before the workload begins. Zero
	// means 3.5s; negative means no wait.
	Settle time.Duration
}

func (o Options) withDefaults() Options {
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	if o.Name == "" {
		o.Name = "bench"
	}
	if o.Settle == 0 {
		o.Settle = 3500 * time.Millisecond
	}
	return o
}

// Member is one node of a Cluster and the libp2p host it runs on.
type Member struct {
	*scopemesh.Node
	Host host.Host
	Wire *Wire
}

// Cluster is a set of scopemesh nodes in this process, each on its own
// libp2p host listening on loopback TCP, all connected to each other.
type Cluster struct {
	Nodes []*Member
	opts  Options
}

// Start opens the nodes, connects every pair, and returns once each node
// has every other connected and its gossip mesh formed.
func Start(ctx context.Context, opts Options) (_ *Cluster, err error) {
	opts = opts.withDefaults()
	c := &Cluster{opts: opts}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	for i := range opts.Nodes {
		m, err := openMember(ctx, opts, i)
		if err != nil {
			return nil, fmt.Errorf("starting node %d: %w", i, err)
		}
		c.Nodes = append(c.Nodes, m)
	}
	if err := c.connect(ctx, All(len(c.Nodes)), All(len(c.Nodes))); err != nil {
		return nil, err
	}
	if err := c.WaitMesh(ctx, 60*time.Second); err != nil {
		return nil, err
	}
	if opts.Settle > 0 {
		select {
		case <-time.After(opts.Settle):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return c, nil
}

// NewHost builds a libp2p host as a node's default one would be for
// loopback TCP — TLS then Noise, yamux, the same connection manager
// limits — with w counting its traffic, and any extra options. QUIC, NAT
// traversal and relays are left out: loopback needs none of them, and they
// would only add background traffic.
func NewHost(w *Wire, extra ...libp2p.Option) (host.Host, error) {
	cm, err := connmgr.NewConnManager(64, 256, connmgr.WithGracePeriod(time.Minute))
	if err != nil {
		return nil, err
	}
	return libp2p.New(append([]libp2p.Option{
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(libp2ptls.ID, libp2ptls.New),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.ConnectionManager(cm),
		libp2p.BandwidthReporter(w),
		libp2p.DisableRelay(),
	}, extra...)...)
}

func openMember(ctx context.Context, opts Options, i int) (*Member, error) {
	w := NewWire()
	h, err := NewHost(w)
	if err != nil {
		return nil, err
	}
	cfg := scopemesh.Config{
		Cluster:      opts.Name,
		DisableMDNS:  true,
		DHT:          scopemesh.DHTOff,
		Host:         h,
		SyncInterval: opts.SyncInterval,
		Retention:    -1, // stores given in Options may hold events from long ago
	}
	if i < len(opts.Stores) {
		cfg.Datastore = opts.Stores[i]
	} else if opts.Dir != "" {
		cfg.DataDir = filepath.Join(opts.Dir, fmt.Sprintf("node%d", i))
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			h.Close()
			return nil, err
		}
	}
	n, err := scopemesh.Open(ctx, cfg)
	if err != nil {
		h.Close()
		return nil, err
	}
	return &Member{Node: n, Host: h, Wire: w}, nil
}

// Close closes every node and its host.
func (c *Cluster) Close() error {
	var errs []error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, m := range c.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := errors.Join(m.Node.Close(), m.Host.Close())
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// All returns the node indexes 0..n-1.
func All(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// connect makes each node of a Connect to each node of b (not itself), and
// each of b to each of a: Connect lifts a Disconnect only on the side that
// calls it. The two ends of a link call in turn: when both dial at once,
// one of the two handshakes can fail.
func (c *Cluster) connect(ctx context.Context, a, b []int) error {
	type link struct{ from, to int }
	seen := make(map[link]bool)
	var links []link
	for _, i := range a {
		for _, j := range b {
			l := link{min(i, j), max(i, j)}
			if i != j && !seen[l] {
				seen[l] = true
				links = append(links, l)
			}
		}
	}
	// Dial in parallel, a few at a time: a Noise handshake costs a couple
	// of milliseconds of CPU, and fifty nodes have 1,225 links.
	sem := make(chan struct{}, 16)
	errs := make([]error, len(links))
	var wg sync.WaitGroup
	for k, l := range links {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			x, y := c.Nodes[l.from], c.Nodes[l.to]
			errs[k] = errors.Join(x.Connect(ctx, y.Addrs()[0]), y.Connect(ctx, x.Addrs()[0]))
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// WaitMesh waits until every node has every other node connected as a
// cluster member and a gossip mesh of min(nodes-1, 3) members: a message
// published before the mesh forms reaches nobody. Gossipsub aims at 5 to
// 12 mesh peers, but a node that peers with full meshes pruned waits out
// their backoff, a minute, with fewer.
func (c *Cluster) WaitMesh(ctx context.Context, timeout time.Duration) error {
	want := len(c.Nodes) - 1
	wantMesh := min(want, 3)
	return poll(ctx, timeout, 20*time.Millisecond, func() (bool, error) {
		for _, m := range c.Nodes {
			conn, mesh := 0, 0
			for _, p := range m.Peers() {
				if p.Connected {
					conn++
				}
				if p.InMesh {
					mesh++
				}
			}
			if conn < want || mesh < wantMesh {
				return false, nil
			}
		}
		return true, nil
	}, "the gossip mesh to form")
}

// Split cuts every link between the nodes of a and those of b, on both
// sides, as a network partition would: Disconnect closes the connections
// and refuses the peer until Connect.
func (c *Cluster) Split(a, b []int) error {
	var errs []error
	for _, i := range a {
		for _, j := range b {
			errs = append(errs, c.Nodes[i].Disconnect(c.Nodes[j].ID()), c.Nodes[j].Disconnect(c.Nodes[i].ID()))
		}
	}
	return errors.Join(errs...)
}

// Join reconnects the nodes of a with those of b, both ways. Connect lifts
// a Disconnect on the side that calls it, then dials; a dial that reaches a
// node still refusing the dialler gets its connection closed, and both
// sides then wait out a redial backoff. So side a lifts its refusals first
// without dialling (Connect with a context already done: the peer stays
// registered, the dial fails at once), and side b dials.
func (c *Cluster) Join(ctx context.Context, a, b []int) error {
	lift, cancel := context.WithCancel(ctx)
	cancel()
	for _, i := range a {
		for _, j := range b {
			c.Nodes[i].Connect(lift, c.Nodes[j].Addrs()[0]) // fails, as meant
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, len(b))
	for k, j := range b {
		wg.Go(func() {
			for _, i := range a {
				errs[k] = errors.Join(errs[k], c.Nodes[j].Connect(ctx, c.Nodes[i].Addrs()[0]))
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Counts returns the number of events each node holds.
func (c *Cluster) Counts() []int {
	out := make([]int, len(c.Nodes))
	for i, m := range c.Nodes {
		out[i] = m.Status().Events
	}
	return out
}

// WaitEvents waits until every node of idx holds at least want events. It
// returns when each got there, measured by polling every interval, and an
// error if the timeout passed first. onPoll, if set, sees the smallest
// count at every poll.
func (c *Cluster) WaitEvents(ctx context.Context, idx []int, want int, timeout, interval time.Duration, onPoll func(least int)) ([]time.Time, error) {
	reached := make([]time.Time, len(idx))
	err := poll(ctx, timeout, interval, func() (bool, error) {
		least, done := want, true
		for k, i := range idx {
			if !reached[k].IsZero() {
				continue
			}
			n := c.Nodes[i].Status().Events
			if n >= want {
				reached[k] = time.Now()
				continue
			}
			done = false
			least = min(least, n)
		}
		if onPoll != nil {
			onPoll(least)
		}
		return done, nil
	}, fmt.Sprintf("%d nodes to hold %d events", len(idx), want))
	return reached, err
}

// Traffic returns what every host of the cluster sent so far.
func (c *Cluster) Traffic() Traffic {
	var t Traffic
	for _, m := range c.Nodes {
		t = t.Add(m.Wire.Sent())
	}
	return t
}

// poll calls cond every interval until it reports true, fails, or timeout
// passes.
func poll(ctx context.Context, timeout, interval time.Duration, cond func() (bool, error), what string) error {
	deadline := time.Now().Add(timeout)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		ok, err := cond()
		if err != nil || ok {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v waiting for %s", timeout, what)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
