package rbsr

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/scopemesh/scopemesh/crdt"
)

// benchPair returns two sets of about n keys each that differ in d keys,
// half on each side (one, on the responder, for d = 1). Clustered puts the
// differences at the newest end, as a partition leaves them; scattered
// spreads them at random.
func benchPair(n, d int, clustered bool) (a, b []crdt.Key) {
	universe := newKeyGen(uint64(n + d)).keys(n + d - d/2)
	rng := rand.New(rand.NewPCG(uint64(d), 3))
	side := make([]int, len(universe))
	if clustered {
		for i := len(universe) - d; i < len(universe); i++ {
			side[i] = 1 + i%2
		}
	} else {
		for placed := 0; placed < d; {
			if i := rng.IntN(len(universe)); side[i] == 0 {
				side[i] = 1 + placed%2
				placed++
			}
		}
	}
	if d == 1 {
		for i := range side {
			if side[i] != 0 {
				side[i] = 2
			}
		}
	}
	return split(universe, func(i int) int { return side[i] })
}

// BenchmarkReconcile runs whole sessions between two sets of a million
// events, held in the sorted-slice model (sliceKeys: the reconciler's own
// cost, not the set's index) and reports, per session: round trips, bytes each way, total bytes
// over 32 bytes per differing ID, and the time each side spent (one
// goroutine, so CPU time).
func BenchmarkReconcile(b *testing.B) {
	const n = 1_000_000
	for _, d := range []int{1, 1000, 100_000} {
		for _, clustered := range []bool{true, false} {
			layout := map[bool]string{true: "clustered", false: "scattered"}[clustered]
			b.Run(fmt.Sprintf("%s/d=%d", layout, d), func(b *testing.B) {
				ka, kb := benchPair(n, d, clustered)
				want := len(difference(ka, kb)) + len(difference(kb, ka))
				sa, sb := newSliceKeys(ka), newSliceKeys(kb)
				var s session
				var initTime, respTime time.Duration
				for b.Loop() {
					init := sa.reconciler(b, Options{})
					resp := sb.reconciler(b, Options{})
					s = session{}
					t0 := time.Now()
					msg, err := init.Initiate()
					initTime += time.Since(t0)
					if err != nil {
						b.Fatal(err)
					}
					for {
						s.bytesOut += len(msg)
						t0 = time.Now()
						reply, err := resp.Respond(msg)
						respTime += time.Since(t0)
						if err != nil {
							b.Fatal(err)
						}
						s.bytesIn += len(reply)
						t0 = time.Now()
						next, done, err := init.Reconcile(reply)
						initTime += time.Since(t0)
						if err != nil {
							b.Fatal(err)
						}
						if done {
							break
						}
						msg = next
					}
					s.rounds = init.Rounds()
					if got := len(init.Have()) + len(init.Need()); got != want {
						b.Fatalf("found %d differences, want %d", got, want)
					}
				}
				total := s.bytesOut + s.bytesIn
				b.ReportMetric(float64(s.rounds), "rtt")
				b.ReportMetric(float64(s.bytesOut), "B-out")
				b.ReportMetric(float64(s.bytesIn), "B-in")
				b.ReportMetric(float64(total)/float64(32*want), "x32d")
				b.ReportMetric(float64(initTime.Microseconds())/float64(b.N), "µs-init")
				b.ReportMetric(float64(respTime.Microseconds())/float64(b.N), "µs-resp")
			})
		}
	}
}
