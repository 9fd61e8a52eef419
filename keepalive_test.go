package scopemesh

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/internal/poll"
	"github.com/scopemesh/scopemesh/query"
)

// TestSilentConnectionIsClosed: a connection whose packets stop arriving,
// as when a link goes down without a reset, is closed within seconds and
// the peer no longer counts as connected over it.
func TestSilentConnectionIsClosed(t *testing.T) {
	ctx := context.Background()
	a := open(t, isolated(t, Config{Name: "a"}))
	b := open(t, isolated(t, Config{Name: "b"}))
	proxy := newFreezingProxy(t, addrsWith(b, "/tcp/")[0])
	via := fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/p2p/%s", proxy.port(), b.ID())
	if _, err := a.Join(ctx, via); err != nil {
		t.Fatal(err)
	}
	proxied := func() bool {
		for _, c := range infoOf(a, b.ID()).Connections {
			if strings.Contains(c.Addr, fmt.Sprintf("/tcp/%d", proxy.port())) {
				return true
			}
		}
		return false
	}
	if !proxied() {
		t.Fatalf("no connection through the proxy: %+v", infoOf(a, b.ID()).Connections)
	}

	proxy.freeze()
	frozen := time.Now()
	// Keepalives every 5 s, answered within 5 s (peer/libp2p.go): yamux's
	// defaults would take 40 s.
	poll.Until(t, 20*time.Second, "the silent connection to close", func() bool { return !proxied() })
	t.Logf("the silent connection closed %v after its packets stopped", time.Since(frozen).Round(100*time.Millisecond))
}

// freezingProxy forwards TCP connections to a node's TCP address until
// frozen; then it drops what either side sends, closing nothing.
type freezingProxy struct {
	ln     net.Listener
	frozen atomic.Bool
	wg     sync.WaitGroup
}

func newFreezingProxy(t *testing.T, addr string) *freezingProxy {
	t.Helper()
	node, _, _ := strings.Cut(addr, "/p2p/")
	m, err := ma.NewMultiaddr(node)
	if err != nil {
		t.Fatal(err)
	}
	target, err := manet.ToNetAddr(m)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &freezingProxy{ln: ln}
	var conns []net.Conn
	var mu sync.Mutex
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target.String())
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, up)
			mu.Unlock()
			p.wg.Go(func() { p.pipe(up, c) })
			p.wg.Go(func() { p.pipe(c, up) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *freezingProxy) port() int { return p.ln.Addr().(*net.TCPAddr).Port }

func (p *freezingProxy) freeze() { p.frozen.Store(true) }

// pipe copies src to dst, dropping everything once the proxy is frozen.
func (p *freezingProxy) pipe(dst io.Writer, src io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.frozen.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// TestARestartedMembersOldConnectionIsClosed: a member whose process died
// behind a silent link and came back holds a connection to its last run
// nowhere; the node still holds one to it. Once the member's record of its
// new run arrives, the node closes that connection, well before the
// keepalive would, and reconciles with the new run.
func TestARestartedMembersOldConnectionIsClosed(t *testing.T) {
	ctx := context.Background()
	a := open(t, isolated(t, Config{Name: "a"}))
	dir := t.TempDir()
	b, err := Open(ctx, isolated(t, Config{Name: "b", DataDir: dir}))
	if err != nil {
		t.Fatal(err)
	}
	proxy := newFreezingProxy(t, addrsWith(b, "/tcp/")[0])
	via := fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/p2p/%s", proxy.port(), b.ID())
	if _, err := a.Join(ctx, via); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 10*time.Second, "a to know b as a member", func() bool { return infoOf(a, b.ID()).Member })
	proxied := func() bool {
		for _, c := range infoOf(a, b.ID()).Connections {
			if strings.Contains(c.Addr, fmt.Sprintf("/tcp/%d", proxy.port())) {
				return true
			}
		}
		return false
	}
	proxy.freeze()
	b.Close() // its goodbye goes nowhere: as if killed

	b2 := open(t, isolated(t, Config{Name: "b", DataDir: dir}))
	restarted := time.Now()
	e, err := b2.Record(ctx, events.Event{Kind: "after.restart"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b2.Join(ctx, addrsWith(a, "/tcp/")...); err != nil {
		t.Fatal(err)
	}
	// The keepalive would close it 10 s after the freeze.
	poll.Until(t, 4*time.Second, "a to close its connection to b's last run", func() bool { return !proxied() })
	poll.Until(t, 4*time.Second, "b's event from its new run to reach a", func() bool {
		got, err := a.Query(ctx, query.Filter{Kinds: []string{"after.restart"}})
		return err == nil && len(got) == 1 && got[0].ID == e.ID
	})
	t.Logf("the old connection closed and b's new event arrived %v after b restarted", time.Since(restarted).Round(10*time.Millisecond))
}
