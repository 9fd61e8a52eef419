package metrics_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/scopemesh/scopemesh"
	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/internal/poll"
	"github.com/scopemesh/scopemesh/internal/testcluster"
	"github.com/scopemesh/scopemesh/metrics"
	"github.com/scopemesh/scopemesh/query"
)

// scraper scrapes a node's /metrics as Prometheus would, over HTTP, and
// parses the text with Prometheus's own parser.
type scraper struct {
	t   *testing.T
	url string
}

func serve(t *testing.T, node *scopemesh.Node) scraper {
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.NewCollector(node))
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(srv.Close)
	return scraper{t: t, url: srv.URL + "/metrics"}
}

func (s scraper) scrape() map[string]*dto.MetricFamily {
	s.t.Helper()
	resp, err := http.Get(s.url)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		s.t.Fatalf("GET /metrics: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		s.t.Fatalf("parsing /metrics: %v", err)
	}
	return families
}

// value returns the value of the metric name whose labels are all of
// labels ("k=v"), or fails the test if there is none: a counter's or
// gauge's value, a histogram's count.
func (s scraper) value(families map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	s.t.Helper()
	f, ok := families[name]
	if !ok {
		s.t.Fatalf("no metric %s", name)
	}
	for _, m := range f.GetMetric() {
		have := map[string]bool{}
		for _, l := range m.GetLabel() {
			have[l.GetName()+"="+l.GetValue()] = true
		}
		match := true
		for _, l := range labels {
			match = match && have[l]
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	s.t.Fatalf("no metric %s{%s}", name, strings.Join(labels, ","))
	return 0
}

// until polls the scrape until cond holds of it.
func (s scraper) until(what string, cond func(map[string]*dto.MetricFamily) bool) {
	s.t.Helper()
	poll.Until(s.t, 10*time.Second, what, func() bool { return cond(s.scrape()) })
}

func record(t *testing.T, node *scopemesh.Node, kind string, n int) {
	t.Helper()
	for i := range n {
		if _, err := node.Record(context.Background(), events.Event{Kind: kind, Attrs: map[string]string{"i": fmt.Sprint(i)}}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestScrapedMetricsMoveAsEventsAreRecordedAndReplicated(t *testing.T) {
	nodes := testcluster.Start(t, 3)
	a, b := nodes[0], nodes[1]
	s := serve(t, a)

	first := s.scrape()
	if got := s.value(first, "scopemesh_members", "state=connected"); got != 2 {
		t.Fatalf("scopemesh_members{state=connected} = %v, want 2", got)
	}
	recorded0 := s.value(first, "scopemesh_events_recorded_total")

	record(t, a, "here", 50)
	s.until("a's 50 events to be counted as recorded and held", func(m map[string]*dto.MetricFamily) bool {
		return s.value(m, "scopemesh_events_recorded_total") == recorded0+50 && s.value(m, "scopemesh_events_held") >= 50
	})
	s.until("a's gossip batches to be counted as published", func(m map[string]*dto.MetricFamily) bool {
		return s.value(m, "scopemesh_gossip_batches_total", "direction=published") > 0 &&
			s.value(m, "scopemesh_gossip_events_published_total") >= 50
	})

	record(t, b, "there", 40)
	s.until("b's 40 events to reach a by gossip", func(m map[string]*dto.MetricFamily) bool {
		return s.value(m, "scopemesh_events_held") == 90 &&
			s.value(m, "scopemesh_events_received_total", "via=gossip")+s.value(m, "scopemesh_events_received_total", "via=sync") >= 40
	})

	before := s.scrape()
	if _, err := a.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	after := s.scrape()
	for _, m := range []struct {
		name   string
		labels []string
	}{
		{"scopemesh_sync_sessions_total", []string{"role=initiator", "result=ok"}},
		{"scopemesh_sync_session_duration_seconds", []string{"role=initiator"}},
	} {
		if got, was := s.value(after, m.name, m.labels...), s.value(before, m.name, m.labels...); got < was+2 {
			t.Errorf("%s%v: %v after syncing with 2 peers, %v before", m.name, m.labels, got, was)
		}
	}
	if s.value(after, "scopemesh_sync_bytes_total", "role=initiator", "direction=sent") <= s.value(before, "scopemesh_sync_bytes_total", "role=initiator", "direction=sent") {
		t.Error("sync bytes sent did not grow with two sessions")
	}

	asked := s.value(after, "scopemesh_queries_total", "side=asked", "result=ok")
	if _, err := a.QueryCluster(context.Background(), query.Filter{Kinds: []string{"there"}}); err != nil {
		t.Fatal(err)
	}
	end := s.scrape()
	if got := s.value(end, "scopemesh_queries_total", "side=asked", "result=ok"); got != asked+1 {
		t.Errorf("scopemesh_queries_total{side=asked,result=ok} = %v after one cluster query, %v before", got, asked)
	}
	if got := s.value(end, "scopemesh_query_duration_seconds", "side=asked"); got != asked+1 {
		t.Errorf("scopemesh_query_duration_seconds{side=asked} counted %v queries, want %v", got, asked+1)
	}
	served := serve(t, b)
	served.until("b to count the query it answered", func(m map[string]*dto.MetricFamily) bool {
		return served.value(m, "scopemesh_queries_total", "side=served", "result=ok") >= 1
	})

	// A member that closes says goodbye: a counts it as left.
	if err := nodes[2].Close(); err != nil {
		t.Fatal(err)
	}
	s.until("a to count the closed member as left", func(m map[string]*dto.MetricFamily) bool {
		return s.value(m, "scopemesh_members", "state=left") == 1 && s.value(m, "scopemesh_members", "state=connected") == 1
	})
	var states []string
	for _, m := range s.scrape()["scopemesh_members"].GetMetric() {
		for _, l := range m.GetLabel() {
			states = append(states, l.GetName()+"="+l.GetValue())
		}
	}
	slices.Sort(states)
	if want := []string{"state=connected", "state=left", "state=reachable", "state=suspect", "state=unreachable"}; !slices.Equal(states, want) {
		t.Errorf("scopemesh_members series %q, want one per state: %q", states, want)
	}
}

func TestMetricsFollowPrometheusConventions(t *testing.T) {
	nodes := testcluster.Start(t, 2)
	problems, err := testutil.CollectAndLint(metrics.NewCollector(nodes[0]))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

// TestGrafanaDashboardNamesExportedMetrics keeps examples/grafana from
// rotting: every scopemesh_ metric its queries name is one the collector
// exports (a histogram's by its _bucket series).
func TestGrafanaDashboardNamesExportedMetrics(t *testing.T) {
	dashboard, err := os.ReadFile("../examples/grafana/scopemesh.json")
	if err != nil {
		t.Fatal(err)
	}
	var parsed map[string]any
	if err := json.Unmarshal(dashboard, &parsed); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}
	nodes := testcluster.Start(t, 1)
	families := serve(t, nodes[0]).scrape()
	named := regexp.MustCompile(`scopemesh_[a-z_]+`).FindAllString(string(dashboard), -1)
	if len(named) < 10 {
		t.Fatalf("the dashboard names only %d metrics: %q", len(named), named)
	}
	for _, name := range named {
		base := name
		if b, ok := strings.CutSuffix(name, "_bucket"); ok && families[b].GetType() == dto.MetricType_HISTOGRAM {
			base = b
		}
		if _, ok := families[base]; !ok {
			t.Errorf("the dashboard names %s, which the collector does not export", name)
		}
	}
}

// BenchmarkScrape times one scrape of a node with two members: Status
// read, metrics gathered and encoded as /metrics serves them. At
// Prometheus's default interval of 15 s, a scrape of t µs costs the node
// t/15e6 of a core.
func BenchmarkScrape(b *testing.B) {
	nodes := testcluster.Start(b, 3)
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.NewCollector(nodes[0]))
	for b.Loop() {
		families, err := reg.Gather()
		if err != nil {
			b.Fatal(err)
		}
		enc := expfmt.NewEncoder(io.Discard, expfmt.NewFormat(expfmt.TypeTextPlain))
		for _, f := range families {
			if err := enc.Encode(f); err != nil {
				b.Fatal(err)
			}
		}
	}
}
