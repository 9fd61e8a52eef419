package nemesis

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scopemesh/scopemesh"
)

// loopbackNetwork runs the nodes on real TCP sockets on loopback, each
// with its events in Pebble in its own DataDir, as a deployed node keeps
// them. A node restarts on a new port with the identity its DataDir holds.
// Partitions are made the way an operator would, with Disconnect on both
// sides (a node then refuses the other until Connect); there is no way to
// delay or drop packets here, and the process cannot crash without taking
// the test with it, so those faults run on the simulated network only.
// Its join figures are guarded by mu.
type loopbackNetwork struct {
	mu       sync.Mutex
	slowest  time.Duration // the longest a join took
	joins    int
	slowJoin int // joins that took more than a second
}

func (l *loopbackNetwork) noteJoin(took time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.joins++
	if took > time.Second {
		l.slowJoin++
	}
	l.slowest = max(l.slowest, took)
}

// loopbackIncarnation is what a loopback incarnation adds to its node: the
// address peers dial it at.
type loopbackIncarnation struct{ addr string }

func newLoopbackNetwork(t *testing.T, nodes int) (*loopbackNetwork, []any) {
	stores := make([]any, nodes)
	for i := range stores {
		stores[i] = t.TempDir()
	}
	return &loopbackNetwork{}, stores
}

func (*loopbackNetwork) open(ctx context.Context, s *slot, cfg scopemesh.Config) (*incarnation, error) {
	cfg.DataDir = s.store.(string)
	cfg.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0"}
	n, err := scopemesh.Open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	var addr string
	for _, a := range n.Addrs() {
		if strings.Contains(a, "/tcp/") {
			addr = a
			break
		}
	}
	if addr == "" {
		n.Close()
		return nil, fmt.Errorf("n%d listens on no TCP address: %v", s.index, n.Addrs())
	}
	return &incarnation{node: n, net: &loopbackIncarnation{addr: addr}}, nil
}

func (*loopbackNetwork) release(*incarnation) error { return nil }

func addrOf(inc *incarnation) string { return inc.net.(*loopbackIncarnation).addr }

// join connects a and b as an operator would: Connect on both sides,
// again every second until they are connected. A dial may fail at first:
// the other side may still refuse, or libp2p may hold the address in dial
// backoff after dials refused during the cut. Connect keeps the peer
// registered and the node re-dials it, so the join waits for the
// connection rather than failing on the first error.
func (l *loopbackNetwork) join(ctx context.Context, a, b *incarnation) error {
	began := time.Now()
	var lastErr error
	rounds := 0
	err := poll(ctx, 30*time.Second, "the joined nodes to connect", func() bool {
		if connectedTo(a.node, b.node.ID()) && connectedTo(b.node, a.node.ID()) {
			return true
		}
		if time.Since(began) < time.Duration(rounds)*time.Second {
			return false
		}
		rounds++
		errA := a.node.Connect(ctx, addrOf(b))
		errB := b.node.Connect(ctx, addrOf(a))
		if errA != nil && errB != nil {
			lastErr = errors.Join(errA, errB)
		}
		return false
	})
	l.noteJoin(time.Since(began))
	if err != nil {
		return fmt.Errorf("%w: %v", err, lastErr)
	}
	return nil
}

func (*loopbackNetwork) split(a, b *incarnation) error {
	if a.closed || b.closed {
		// A closed node's host is gone, and with it the connections.
		return nil
	}
	if err := errors.Join(a.node.Disconnect(b.node.ID()), b.node.Disconnect(a.node.ID())); err != nil {
		return err
	}
	err := poll(context.Background(), 5*time.Second, "the split nodes to disconnect", func() bool {
		return !connectedTo(a.node, b.node.ID()) && !connectedTo(b.node, a.node.ID())
	})
	if err != nil {
		for _, x := range []*incarnation{a, b} {
			for _, p := range x.node.Peers() {
				err = fmt.Errorf("%w\n%s sees %s: connected %v refused %v connections %+v", err, x.node.ID(), p.ID, p.Connected, p.Refused, p.Connections)
			}
		}
	}
	return err
}

func connectedTo(n *scopemesh.Node, id string) bool {
	for _, p := range n.Peers() {
		if p.ID == id && p.Connected {
			return true
		}
	}
	return false
}

// flap drops the connections between a and b: Disconnect closes them, and
// Connect at once dials again, so what was in flight is lost.
func (l *loopbackNetwork) flap(ctx context.Context, a, b *incarnation) error {
	if err := l.split(a, b); err != nil {
		return err
	}
	return l.join(ctx, a, b)
}

func (*loopbackNetwork) delay(*incarnation, *incarnation, time.Duration) error {
	return errors.New("loopback sockets cannot be delayed")
}

// loopbackSteps is the loopback schedule's length: real sockets and disks
// are slower, so the default schedules are shorter than the simulated
// network's; -steps sets it as it is.
func loopbackSteps() int {
	if *stepsFlag > 0 {
		return *stepsFlag
	}
	return steps() / 2
}

func (*loopbackNetwork) crash(*slot, int) error {
	return errors.New("a loopback node cannot crash without the test")
}

// TestNemesisLoopback runs three nodes on real loopback sockets through a
// schedule of the faults that sockets allow: partitions of random shapes,
// cut and reset links, clock skew, and stops and restarts from DataDir.
func TestNemesisLoopback(t *testing.T) {
	if testing.Short() {
		t.Skip("opens real sockets and stores on disk")
	}
	seed := seed()
	const maxOffset = 200 * time.Millisecond
	shape := planShape{
		nodes:      3,
		steps:      loopbackSteps(),
		maxOffset:  maxOffset,
		maxRecords: 6,
		minUp:      2,
	}
	for _, k := range []faultKind{partition, cutLink, flapLink, skewClock, stopNode} {
		shape.kinds[k] = true
	}
	p := newPlan(seed, shape)
	net, stores := newLoopbackNetwork(t, shape.nodes)
	c := newCluster(clusterConfig{
		nodes:        shape.nodes,
		syncInterval: time.Second,
		maxOffset:    maxOffset,
		stepDuration: 80 * time.Millisecond,
	}, net, stores)
	runAndCheck(t, c, p, func() error { return nil })
	t.Logf("%d joins, %d of them slower than a second, the slowest %v", net.joins, net.slowJoin, net.slowest.Round(time.Millisecond))
}
