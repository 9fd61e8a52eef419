package nemesis

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
	dssync "github.com/ipfs/go-datastore/sync"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"

	"github.com/scopemesh/scopemesh"
	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/hlc"
)

// The tests below reproduce, each on its own, defects the nemesis found,
// so that they stay fixed.

// watchedStore is a datastore that counts the calls that reach it after
// the test declares it released: a node must not touch its store once
// Close has returned, since the owner may close it then (with Pebble, a
// write to a closed store panics).
type watchedStore struct {
	ds.Batching
	released atomic.Bool
	late     atomic.Int64
}

func (s *watchedStore) touch() {
	if s.released.Load() {
		s.late.Add(1)
	}
}

func (s *watchedStore) Get(ctx context.Context, k ds.Key) ([]byte, error) {
	s.touch()
	return s.Batching.Get(ctx, k)
}

func (s *watchedStore) Put(ctx context.Context, k ds.Key, v []byte) error {
	s.touch()
	return s.Batching.Put(ctx, k, v)
}

func (s *watchedStore) Query(ctx context.Context, q dsq.Query) (dsq.Results, error) {
	s.touch()
	return s.Batching.Query(ctx, q)
}

func (s *watchedStore) Batch(ctx context.Context) (ds.Batch, error) {
	s.touch()
	b, err := s.Batching.Batch(ctx)
	if err != nil {
		return nil, err
	}
	return &watchedBatch{Batch: b, s: s}, nil
}

type watchedBatch struct {
	ds.Batch
	s *watchedStore
}

func (b *watchedBatch) Commit(ctx context.Context) error {
	b.s.touch()
	return b.Batch.Commit(ctx)
}

// TestCloseWaitsForInboundSync closes a node while a peer pushes events to
// it through sync sessions. Close must not return while a session it
// serves still writes to the store: libp2p runs stream handlers in
// goroutines of its own, and once Close returns the store's owner may
// close the store (with Pebble, a later write panics).
func TestCloseWaitsForInboundSync(t *testing.T) {
	ctx := context.Background()
	for round := range 50 {
		mn := mocknet.New()
		ha, err := mn.GenPeer()
		if err != nil {
			t.Fatal(err)
		}
		hb, err := mn.GenPeer()
		if err != nil {
			t.Fatal(err)
		}
		// Pebble's synced commits take long enough for a session to be
		// caught in the middle of one.
		pebble, err := openPebble(vfs.NewMem())
		if err != nil {
			t.Fatal(err)
		}
		store := &watchedStore{Batching: pebble}
		cfg := scopemesh.Config{Cluster: "close", DisableMDNS: true, DHT: scopemesh.DHTOff}
		cfgA, cfgB := cfg, cfg
		cfgA.Host, cfgA.Datastore = ha, store
		cfgB.Host = hb
		a, err := scopemesh.Open(ctx, cfgA)
		if err != nil {
			t.Fatal(err)
		}
		b, err := scopemesh.Open(ctx, cfgB)
		if err != nil {
			t.Fatal(err)
		}
		for range 3000 {
			if _, err := b.Record(ctx, events.Event{Kind: "pushed", Payload: make([]byte, 100)}); err != nil {
				t.Fatal(err)
			}
		}
		if err := mn.LinkAll(); err != nil {
			t.Fatal(err)
		}
		if err := mn.ConnectAllButSelf(); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		wg.Go(func() {
			for range 10 {
				b.Sync(ctx)
			}
		})
		// Close at a different moment of the transfer each round.
		time.Sleep(time.Duration(round%10) * 5 * time.Millisecond)
		a.Close()
		store.released.Store(true)
		// Whatever is still under way gets a moment to show itself.
		time.Sleep(50 * time.Millisecond)
		b.Close()
		wg.Wait()
		mn.Close()
		pebble.Close()
		if n := store.late.Load(); n > 0 {
			t.Fatalf("round %d: the node used its store %d times after Close returned", round, n)
		}
	}
}

// TestRestartsKeepClockNearPhysicalTime restarts a node from its store
// several times within a second. Each incarnation's clock may start up to
// hlc.DefaultPersistAhead ahead of physical time (its last persisted
// bound), but no further: a clock that resumed from each bound and
// persisted the next one PersistAhead beyond it would run k windows ahead
// after k quick restarts, as in a crash loop, and peers would hold back its
// events until physical time caught up.
func TestRestartsKeepClockNearPhysicalTime(t *testing.T) {
	ctx := context.Background()
	store := dssync.MutexWrap(ds.NewMapDatastore())
	mn := mocknet.New()
	defer mn.Close()
	for inc := range 4 {
		h, err := mn.GenPeer()
		if err != nil {
			t.Fatal(err)
		}
		n, err := scopemesh.Open(ctx, scopemesh.Config{Host: h, Datastore: store, DisableMDNS: true, DHT: scopemesh.DHTOff})
		if err != nil {
			t.Fatal(err)
		}
		e, err := n.Record(ctx, events.Event{Kind: "started"})
		n.Close()
		h.Close()
		if err != nil {
			t.Fatal(err)
		}
		lead := time.Duration(e.Time.Wall - time.Now().UnixNano())
		if lead > hlc.DefaultPersistAhead+50*time.Millisecond {
			t.Fatalf("incarnation %d recorded at %v ahead of physical time, more than the persisted lead %v", inc, lead, hlc.DefaultPersistAhead)
		}
	}
}

// TestMembersSeeEachOtherWhenHostWasConnectedFirst opens a node on a host
// of the application's own (Config.Host) that is already connected to a
// running member, and expects each to count the other as a connected
// member.
//
// peer.New used to register its network notifee on the host without
// counting the connections the host already had, and the member table
// learned of connections only from that notifee: the new node listed the
// member as not connected for as long as that connection lasted, never
// synced with it, and its cluster queries reported it unreachable.
func TestMembersSeeEachOtherWhenHostWasConnectedFirst(t *testing.T) {
	ctx := context.Background()
	mn := mocknet.New()
	defer mn.Close()
	ha, err := mn.GenPeer()
	if err != nil {
		t.Fatal(err)
	}
	hb, err := mn.GenPeer()
	if err != nil {
		t.Fatal(err)
	}
	cfg := scopemesh.Config{Cluster: "late", DisableMDNS: true, DHT: scopemesh.DHTOff}
	cfgA, cfgB := cfg, cfg
	cfgA.Host, cfgB.Host = ha, hb
	a, err := scopemesh.Open(ctx, cfgA)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := mn.LinkAll(); err != nil {
		t.Fatal(err)
	}
	if _, err := mn.ConnectPeers(ha.ID(), hb.ID()); err != nil {
		t.Fatal(err)
	}
	// The member learns what the new host speaks, as it would while the
	// application starts up, before the node opens on that host.
	err = poll(ctx, 10*time.Second, "the member to identify the new host", func() bool {
		protos, err := ha.Peerstore().GetProtocols(hb.ID())
		return err == nil && len(protos) > 0
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := scopemesh.Open(ctx, cfgB)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	err = poll(ctx, 10*time.Second, "each node to count the other as a connected member", func() bool {
		return connectedTo(a, b.ID()) && connectedTo(b, a.ID())
	})
	if err != nil {
		t.Fatalf("%v\nthe first node's peers: %+v\nthe second node's peers: %+v", err, a.Peers(), b.Peers())
	}
}
