package scopemesh

import (
	"context"
	"testing"

	"github.com/scopemesh/scopemesh/events"
)

// BenchmarkRecord records ~300-byte events on an in-memory and a Pebble
// node, from 1 and 8 concurrent callers. Run with
//
//	go test -run '^$' -bench Record -benchtime 100000x .
func BenchmarkRecord(b *testing.B) {
	for _, store := range []string{"memory", "pebble"} {
		for _, callers := range []int{1, 8} {
			b.Run(store+"/callers="+itoa(callers), func(b *testing.B) {
				cfg := Config{}
				if store == "pebble" {
					cfg.DataDir = b.TempDir()
				}
				n := open(b, isolated(b, cfg))
				ctx := events.ContextWithTrace(context.Background(), events.NewTraceID())
				e := events.Event{Kind: "http.request", Attrs: map[string]string{
					"method": "GET", "path": "/api/v1/items/4711", "status": "200", "user": "user-17",
				}, Payload: []byte(`{"bytes":52133,"cached":true}`)}
				b.SetParallelism(callers) // RunParallel starts callers × GOMAXPROCS goroutines
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if _, err := n.Record(ctx, e); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			})
		}
	}
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return "many"
}
