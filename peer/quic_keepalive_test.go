package peer

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/scopemesh/scopemesh/internal/poll"
)

// A QUIC connection whose packets stop arriving, as when a link goes down,
// is closed within about quicIdle, as a TCP one is by yamux's keepalives,
// not after quic-go's 30 s. The hosts listen on 0.0.0.0, where
// quicConnManager tunes the keepalive.
func TestSilentQUICConnectionIsClosed(t *testing.T) {
	if testing.Short() {
		t.Skip("real QUIC hosts")
	}
	var hosts [2]host.Host
	for i := range hosts {
		key, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		h, err := NewLibp2pHost(HostOptions{Key: key, ListenAddrs: []string{"/ip4/0.0.0.0/udp/0/quic-v1"}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		hosts[i] = h
	}
	a, b := hosts[0], hosts[1]
	var target *net.UDPAddr
	for _, m := range b.Addrs() {
		if port, err := m.ValueForProtocol(ma.P_UDP); err == nil && strings.HasPrefix(m.String(), "/ip4/127.0.0.1/") {
			target, _ = net.ResolveUDPAddr("udp4", "127.0.0.1:"+port)
		}
	}
	if target == nil {
		t.Fatalf("b has no loopback QUIC address: %v", b.Addrs())
	}
	proxy := newFreezingUDPProxy(t, target)
	via := ma.StringCast(fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1", proxy.port()))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Connect(ctx, lpeer.AddrInfo{ID: b.ID(), Addrs: []ma.Multiaddr{via}}); err != nil {
		t.Fatal(err)
	}
	proxied := func() bool {
		for _, c := range a.Network().ConnsToPeer(b.ID()) {
			if c.RemoteMultiaddr().Equal(via) {
				return true
			}
		}
		return false
	}
	if !proxied() {
		t.Fatalf("no connection through the proxy: %v", a.Network().ConnsToPeer(b.ID()))
	}

	proxy.freeze()
	frozen := time.Now()
	poll.Until(t, 2*quicIdle, "the silent QUIC connection to close", func() bool { return !proxied() })
	t.Logf("the silent QUIC connection closed %v after its packets stopped", time.Since(frozen).Round(100*time.Millisecond))
}

// freezingUDPProxy forwards UDP datagrams to an address, from one socket
// per client, until frozen; then it drops them.
type freezingUDPProxy struct {
	conn   *net.UDPConn
	frozen atomic.Bool
}

func newFreezingUDPProxy(t *testing.T, target *net.UDPAddr) *freezingUDPProxy {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	p := &freezingUDPProxy{conn: conn}
	var wg sync.WaitGroup
	var mu sync.Mutex
	upstreams := make(map[string]*net.UDPConn) // by client address; nil once closed
	wg.Go(func() {
		buf := make([]byte, 64<<10)
		for {
			n, client, err := conn.ReadFromUDP(buf)
			if err != nil {
				return
			}
			mu.Lock()
			if upstreams == nil {
				mu.Unlock()
				return
			}
			up, ok := upstreams[client.String()]
			if !ok {
				if up, err = net.DialUDP("udp4", nil, target); err != nil {
					mu.Unlock()
					continue
				}
				upstreams[client.String()] = up
				wg.Go(func() { p.back(up, client) })
			}
			mu.Unlock()
			if !p.frozen.Load() {
				up.Write(buf[:n])
			}
		}
	})
	t.Cleanup(func() {
		conn.Close()
		mu.Lock()
		for _, up := range upstreams {
			up.Close()
		}
		upstreams = nil
		mu.Unlock()
		wg.Wait()
	})
	return p
}

// back forwards what target answers client, until frozen.
func (p *freezingUDPProxy) back(up *net.UDPConn, client *net.UDPAddr) {
	buf := make([]byte, 64<<10)
	for {
		n, err := up.Read(buf)
		if err != nil {
			return
		}
		if !p.frozen.Load() {
			p.conn.WriteToUDP(buf[:n], client)
		}
	}
}

func (p *freezingUDPProxy) port() int { return p.conn.LocalAddr().(*net.UDPAddr).Port }

func (p *freezingUDPProxy) freeze() { p.frozen.Store(true) }
