package peer

import (
	"testing"

	lpeer "github.com/libp2p/go-libp2p/core/peer"
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
