package metrics_test

import (
	"context"
	"fmt"
	"log"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scopemesh/scopemesh"
	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/metrics"
)

// A node's metrics on an application's own registry, gathered as a scrape
// of /metrics would (promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
// serves them).
func ExampleNewCollector() {
	ctx := context.Background()
	node, err := scopemesh.Open(ctx, scopemesh.Config{}) // in memory, of no cluster
	if err != nil {
		log.Fatal(err)
	}
	defer node.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.NewCollector(node))

	for range 3 {
		if _, err := node.Record(ctx, events.Event{Kind: "http.request"}); err != nil {
			log.Fatal(err)
		}
	}
	families, err := reg.Gather()
	if err != nil {
		log.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == "scopemesh_events_held" {
			fmt.Println(f.GetName(), f.GetMetric()[0].GetGauge().GetValue())
		}
	}
	// Output:
	// scopemesh_events_held 3
}
