package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/boxo/bitswap"
	"github.com/ipfs/boxo/bitswap/network/bsnet"
	"github.com/ipfs/boxo/blockservice"
	"github.com/ipfs/boxo/blockstore"
	"github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	crdt "github.com/ipfs/go-ds-crdt"
	logging "github.com/ipfs/go-log/v2"
	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/scopemesh/scopemesh/bench/internal/cluster"
	"github.com/scopemesh/scopemesh/events"
)

// A dsCluster is go-ds-crdt as its users deploy it: each replica on its own
// libp2p host, gossipsub broadcasting its DAG heads, and a real network DAG
// service — boxo bitswap over the same host, configured as ipfs-lite
// configures it — so that a replica fetches the blocks it lacks from its
// peers over the network. An in-process shared DAG would skip exactly the
// part that makes it slow.
type dsCluster struct {
	nodes []*dsNode
}

type dsNode struct {
	host   host.Host
	wire   *cluster.Wire
	gater  *refuser
	cancel context.CancelFunc
	bswap  *bitswap.Bitswap
	bserv  blockservice.BlockService
	store  datastore.Batching
	crdt   *crdt.Datastore

	topicPeers func() []lpeer.ID // peers subscribed to the heads topic

	keys atomic.Int64 // distinct keys this replica holds (PutHook calls)
	mu   sync.Mutex
	seen map[string]time.Time // key → when this replica first held it
}

const dsNamespace = "/bench"

