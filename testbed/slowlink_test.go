package testbed

import (
	"flag"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/scopemesh/scopemesh/internal/gobuild"
)

var slowLinkRate = flag.String("slowlink.rate", "", "TestSlowLink: run it, with the two nodes' link limited to this tc `rate` (256kbit, 1mbit)")

// Sizes of the backlog TestSlowLink moves: what each side recorded while
// the two were apart, 40 events of 48KB, about 1.9MB each way.
const (
	slowLinkEvents  = 40
	slowLinkPayload = 48 << 10
)

// TestSlowLink checks that two nodes reconcile a backlog over a slow,
// lossy link, and reports whether yamux's write timeout (5s) closes their
// TCP connection meanwhile. Opt-in: it takes minutes at low rates.
//
//	go test -v -run TestSlowLink ./testbed -slowlink.rate 256kbit
func TestSlowLink(t *testing.T) {
	if *slowLinkRate == "" {
		t.Skip("opt-in: -slowlink.rate RATE")
	}
	RequireNetAdmin(t)
	if _, err := exec.LookPath("tc"); err != nil {
		t.Skip("needs tc(8): apt-get install -y iproute2")
	}
	bin := gobuild.Binary(t, "github.com/scopemesh/scopemesh/cmd/scopemesh")
	n := newNetwork(t, bin, "faults.sh", "slowlink", "2")
	// TCP only: QUIC connections have no yamux.
	a := n.Start("n0", append(listenArgs(ip(0), tcpOnly), "--mdns=false", "--log-level", "debug")...)
	args := append(listenArgs(ip(1), tcpOnly), "--mdns=false", "--log-level", "debug")
	for _, addr := range a.Addrs {
		args = append(args, "--bootstrap", addr)
	}
	b := n.Start("n1", args...)
	Poll(t, 30*time.Second, "the two nodes to connect", func() error { return connected(a, b) })

	// Apart, each records its backlog.
	n.Script("cut", "n0", ip(1))
	n.Script("cut", "n1", ip(0))
	for i := range slowLinkEvents {
		for _, node := range []*Node{a, b} {
			// Random: a batch must not shrink by compression.
			payload := randomHex(slowLinkPayload / 2)
			if _, err := node.CLI("record", "slowlink.backlog", fmt.Sprint("n=", i), "--payload", payload); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Logf("slow link: %s", strings.TrimSpace(n.Script("slow", "n1", "on", *slowLinkRate)))
	n.Script("cut", "n0")
	n.Script("cut", "n1")

	// What the link did to the connection and the sessions, also when the
	// backlogs do not cross.
	defer func() {
		if peers, err := a.Peers(); err == nil {
			t.Logf("n0 counts %d reconnects of n1 (the cut may account for one)", peers[b.ID].Reconnects)
		}
		for _, node := range []*Node{a, b} {
			t.Logf("%s's log: %d connections closed by yamux's write timeout, %d sync sessions cut as stalled",
				node.Name, node.LogLines("connection write timeout"), node.LogLines("the peer stalled"))
		}
	}()
	took := Poll(t, 5*time.Minute, "the backlogs to cross the slow link", func() error {
		return converged(2*slowLinkEvents, []string{"--kind", "slowlink.backlog"}, a, b)
	})
	t.Logf("converged: both nodes hold both backlogs %v after the heal", took.Round(time.Millisecond))
}
