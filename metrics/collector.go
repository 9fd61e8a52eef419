package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scopemesh/scopemesh"
	"github.com/scopemesh/scopemesh/peer"
)

// Collector exports a node's counters to Prometheus. It reads them from
// Node.Status when scraped and keeps nothing between scrapes, so a node
// pays for its metrics only while someone scrapes them. It is safe for
// concurrent use.
type Collector struct {
	node *scopemesh.Node
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns a Collector of node's metrics, to register on a
// prometheus.Registry.
func NewCollector(node *scopemesh.Node) *Collector { return &Collector{node: node} }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("scopemesh_"+name, help, labels, nil)
}

// The metrics, by Prometheus's conventions: base units, _total for
// counters, and labels that take a handful of values each.
var (
	eventsHeld     = desc("events_held", "Events held in the node's replica.")
	eventsRecorded = desc("events_recorded_total", "Events this node recorded.")
	eventsReceived = desc("events_received_total", "Events from peers that were new here, by how they came: gossip or sync.", "via")
	eventsExpired  = desc("events_expired_total", "Events deleted below the retention horizon.")

	gossipBatches   = desc("gossip_batches_total", "Gossip batches this node published, or received valid from peers.", "direction")
	gossipPublished = desc("gossip_events_published_total", "Events in the gossip batches this node published.")
	gossipRejected  = desc("gossip_batches_rejected_total", "Gossip batches not merged, by reason: invalid (malformed or forged), clock_ahead (an event ran ahead of the clock; sync fetches it later) or not_sent (no peer that announced the batch sent it; sync fetches it later).", "reason")
	gossipServed    = desc("gossip_batches_served_total", "Announced batches this node sent to peers that fetched them.")
	gossipBytes     = desc("gossip_published_bytes_total", "Bytes of the batches this node published, encoded.")
	gossipDropped   = desc("gossip_dropped_total", "Gossip dropped for want of room: outbound RPCs to a peer with a full queue, inbound messages the merge fell behind on.", "direction")
	gossipGaps      = desc("gossip_publish_gaps_total", "Times the gossip publisher fell behind and read its events back from the store.")
	gossipErrors    = desc("gossip_publish_errors_total", "Gossip batches that could not be encoded or published.")

	syncSessions = desc("sync_sessions_total", "Sync sessions that ended, by role (initiator: this node started it) and result.", "role", "result")
	syncBytes    = desc("sync_bytes_total", "Bytes of sync sessions, by role and direction.", "role", "direction")
	syncEvents   = desc("sync_events_total", "Events sync sessions moved, by role and direction; received counts those new here.", "role", "direction")
	syncDuration = desc("sync_session_duration_seconds", "Durations of sync sessions, by role.", "role")

	queries       = desc("queries_total", "Cluster queries that ended, by side (served: answered for a peer; asked: of peers) and result.", "side", "result")
	queryDuration = desc("query_duration_seconds", "Durations of cluster queries, by side.", "side")

	members          = desc("members", "Cluster members this node knows of, by state: connected, reachable (through others), suspect, unreachable or left.", "state")
	clockSkewOrigins = desc("clock_skew_origins", "Origins whose events arrived with clocks ahead of the allowed offset within the last hour.")
	clockSkewAhead   = desc("clock_skew_ahead_seconds", "How far ahead of this node's clock the latest such event was, the most over those origins.")

	storeBytes       = desc("store_bytes", "Bytes the node's store takes, on disk or in memory.")
	storeReclaimable = desc("store_reclaimable_bytes", "Of the store's bytes, those deleted events hold until the store compacts them away.")
	horizon          = desc("retention_horizon_timestamp_seconds", "The retention horizon: the node holds no events from before it. 0 while it has let nothing expire.")
	uptime           = desc("uptime_seconds", "Time since the node started.")
)

// memberStates are the values of the members metric's state label: the
// states PeerInfo.State takes, every one of them on each scrape, and no
// other.
var memberStates = []peer.MemberState{peer.StateConnected, peer.StateReachable, peer.StateSuspect, peer.StateUnreachable, peer.StateLeft}

