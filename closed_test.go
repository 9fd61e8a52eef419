package scopemesh

import (
	"context"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/scopemesh/scopemesh/events"
)

func TestClosedClusterOverTCP(t *testing.T) {
	ctx := context.Background()
	key, wrong := make([]byte, 32), make([]byte, 32)
	rand.Read(key)
	rand.Read(wrong)
	cfg := func(k []byte, bootstrap []string) Config {
		c := isolated(t, Config{ClusterKey: k, SignEvents: true, Bootstrap: bootstrap})
		c.Cluster = "closed" // one name for all: only the key tells them apart
		return c
	}
	a := open(t, cfg(key, nil))
	b := open(t, cfg(key, addrsWith(a, "/tcp/")))
	outsider := open(t, cfg(wrong, addrsWith(a, "/tcp/")))

	e, err := a.Record(ctx, events.Event{Kind: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Signature) != events.SignatureLen {
		t.Fatalf("recorded event has a %d-byte signature", len(e.Signature))
	}
	eventually(t, 20*time.Second, "the member to get the event", func() bool { return b.Status().Events == 1 })
	if outsider.Status().Events != 0 {
		t.Fatal("the outsider got the cluster's event")
	}
	for _, p := range a.Peers() {
		if p.ID == outsider.ID() && p.Member {
			t.Fatalf("the outsider is a member: %+v", p)
		}
	}
}

func TestClosedClusterConfigErrors(t *testing.T) {
	_, err := Open(context.Background(), Config{ClusterKey: []byte("short"), AcceptKeys: [][]byte{make([]byte, 31)}, AllowPeers: []string{"nope"}})
	for _, want := range []string{"cluster key 0", "cluster key 1", "AllowPeers"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %s", err, want)
		}
	}
	if _, err := Open(context.Background(), Config{AcceptKeys: [][]byte{make([]byte, 32)}}); err == nil {
		t.Error("AcceptKeys without a ClusterKey accepted")
	}
}

func TestAllowPeers(t *testing.T) {
	a := open(t, isolated(t, Config{}))
	b := open(t, isolated(t, Config{AllowPeers: []string{a.ID()}}))
	c := open(t, isolated(t, Config{}))
	if err := b.Connect(context.Background(), addrsWith(a, "/tcp/")[0]); err != nil {
		t.Fatalf("an allowed peer: %v", err)
	}
	if err := b.Connect(context.Background(), addrsWith(c, "/tcp/")[0]); err == nil {
		t.Fatal("connected to a peer not on the allowlist")
	}
}

// BenchmarkRecordSigned compares Record with and without SignEvents in
// one run:
//
//	go test -run '^$' -bench RecordSigned -benchtime 20000x .
func BenchmarkRecordSigned(b *testing.B) {
	for _, signed := range []bool{false, true} {
		name := "unsigned"
		if signed {
			name = "signed"
		}
		b.Run(name, func(b *testing.B) {
			n := open(b, isolated(b, Config{SignEvents: signed}))
			ctx := context.Background()
			e := events.Event{Kind: "http.request", Attrs: map[string]string{"path": "/api/v1/items/4711"}}
			for b.Loop() {
				if _, err := n.Record(ctx, e); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
