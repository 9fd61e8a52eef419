package peer

import (
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/host/autorelay"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// DefaultListenAddrs are where a host listens when given none: TCP and QUIC
// on every interface, IPv4 and IPv6, on ports the system picks.
var DefaultListenAddrs = []string{
	"/ip4/0.0.0.0/tcp/0",
	"/ip4/0.0.0.0/udp/0/quic-v1",
	"/ip6/::/tcp/0",
	"/ip6/::/udp/0/quic-v1",
}

// Reachability overrides what a host believes about being reachable from
// the internet.
type Reachability int

const (
	ReachabilityAuto    Reachability = iota // let AutoNAT find out
	ReachabilityPublic                      // e.g. a bootstrap or relay node with a public address
	ReachabilityPrivate                     // e.g. a node known to be behind NAT: use relays at once
)

// HostOptions configures the libp2p host NewLibp2pHost builds.
type HostOptions struct {
	Key          crypto.PrivKey   // the node's identity
	ListenAddrs  []string         // empty: DefaultListenAddrs
	Relays       []lpeer.AddrInfo // static relays to reserve a slot on when behind NAT
	RelayService bool             // relay connections for other members
	RelayACL     *RelayACL        // who the relay service serves; nil: no one
	Reachability Reachability
	Gater        *Gater // refuses disconnected peers; nil: none
}

// Keepalives of a connection: a connection whose packets stop arriving —
// a link that went down without a reset, a peer killed behind a NAT — is
// closed within about muxKeepAlive+muxWriteTimeout, not yamux's 40 s, so
// that the peer is marked unreachable and its sessions end.
const (
	muxKeepAlive    = 5 * time.Second
	muxWriteTimeout = 5 * time.Second
)

// muxer is yamux as libp2p configures it, with keepalives every
// muxKeepAlive answered within muxWriteTimeout.
func muxer() *yamux.Transport {
	t := *yamux.DefaultTransport
	t.KeepAliveInterval = muxKeepAlive
	t.ConnectionWriteTimeout = muxWriteTimeout
	return &t
}

// NewLibp2pHost builds the host a node runs on: TCP and QUIC, TLS and Noise,
// yamux, the default resource manager, a connection manager, NAT port
// mapping, AutoNAT v2, the circuit relay v2 client with hole punching, and
// optionally static relays and a relay service.
func NewLibp2pHost(o HostOptions) (host.Host, error) {
	listen := o.ListenAddrs
	if len(listen) == 0 {
		listen = DefaultListenAddrs
	}
	cm, err := connmgr.NewConnManager(64, 256, connmgr.WithGracePeriod(time.Minute))
	if err != nil {
		return nil, err
	}
	opts := []libp2p.Option{
		libp2p.Identity(o.Key),
		libp2p.ListenAddrStrings(listen...),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		// TLS first, as a dialled node takes its dialler's first
		// choice: TLS encrypts with AES-GCM where the processor has AES
		// instructions, Noise always with ChaCha20-Poly1305, which costs
		// several times as much CPU when replicating.
		libp2p.Security(libp2ptls.ID, libp2ptls.New),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, muxer()),
		libp2p.ConnectionManager(cm),
		libp2p.EnableAutoNATv2(),
		libp2p.EnableHolePunching(),
	}
	if o.Gater != nil {
		opts = append(opts, libp2p.ConnectionGater(o.Gater))
	}
	if !loopbackOnly(listen) {
		// Ask the home router (UPnP, NAT-PMP) for a port mapping. It
		// multicasts on the local network, pointless for a node that
		// listens only on loopback.
		opts = append(opts, libp2p.NATPortMap())
	}
	if len(o.Relays) > 0 {
		// A relay refuses a node's reservation until the node is a
		// member there: try again within a minute, not libp2p's hour.
		opts = append(opts, libp2p.EnableAutoRelayWithStaticRelays(mergeAddrInfos(o.Relays), autorelay.WithBackoff(time.Minute)))
	}
	if o.RelayService {
		// A cluster's own relay carries replication, not just the hole
		// punching handshake: lift the default 2 minute / 128 KiB cap on
		// relayed connections, for members only.
		acl := o.RelayACL
		if acl == nil {
			acl = NewRelayACL()
		}
		opts = append(opts, libp2p.EnableRelayService(relay.WithInfiniteLimits(), relay.WithACL(acl)), libp2p.EnableNATService())
	}
	switch o.Reachability {
	case ReachabilityPublic:
		opts = append(opts, libp2p.ForceReachabilityPublic())
	case ReachabilityPrivate:
		opts = append(opts, libp2p.ForceReachabilityPrivate())
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("peer: starting libp2p: %w", err)
	}
	return h, nil
}

// mergeAddrInfos joins the entries of one peer into one, in first-seen
// order. AutoRelay never reserves a slot on a static relay listed twice,
// as a relay given by its TCP and its QUIC address would be.
func mergeAddrInfos(ais []lpeer.AddrInfo) []lpeer.AddrInfo {
	var out []lpeer.AddrInfo
	at := make(map[lpeer.ID]int)
	for _, ai := range ais {
		i, ok := at[ai.ID]
		if !ok {
			at[ai.ID] = len(out)
			out = append(out, lpeer.AddrInfo{ID: ai.ID})
			i = len(out) - 1
		}
		for _, a := range ai.Addrs {
			if !slices.ContainsFunc(out[i].Addrs, a.Equal) {
				out[i].Addrs = append(out[i].Addrs, a)
			}
		}
	}
	return out
}

// loopbackOnly reports whether every address is a loopback address.
func loopbackOnly(addrs []string) bool {
	for _, a := range addrs {
		m, err := ma.NewMultiaddr(a)
		if err != nil || !manet.IsIPLoopback(m) {
			return false
		}
	}
	return true
}