var allDescs = []*prometheus.Desc{
	eventsHeld, eventsRecorded, eventsReceived, eventsExpired,
	gossipBatches, gossipPublished, gossipRejected, gossipServed, gossipBytes, gossipDropped, gossipGaps, gossipErrors,
	syncSessions, syncBytes, syncEvents, syncDuration, queries, queryDuration,
	members, clockSkewOrigins, clockSkewAhead, storeBytes, storeReclaimable, horizon, uptime,
}

// Describe sends the descriptions of every metric.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

// Collect reads the node's status once and sends every metric.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	st := c.node.Status()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}

	g := st.Gossip
	gauge(eventsHeld, float64(st.Events))
	counter(eventsRecorded, g.EventsRecorded)
	counter(eventsReceived, g.EventsMerged, "gossip")
	counter(eventsReceived, st.SyncInitiated.EventsReceived+st.SyncServed.EventsReceived, "sync")
	counter(eventsExpired, st.Expired)

	counter(gossipBatches, g.BatchesPublished, "published")
	counter(gossipBatches, g.BatchesReceived, "received")
	counter(gossipPublished, g.EventsPublished)
	counter(gossipRejected, g.BatchesRejected, "invalid")
	counter(gossipRejected, g.BatchesHeld, "clock_ahead")
	counter(gossipRejected, g.FetchesFailed, "not_sent")
	counter(gossipServed, g.BatchesServed)
	counter(gossipBytes, g.BytesPublished)
	counter(gossipDropped, g.DroppedOutbound, "outbound")
	counter(gossipDropped, g.DroppedInbound, "inbound")
	counter(gossipGaps, g.PublishGaps)
	counter(gossipErrors, g.PublishErrors)

	for _, s := range []struct {
		role  string
		stats peer.SyncStats
	}{{"initiator", st.SyncInitiated}, {"responder", st.SyncServed}} {
		counter(syncSessions, s.stats.Sessions-s.stats.Failed, s.role, "ok")
		counter(syncSessions, s.stats.Failed, s.role, "error")
		counter(syncBytes, s.stats.BytesSent, s.role, "sent")
		counter(syncBytes, s.stats.BytesReceived, s.role, "received")
		counter(syncEvents, s.stats.EventsSent, s.role, "sent")
		counter(syncEvents, s.stats.EventsReceived, s.role, "received")
		ch <- histogram(syncDuration, s.stats.Durations, s.role)
	}
	for _, q := range []struct {
		side  string
		stats peer.QueryStats
	}{{"served", st.QueriesServed}, {"asked", st.QueriesAsked}} {
		counter(queries, q.stats.Queries-q.stats.Failed, q.side, "ok")
		counter(queries, q.stats.Failed, q.side, "error")
		ch <- histogram(queryDuration, q.stats.Latencies, q.side)
	}

	byState := make(map[peer.MemberState]int, len(memberStates))
	for _, p := range st.Peers {
		byState[p.State]++
	}
	for _, s := range memberStates {
		gauge(members, float64(byState[s]), string(s))
	}
	var ahead time.Duration
	for _, s := range st.ClockSkew {
		ahead = max(ahead, s.Ahead)
	}
	gauge(clockSkewOrigins, float64(len(st.ClockSkew)))
	gauge(clockSkewAhead, ahead.Seconds())

	gauge(storeBytes, float64(st.StoreBytes))
	gauge(storeReclaimable, float64(st.Reclaimable))
	var h float64
	if !st.Horizon.IsZero() {
		h = float64(st.Horizon.Wall) / 1e9
	}
	gauge(horizon, h)
	gauge(uptime, st.Uptime.Seconds())
}

// histogram converts a node's histogram of durations into Prometheus's,
// in seconds.
func histogram(d *prometheus.Desc, h peer.Histogram, labels ...string) prometheus.Metric {
	buckets := make(map[float64]uint64, len(h.Bounds))
	var cumulative uint64
	for i, b := range h.Bounds {
		cumulative += h.Counts[i]
		buckets[b.Seconds()] = cumulative
	}
	return prometheus.MustNewConstHistogram(d, h.Count(), h.Sum.Seconds(), buckets, labels...)
}
