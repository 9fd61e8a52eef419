package peer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/host/autorelay"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	libp2pquic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/quicreuse"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"github.com/quic-go/quic-go"
	"go.uber.org/fx"
	"golang.org/x/time/rate"
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

// QUIC keepalives, as muxKeepAlive and muxWriteTimeout for TCP: a QUIC
// connection is pinged every quicKeepAlive, and closed once no packet came
// for quicIdle, not quic-go's 30 s as go-libp2p configures it.
const (
	quicKeepAlive = 5 * time.Second
	quicIdle      = 10 * time.Second
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
	listen, sockets, err := bindQUIC(listen)
	if err != nil {
		return nil, err
	}
	cm, err := connmgr.NewConnManager(64, 256, connmgr.WithGracePeriod(time.Minute))
	if err != nil {
		closeSockets(sockets)
		return nil, err
	}
	opts := []libp2p.Option{
		libp2p.Identity(o.Key),
		libp2p.ListenAddrStrings(listen...),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(libp2pquic.NewTransport),
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
	if len(sockets) > 0 {
		opts = append(opts, libp2p.QUICReuse(quicConnManager(sockets)))
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
		closeSockets(sockets) // if the QUIC connection manager did not
		return nil, fmt.Errorf("peer: starting libp2p: %w", err)
	}
	return h, nil
}

// bindQUIC binds a UDP socket for each QUIC listen address on a wildcard
// IP (0.0.0.0, ::), for quicConnManager, and returns listen with the ports
// the system picked in place of port 0, so that libp2p listens on those
// sockets. An address that cannot be bound is left to libp2p, whose own
// listen reports it.
func bindQUIC(listen []string) ([]string, []*net.UDPConn, error) {
	out := slices.Clone(listen)
	var sockets []*net.UDPConn
	for i, s := range listen {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, nil, fmt.Errorf("peer: listen address %q: %w", s, err)
		}
		ip, err := manet.ToIP(a)
		if err != nil || !ip.IsUnspecified() {
			continue
		}
		if _, err := a.ValueForProtocol(ma.P_QUIC_V1); err != nil {
			continue
		}
		netw, hostport, err := manet.DialArgs(a)
		if err != nil {
			continue
		}
		laddr, err := net.ResolveUDPAddr(netw, hostport)
		if err != nil {
			continue
		}
		c, err := net.ListenUDP(netw, laddr)
		if err != nil {
			continue
		}
		sockets = append(sockets, c)
		port, err := ma.NewComponent("udp", strconv.Itoa(c.LocalAddr().(*net.UDPAddr).Port))
		if err != nil {
			return nil, nil, err
		}
		bound := slices.Clone(a)
		for j := range bound {
			if bound[j].Protocol().Code == ma.P_UDP {
				bound[j] = *port
			}
		}
		out[i] = bound.String()
	}
	return out, sockets, nil
}

// quicConnManager returns, for libp2p.QUICReuse, a constructor of the
// QUIC connection manager built as libp2p builds it by default, and lent
// a transport on each socket that gives the connections it dials and
// accepts quicKeepAlive and quicIdle; the manager closes the sockets.
//
// go-libp2p v0.51 fixes QUIC's keepalive (15 s) and idle timeout (30 s) in
// quicreuse's unexported quicConfig, which NewConnManager copies into
// unexported fields; no quicreuse, QUIC transport or libp2p option
// reaches them. A transport lent with ConnManager.LendTransport is handed
// that config on every dial and listen, and can change it; but quicreuse
// takes one only on a wildcard IP, so a host that listens on given IPs
// (as the tests on 127.0.0.1) keeps 30 s on those.
func quicConnManager(sockets []*net.UDPConn) func(quic.StatelessResetKey, quic.TokenGeneratorKey, network.ResourceManager, fx.Lifecycle) (*quicreuse.ConnManager, error) {
	return func(key quic.StatelessResetKey, tokens quic.TokenGeneratorKey, rcmgr network.ResourceManager, lc fx.Lifecycle) (*quicreuse.ConnManager, error) {
		// As libp2p's default constructor (config.go): inbound QUIC
		// connections are accounted by the resource manager.
		connContext := func(ctx context.Context, ci *quic.ClientInfo) (context.Context, error) {
			addr, err := quicreuse.ToQuicMultiaddr(ci.RemoteAddr, quic.Version1)
			if err != nil {
				addr = nil // the resource manager decides without it
			}
			scope, err := rcmgr.OpenConnection(network.DirInbound, false, addr)
			if err != nil {
				return ctx, err
			}
			ctx = network.WithConnManagementScope(ctx, scope)
			context.AfterFunc(ctx, scope.Done)
			return ctx, nil
		}
		cm, err := quicreuse.NewConnManager(key, tokens,
			quicreuse.ConnContext(connContext),
			quicreuse.VerifySourceAddress(rcmgr.VerifySourceAddress),
			quicreuse.EnableMetrics(nil)) // the default registerer, as libp2p's
		if err != nil {
			return nil, err
		}
		// As NewConnManager does for its own transports: past 1000 new
		// connections a second, every source address is verified.
		limiter := rate.NewLimiter(1000, 1000)
		verify := func(addr net.Addr) bool { return !limiter.Allow() || rcmgr.VerifySourceAddress(addr) }
		var lent []*quic.Transport
		release := func() error {
			errs := []error{cm.Close()} // it stops using the lent transports
			for _, tr := range lent {
				errs = append(errs, tr.Close())
			}
			return errors.Join(append(errs, closeSockets(sockets))...)
		}
		for _, c := range sockets {
			tr := &quic.Transport{Conn: c, StatelessResetKey: &key, TokenGeneratorKey: &tokens,
				ConnContext: connContext, VerifySourceAddress: verify}
			lent = append(lent, tr)
			netw := "udp4"
			if c.LocalAddr().(*net.UDPAddr).IP.To4() == nil {
				netw = "udp6"
			}
			if _, err := cm.LendTransport(netw, tunedQUIC{tr}, c); err != nil {
				release()
				return nil, fmt.Errorf("peer: lending a QUIC transport on %v: %w", c.LocalAddr(), err)
			}
		}
		lc.Append(fx.StopHook(release))
		return cm, nil
	}
}

// closeSockets closes every socket.
func closeSockets(sockets []*net.UDPConn) error {
	var errs []error
	for _, c := range sockets {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// tunedQUIC is a QUIC transport whose connections take quicKeepAlive and
// quicIdle.
type tunedQUIC struct{ *quic.Transport }

// tuned returns a copy of conf with quicKeepAlive and quicIdle.
func tuned(conf *quic.Config) *quic.Config {
	conf = conf.Clone()
	conf.KeepAlivePeriod, conf.MaxIdleTimeout = quicKeepAlive, quicIdle
	return conf
}

// Listen accepts connections with quicKeepAlive and quicIdle.
func (t tunedQUIC) Listen(tlsConf *tls.Config, conf *quic.Config) (quicreuse.QUICListener, error) {
	ln, err := t.Transport.Listen(tlsConf, tuned(conf))
	if err != nil {
		return nil, err // not a nil *quic.Listener in an interface
	}
	return ln, nil
}

// Dial dials a connection with quicKeepAlive and quicIdle.
func (t tunedQUIC) Dial(ctx context.Context, addr net.Addr, tlsConf *tls.Config, conf *quic.Config) (*quic.Conn, error) {
	return t.Transport.Dial(ctx, addr, tlsConf, tuned(conf))
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
