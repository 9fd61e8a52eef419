package peer

import (
	"context"
	"crypto/rand"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	lpeer "github.com/libp2p/go-libp2p/core/peer"

	"github.com/scopemesh/scopemesh/crdt"
	"github.com/scopemesh/scopemesh/hlc"
)

func TestMergeAddrInfosJoinsARelaysTransports(t *testing.T) {
	const id = "12D3KooWQcZx3iZJdsSjGKyfrCwPRZJ7RyTiooJw2vLuDPNMpmiF"
	const other = "12D3KooWCfGprgSGgCTjqpGpChrTCN9fRgadxRZAspD1PbPCZDCH"
	var ais []lpeer.AddrInfo
	for _, a := range []string{
		"/ip4/11.0.0.1/udp/4001/quic-v1/p2p/" + id,
		"/ip4/11.0.0.2/tcp/4001/p2p/" + other,
		"/ip4/11.0.0.1/tcp/4001/p2p/" + id,
		"/ip4/11.0.0.1/udp/4001/quic-v1/p2p/" + id, // twice
	} {
		ai, err := ParseAddr(a)
		if err != nil {
			t.Fatal(err)
		}
		ais = append(ais, ai)
	}
	got := mergeAddrInfos(ais)
	if len(got) != 2 || got[0].ID.String() != id || got[1].ID.String() != other {
		t.Fatalf("merged into %v", got)
	}
	if len(got[0].Addrs) != 2 || got[0].Addrs[0].String() != "/ip4/11.0.0.1/udp/4001/quic-v1" || got[0].Addrs[1].String() != "/ip4/11.0.0.1/tcp/4001" {
		t.Errorf("the relay's addresses: %v", got[0].Addrs)
	}
}

// Two nodes that dial each other's listening TCP port at the same moment
// can make one connection by TCP simultaneous open, on which both TLS
// handshakes fail; Connect must still connect them.
func TestSimultaneousConnectsOverTCP(t *testing.T) {
	if testing.Short() {
		t.Skip("real TCP hosts")
	}
	for round := range 20 {
		var nodes [2]*Host
		for i := range nodes {
			key, _, err := crypto.GenerateEd25519Key(rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			h, err := NewLibp2pHost(HostOptions{Key: key, ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}})
			if err != nil {
				t.Fatal(err)
			}
			clock, err := hlc.NewClock(hlc.Config{})
			if err != nil {
				t.Fatal(err)
			}
			nodes[i], err = New(h, Config{Cluster: "simultaneous", Set: crdt.NewMemory(crdt.Options{}), Clock: clock,
				DHT: DHTOff, OwnsHost: true, Logger: quiet})
			if err != nil {
				h.Close()
				t.Fatal(err)
			}
			defer nodes[i].Close()
		}
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, n := range nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				errs[i] = n.Connect(ctx, nodes[1-i].Addrs()[0])
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d: node %d: %v", round, i, err)
			}
		}
	}
}
