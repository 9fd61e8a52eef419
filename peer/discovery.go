package peer

import (
	"context"
	"errors"
	"fmt"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/network"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"
)

// DHTMode says how a node takes part in its cluster's DHT.
type DHTMode int

// The DHT modes. The zero value is DHTAuto.
const (
	DHTAuto   DHTMode = iota // server unless AutoNAT finds the node unreachable
	DHTOff                   // no DHT: peers come from mDNS, Bootstrap and Connect
	DHTClient                // query the DHT, serve nothing
	DHTServer                // query and serve the DHT
)

func (m DHTMode) String() string {
	switch m {
	case DHTAuto:
		return "auto"
	case DHTOff:
		return "off"
	case DHTClient:
		return "client"
	case DHTServer:
		return "server"
	}
	return fmt.Sprintf("DHTMode(%d)", int(m))
}

// Valid reports whether m is one of the modes.
func (m DHTMode) Valid() bool { return m >= DHTAuto && m <= DHTServer }

// How often a member looks for others on the DHT: soon after start, then
// less often.
const (
	findFirst = 2 * time.Second
	findEvery = time.Minute
)

// discovery finds cluster members on the local network (mDNS) and through
// the cluster's own DHT, whose protocol prefix is derived from the cluster
// name so it never mixes with the public IPFS DHT.
type discovery struct {
	mdns mdns.Service
	dht  *dht.IpfsDHT
}

func startDiscovery(ctx context.Context, n *Host, cfg Config) (*discovery, error) {
	d := &discovery{}
	if cfg.MDNS {
		d.mdns = mdns.NewMdnsService(n.h, n.names.mdns, foundNotifee{ctx, n})
		if err := d.mdns.Start(); err != nil {
			return d, fmt.Errorf("peer: starting mDNS: %w", err)
		}
	}
	if cfg.DHT == DHTOff {
		return d, nil
	}
	mode := map[DHTMode]dht.ModeOpt{DHTAuto: dht.ModeAutoServer, DHTClient: dht.ModeClient, DHTServer: dht.ModeServer}[cfg.DHT]
	var err error
	// The DHT's protocol is the same for every key of a cluster, so that it
	// stays while the keys change; in a closed cluster it is the same for
	// every closed cluster, and serves proven members only.
	d.dht, err = dht.New(n.clusterHost(), dht.Mode(mode), dht.ProtocolPrefix(n.names.dhtPrefix), dht.BootstrapPeers(cfg.Bootstrap...))
	if err != nil {
		return d, fmt.Errorf("peer: starting the DHT: %w", err)
	}
	if err := d.dht.Bootstrap(ctx); err != nil {
		return d, fmt.Errorf("peer: bootstrapping the DHT: %w", err)
	}
	rd := drouting.NewRoutingDiscovery(d.dht)
	n.goLoop(ctx, func(ctx context.Context) { advertiseLoop(ctx, n, rd) })
	n.goLoop(ctx, func(ctx context.Context) { findLoop(ctx, n, rd) })
	return d, nil
}

func (d *discovery) close() error {
	var errs []error
	if d.mdns != nil {
		errs = append(errs, d.mdns.Close())
	}
	if d.dht != nil {
		errs = append(errs, d.dht.Close())
	}
	return errors.Join(errs...)
}

// advertiseLoop keeps this node advertised under the rendezvous of each
// of its cluster keys (or the open cluster's).
func advertiseLoop(ctx context.Context, n *Host, rd *drouting.RoutingDiscovery) {
	for {
		wait := findFirst // until the routing table has peers, retry soon
		for _, nm := range n.keyNames() {
			if ttl, err := rd.Advertise(ctx, nm.rendezvous); err == nil {
				wait = ttl * 7 / 8
			}
		}
		if !sleep(ctx, wait) {
			return
		}
	}
}

// findLoop connects to the members the DHT knows of. It looks less often
// as time goes on, but soon again while it finds a member it cannot dial:
// one that has just reserved a relay slot may not have its relayed address
// on the DHT yet.
func findLoop(ctx context.Context, n *Host, rd *drouting.RoutingDiscovery) {
	wait := findFirst
	for sleep(ctx, wait) {
		missed := false
		for _, nm := range n.keyNames() {
			found, err := rd.FindPeers(ctx, nm.rendezvous)
			if err != nil {
				continue
			}
			for ai := range found {
				missed = !n.found(ctx, ai) || missed
			}
		}
		wait = min(2*wait, findEvery)
		if missed {
			wait = findFirst / 2
		}
	}
}

// found dials a member a discovery mechanism found, unless it is this node,
// refused, or already connected. It reports false if the dial failed.
func (n *Host) found(ctx context.Context, ai lpeer.AddrInfo) bool {
	if ai.ID == n.h.ID() || n.gater.Refused(ai.ID) || len(ai.Addrs) == 0 || n.h.Network().Connectedness(ai.ID) == network.Connected {
		return true
	}
	n.h.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.TempAddrTTL)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := n.dial(ctx, ai); err != nil {
		n.log.Debug("dialling a discovered peer failed", "peer", ai.ID, "err", err)
		return false
	}
	return true
}

// foundNotifee receives mDNS results, in mDNS's goroutines.
type foundNotifee struct {
	ctx context.Context
	n   *Host
}

func (f foundNotifee) HandlePeerFound(ai lpeer.AddrInfo) { f.n.found(f.ctx, ai) }

// sleep waits for d or ctx, reporting false if ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
