package nemesis

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	pebbleds "github.com/ipfs/go-ds-pebble"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/scopemesh/scopemesh"
)

// mockNetwork runs the nodes on libp2p's simulated network. A node keeps
// its key across incarnations, so its peer ID does not change: each
// incarnation gets a fresh mocknet host made from the same key (mocknet
// replaces a closed peer that is added again). Its events live in Pebble on
// an in-memory file system that can produce crash images, so a crash keeps
// exactly what a real crash would.
type mockNetwork struct {
	mn   mocknet.Mocknet
	keys []crypto.PrivKey

	mu       sync.Mutex
	unsynced *rand.Rand // chooses which unsynced writes survive a power loss; REQUIRES: mu
}

// mockStore is a node's disk: the file system its Pebble store lives on.
type mockStore struct{ fs *vfs.MemFS }

// mockIncarnation is what an incarnation holds besides its node.
type mockIncarnation struct {
	host host.Host
	ds   *pebbleds.Datastore
}

// storePath is where a node's Pebble store lives on its file system.
const storePath = "/scopemesh/store"

// newMockNetwork returns a simulated network for nodes, and their
// stores: crashable in-memory file systems, or the directories dirs names.
func newMockNetwork(seed int64, nodes int, dirs ...string) (*mockNetwork, []any, error) {
	m := &mockNetwork{mn: mocknet.New(), unsynced: rand.New(rand.NewPCG(uint64(seed), 0xc1a54))}
	// Keys come from the seed, so a seed names the same nodes every run.
	var keySeed [32]byte
	for i := range 8 {
		keySeed[i] = byte(uint64(seed) >> (8 * i))
	}
	keys := rand.NewChaCha8(keySeed)
	stores := make([]any, nodes)
	for i := range nodes {
		key, _, err := crypto.GenerateEd25519Key(keys)
		if err != nil {
			return nil, nil, err
		}
		m.keys = append(m.keys, key)
		if dirs != nil {
			stores[i] = dirs[i]
		} else {
			stores[i] = &mockStore{fs: vfs.NewCrashableMem()}
		}
	}
	return m, stores, nil
}

func (m *mockNetwork) open(ctx context.Context, s *slot, cfg scopemesh.Config) (*incarnation, error) {
	key := m.keys[s.index]
	id, err := lpeer.IDFromPrivateKey(key)
	if err != nil {
		return nil, err
	}
	// A link holds the hosts it joins: drop the ones the last incarnation
	// left, so that a dial never reaches the closed host.
	for _, p := range m.mn.Peers() {
		for _, l := range m.mn.LinksBetweenPeers(id, p) {
			m.mn.Unlink(l)
		}
	}
	addr, err := ma.NewMultiaddr(fmt.Sprintf("/ip4/10.0.0.%d/tcp/4242", s.index+1))
	if err != nil {
		return nil, err
	}
	h, err := m.mn.AddPeer(key, addr)
	if err != nil {
		return nil, err
	}
	cfg.Host = h
	mi := &mockIncarnation{host: h}
	switch store := s.store.(type) {
	case *mockStore:
		if mi.ds, err = openPebble(store.fs); err != nil {
			h.Close()
			return nil, err
		}
		cfg.Datastore = mi.ds
	case string:
		// A node's own store in a DataDir on disk, as deployed; it
		// cannot be imaged, so such nodes do not crash.
		cfg.DataDir = store
	}
	node, err := scopemesh.Open(ctx, cfg)
	if err != nil {
		m.release(&incarnation{net: mi})
		return nil, err
	}
	return &incarnation{node: node, net: mi}, nil
}

// openPebble opens the node's store on fs. Every commit is synced, as with
// Config.SyncWrites: an acknowledged event survives even a power loss.
func openPebble(fs vfs.FS) (*pebbleds.Datastore, error) {
	return pebbleds.NewDatastore(storePath,
		pebbleds.WithPebbleOpts(&pebble.Options{FS: fs}),
		pebbleds.WithPebbleWriteOptions(pebble.Sync))
}

func (m *mockNetwork) release(inc *incarnation) error {
	mi := inc.net.(*mockIncarnation)
	err := mi.host.Close()
	if mi.ds != nil {
		err = errors.Join(err, mi.ds.Close())
	}
	return err
}

func hostOf(inc *incarnation) host.Host { return inc.net.(*mockIncarnation).host }

func (m *mockNetwork) join(ctx context.Context, a, b *incarnation) error {
	ha, hb := hostOf(a), hostOf(b)
	if len(m.mn.LinksBetweenPeers(ha.ID(), hb.ID())) == 0 {
		if _, err := m.mn.LinkPeers(ha.ID(), hb.ID()); err != nil {
			return err
		}
	}
	// Each names the other, as an operator's bootstrap list would, so that
	// each redials the other when the link flaps: a node that restarts
	// knows no member until a sync with it completes. Connect dials now,
	// as the redial loop would after its backoff; one dial suffices.
	errA := a.node.Connect(ctx, mockAddr(hb))
	errB := b.node.Connect(ctx, mockAddr(ha))
	if errA != nil && errB != nil {
		return errors.Join(errA, errB)
	}
	return nil
}

// mockAddr returns h's address with its peer ID, for Connect.
func mockAddr(h host.Host) string { return h.Addrs()[0].String() + "/p2p/" + h.ID().String() }

func (m *mockNetwork) split(a, b *incarnation) error {
	ha, hb := hostOf(a), hostOf(b)
	for _, l := range m.mn.LinksBetweenPeers(ha.ID(), hb.ID()) {
		m.mn.Unlink(l)
	}
	// A dial that found the link before it went may still complete: close
	// connections until none is left.
	return poll(context.Background(), 5*time.Second, "the split nodes to disconnect", func() bool {
		ha.Network().ClosePeer(hb.ID())
		hb.Network().ClosePeer(ha.ID())
		return len(ha.Network().ConnsToPeer(hb.ID())) == 0 && len(hb.Network().ConnsToPeer(ha.ID())) == 0
	})
}

func (m *mockNetwork) flap(_ context.Context, a, b *incarnation) error {
	ha, hb := hostOf(a), hostOf(b)
	return errors.Join(ha.Network().ClosePeer(hb.ID()), hb.Network().ClosePeer(ha.ID()))
}

func (m *mockNetwork) delay(a, b *incarnation, d time.Duration) error {
	for _, l := range m.mn.LinksBetweenPeers(hostOf(a).ID(), hostOf(b).ID()) {
		l.SetOptions(mocknet.LinkOptions{Latency: d})
	}
	return nil
}

func (m *mockNetwork) crash(s *slot, keep int) error {
	st, ok := s.store.(*mockStore)
	if !ok {
		return errors.New("a node with its store on disk cannot be imaged")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	st.fs = st.fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: keep, RNG: m.unsynced})
	return nil
}

func (m *mockNetwork) close() error { return m.mn.Close() }