func startDS(ctx context.Context, nodes int, rebroadcast time.Duration) (*dsCluster, error) {
	// go-ds-crdt logs every fetch and rebroadcast at info level.
	logging.SetLogLevel("crdt", "error")
	c := &dsCluster{}
	topic := fmt.Sprintf("bench-ds-crdt-%d", time.Now().UnixNano())
	for range nodes {
		n, err := newDSNode(topic, rebroadcast)
		if err != nil {
			c.close()
			return nil, err
		}
		c.nodes = append(c.nodes, n)
	}
	if err := c.connect(ctx, cluster.All(nodes), cluster.All(nodes)); err != nil {
		c.close()
		return nil, err
	}
	// Wait for the gossip mesh, as the scopemesh cluster does: heads
	// broadcast before it forms reach nobody.
	deadline := time.Now().Add(30 * time.Second)
	for _, n := range c.nodes {
		for len(n.topicPeers()) < nodes-1 {
			if time.Now().After(deadline) {
				c.close()
				return nil, errors.New("go-ds-crdt: the gossip mesh did not form")
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	time.Sleep(time.Second) // a heartbeat or two to graft the mesh
	return c, nil
}

func newDSNode(topic string, rebroadcast time.Duration) (_ *dsNode, err error) {
	ctx, cancel := context.WithCancel(context.Background())
	n := &dsNode{wire: cluster.NewWire(), gater: newRefuser(), cancel: cancel, seen: make(map[string]time.Time)}
	defer func() {
		if err != nil {
			n.close()
		}
	}()
	if n.host, err = cluster.NewHost(n.wire, libp2p.ConnectionGater(n.gater)); err != nil {
		return nil, err
	}
	n.store = dssync.MutexWrap(datastore.NewMapDatastore())
	bs := blockstore.NewIdStore(blockstore.NewBlockstore(n.store, blockstore.WriteThrough(true)))
	n.bswap = bitswap.New(ctx, bsnet.NewFromIpfsHost(n.host), nil, bs,
		bitswap.ProviderSearchDelay(time.Second),
		bitswap.EngineBlockstoreWorkerCount(128),
		bitswap.TaskWorkerCount(24),
		bitswap.EngineTaskWorkerCount(24),
		bitswap.MaxOutstandingBytesPerPeer(1<<20),
	)
	n.bserv = blockservice.New(bs, n.bswap)
	dag := merkledag.NewDAGService(n.bserv)

	ps, err := pubsub.NewGossipSub(ctx, n.host)
	if err != nil {
		return nil, err
	}
	bcast, err := crdt.NewPubSubBroadcaster(ctx, ps, topic)
	if err != nil {
		return nil, err
	}
	opts := crdt.DefaultOptions()
	opts.RebroadcastInterval = rebroadcast
	opts.PutHook = func(k datastore.Key, _ []byte) {
		now := time.Now()
		n.mu.Lock()
		if _, ok := n.seen[k.String()]; !ok {
			n.seen[k.String()] = now
			n.keys.Add(1)
		}
		n.mu.Unlock()
	}
	if n.crdt, err = crdt.New(n.store, datastore.NewKey(dsNamespace), dag, bcast, opts); err != nil {
		return nil, err
	}
	n.topicPeers = func() []lpeer.ID { return ps.ListPeers(topic) }
	return n, nil
}

func (n *dsNode) close() {
	// The broadcaster must stop before the datastore closes, or Close
	// hangs (go-ds-crdt's doc).
	n.cancel()
	if n.crdt != nil {
		n.crdt.Close()
	}
	if n.bserv != nil {
		n.bserv.Close()
	}
	if n.host != nil {
		n.host.Close()
	}
}

func (c *dsCluster) close() {
	var wg sync.WaitGroup
	for _, n := range c.nodes {
		wg.Go(n.close)
	}
	wg.Wait()
}

func (c *dsCluster) connect(ctx context.Context, a, b []int) error {
	var errs []error
	for _, i := range a {
		for _, j := range b {
			if i == j {
				continue
			}
			c.nodes[i].gater.allow(c.nodes[j].host.ID())
			c.nodes[j].gater.allow(c.nodes[i].host.ID())
			to := c.nodes[j].host
			errs = append(errs, c.nodes[i].host.Connect(ctx, lpeer.AddrInfo{ID: to.ID(), Addrs: to.Addrs()}))
		}
	}
	return errors.Join(errs...)
}

// split cuts the links between a and b and refuses new ones, as
// scopemesh's Node.Disconnect does.
func (c *dsCluster) split(a, b []int) {
	for _, i := range a {
		for _, j := range b {
			c.nodes[i].gater.refuse(c.nodes[j].host.ID())
			c.nodes[j].gater.refuse(c.nodes[i].host.ID())
			c.nodes[i].host.Network().ClosePeer(c.nodes[j].host.ID())
			c.nodes[j].host.Network().ClosePeer(c.nodes[i].host.ID())
		}
	}
}

func (c *dsCluster) traffic() cluster.Traffic {
	var t cluster.Traffic
	for _, n := range c.nodes {
		t = t.Add(n.wire.Sent())
	}
	return t
}

// waitKeys waits until every node of idx holds want keys and returns when
// the last got there.
func (c *dsCluster) waitKeys(ctx context.Context, idx []int, want int, timeout time.Duration, progress func(least int)) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	var last time.Time
	for {
		least, done := want, true
		for _, i := range idx {
			if k := int(c.nodes[i].keys.Load()); k < want {
				least, done = min(least, k), false
			}
		}
		if done {
			last = time.Now()
			return last, nil
		}
		if progress != nil {
			progress(least)
		}
		if time.Now().After(deadline) {
			return last, fmt.Errorf("go-ds-crdt: timed out after %v with the slowest replica at %d of %d keys", timeout, least, want)
		}
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// put writes events as keys on node i: one Put each, or in batches of
// batch keys committed together (crdt.Datastore.Batch), which go-ds-crdt
// turns into one DAG node per commit.
func (c *dsCluster) put(ctx context.Context, i int, evs []events.Event, batch int) error {
	n := c.nodes[i]
	value := func(e events.Event) ([]byte, error) { return events.Marshal(e) }
	if batch <= 1 {
		for _, e := range evs {
			v, err := value(e)
			if err != nil {
				return err
			}
			if err := n.crdt.Put(ctx, dsKey(e), v); err != nil {
				return err
			}
		}
		return nil
	}
	for len(evs) > 0 {
		k := min(batch, len(evs))
		b, err := n.crdt.Batch(ctx)
		if err != nil {
			return err
		}
		for _, e := range evs[:k] {
			v, err := value(e)
			if err != nil {
				return err
			}
			if err := b.Put(ctx, dsKey(e), v); err != nil {
				return err
			}
		}
		if err := b.Commit(ctx); err != nil {
			return err
		}
		evs = evs[k:]
	}
	return nil
}

func dsKey(e events.Event) datastore.Key {
	return datastore.NewKey("/e/" + hex.EncodeToString(e.ID[:]))
}

// refuser is a connection gater that refuses the peers it is told to.
type refuser struct {
	mu      sync.Mutex
	refused map[lpeer.ID]bool
}

func newRefuser() *refuser { return &refuser{refused: make(map[lpeer.ID]bool)} }

func (g *refuser) refuse(p lpeer.ID) { g.mu.Lock(); g.refused[p] = true; g.mu.Unlock() }
func (g *refuser) allow(p lpeer.ID)  { g.mu.Lock(); delete(g.refused, p); g.mu.Unlock() }
func (g *refuser) ok(p lpeer.ID) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return !g.refused[p]
}

func (g *refuser) InterceptPeerDial(p lpeer.ID) bool                 { return g.ok(p) }
func (g *refuser) InterceptAddrDial(p lpeer.ID, _ ma.Multiaddr) bool { return g.ok(p) }
func (g *refuser) InterceptAccept(network.ConnMultiaddrs) bool       { return true }
func (g *refuser) InterceptSecured(_ network.Direction, p lpeer.ID, _ network.ConnMultiaddrs) bool {
	return g.ok(p)
}
func (g *refuser) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }
