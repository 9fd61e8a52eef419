package main

import (
	"container/heap"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"time"

	"github.com/scopemesh/scopemesh/bench/internal/report"
)

// The sim scenario models how a batch spreads through clusters far larger
// than one process holds, from the per-message costs the replicate
// scenario measures: announcements over a gossip mesh with each batch
// fetched once (what the nodes do), and, for comparison, batches pushed
// over the mesh as gossipsub does with IDONTWANT (what they did before).
// It is an event-driven model of links with a latency and a bandwidth,
// each node's uplink a queue, and a CPU cost per event merged; it counts
// every byte a node receives.

type simParams struct {
	Nodes         []int   `json:"nodes"`
	Rate          float64 `json:"rate"`           // events/s one writer offers
	EventBytes    float64 `json:"event_bytes"`    // an event in a compressed batch
	AnnounceBytes int     `json:"announce_bytes"` // one announcement on the wire
	FetchBytes    int     `json:"fetch_bytes"`    // a fetch's request, stream set-up and framing
	HeaderBytes   int     `json:"header_bytes"`   // a pushed batch's gossipsub framing
	IDBytes       int     `json:"id_bytes"`       // a message ID in gossip (IHAVE, IDONTWANT)
	LatencyMs     float64 `json:"latency_ms"`     // one way, every link
	UpMbps        float64 `json:"up_mbps"`        // every node's uplink
	DownMbps      float64 `json:"down_mbps"`      // every node's downlink
	MergeUs       float64 `json:"merge_us"`       // CPU to check and merge an event, per node
	Batches       int     `json:"batches"`        // batches simulated per size, from random origins
	Seed          uint64  `json:"seed"`
}

// simResult is one design at one cluster size.
type simResult struct {
	Design        string           `json:"design"`
	Nodes         int              `json:"nodes"`
	BatchEvents   int              `json:"batch_events"`
	BytesPerEvent float64          `json:"bytes_per_event"` // received, per node
	Ratio         float64          `json:"ratio"`           // over EventBytes
	MaxUpload     float64          `json:"max_upload"`      // the busiest node's upload per batch, in batches
	DownMbps      float64          `json:"down_mbps"`       // a node's downlink in use at the rate
	BusiestUpMbps float64          `json:"busiest_up_mbps"` // the busiest node's uplink in use at the rate
	Hops          float64          `json:"hops"`            // mean hops from the origin
	Latency       report.Latencies `json:"latency"`         // batch published to held, over (batch, node)
}

// gossipsub's mesh degrees: its defaults (pushed batches), and what the
// nodes use for announcements (peer/gossip.go).
var (
	pushMesh     = meshDegree{d: 6, lo: 5, hi: 12}
	announceMesh = meshDegree{d: 4, lo: 3, hi: 8}
)

const (
	dLazy       = 6                    // gossipsub's IHAVE targets per heartbeat
	batchLinger = 5 * time.Millisecond // as the nodes gather a batch
)

type meshDegree struct{ d, lo, hi int }

func runSim(_ context.Context, e *env, args []string) error {
	p := simParams{Nodes: []int{10, 30, 50, 100, 200, 500, 1000}, Rate: 10_000, EventBytes: 45,
		AnnounceBytes: 70, FetchBytes: 140, HeaderBytes: 70, IDBytes: 34,
		LatencyMs: 20, UpMbps: 10, DownMbps: 50, MergeUs: 5, Batches: 20, Seed: 1}
	fs := e.flags("sim")
	fs.Var((*ints)(&p.Nodes), "nodes", "cluster sizes, a comma-separated list (2 to 5,000)")
	fs.Float64Var(&p.Rate, "rate", p.Rate, "events/s one writer offers: batches hold what it records in 5 ms")
	fs.Float64Var(&p.EventBytes, "event-bytes", p.EventBytes, "an event's size in a compressed batch (bench replicate: batch B/event)")
	fs.IntVar(&p.AnnounceBytes, "announce-bytes", p.AnnounceBytes, "an announcement's size on the wire")
	fs.IntVar(&p.FetchBytes, "fetch-bytes", p.FetchBytes, "a fetch's bytes besides the batch")
	fs.Float64Var(&p.LatencyMs, "latency", p.LatencyMs, "one-way link latency, ms")
	fs.Float64Var(&p.UpMbps, "up", p.UpMbps, "each node's uplink, Mbit/s")
	fs.Float64Var(&p.DownMbps, "down", p.DownMbps, "each node's downlink, Mbit/s")
	fs.Float64Var(&p.MergeUs, "merge-us", p.MergeUs, "CPU per event a node checks and merges, µs")
	fs.IntVar(&p.Batches, "batches", p.Batches, "batches simulated per cluster size")
	fs.Uint64Var(&p.Seed, "seed", p.Seed, "seed of the meshes and origins")
	if err := e.parse(fs, args); err != nil {
		return err
	}
	for _, n := range p.Nodes {
		if n < 2 || n > 5000 {
			return fmt.Errorf("-nodes %d: want 2 to 5,000", n)
		}
	}
	run := report.New("sim", p)
	var results []simResult
	for _, n := range p.Nodes {
		for _, design := range []string{"push", "announce"} {
			results = append(results, simulate(p, n, design))
		}
	}
	printSim(p, results)
	return e.finish(run, results, nil)
}

func printSim(p simParams, rs []simResult) {
	t := report.Table{Title: fmt.Sprintf("one writer at %s events/s; links %.0f ms, %.0f/%.0f Mbit/s up/down; an event %.0f B in a batch",
		report.Float(p.Rate), p.LatencyMs, p.UpMbps, p.DownMbps, p.EventBytes), Header: []string{
		"nodes", "design", "events/batch", "B/event received", "× event", "down Mbit/s", "busiest up Mbit/s", "hops", "p50", "p99", "max"}}
	for _, r := range rs {
		up := report.Float(r.BusiestUpMbps)
		if r.BusiestUpMbps > p.UpMbps {
			up += " (over)"
		}
		t.Add(r.Nodes, r.Design, r.BatchEvents, r.BytesPerEvent, r.Ratio, r.DownMbps, up, r.Hops,
			ms(r.Latency.P50ms), ms(r.Latency.P99ms), ms(r.Latency.MaxMs))
	}
	t.Print(os.Stdout)
}

// simulate spreads p.Batches batches from random origins through a fresh
// mesh of n nodes.
func simulate(p simParams, n int, design string) simResult {
	rng := rand.New(rand.NewPCG(p.Seed, uint64(n)))
	degree := announceMesh
	if design == "push" {
		degree = pushMesh
	}
	mesh := newMesh(rng, n, degree)
	events := int(max(1, min(1024, p.Rate*batchLinger.Seconds())))
	body := int(float64(events) * p.EventBytes)
	s := &spread{p: p, mesh: mesh, body: body, push: design == "push",
		merge: time.Duration(float64(events) * p.MergeUs * float64(time.Microsecond))}
	var sample []time.Duration
	var received, hops float64
	maxUp := 0
	for range p.Batches {
		held, got, up, h := s.run(rng.IntN(n))
		for v, t := range held {
			if t != 0 {
				sample = append(sample, t)
			}
			received += float64(got[v])
		}
		maxUp = max(maxUp, slices.Max(up))
		hops += h
	}
	perEvent := received / float64(p.Batches*(n-1)*events)
	batchesPerSec := p.Rate / float64(events)
	return simResult{Design: design, Nodes: n, BatchEvents: events, BytesPerEvent: perEvent,
		Ratio: perEvent / p.EventBytes, MaxUpload: float64(maxUp) / float64(body),
		DownMbps: p.Rate * perEvent * 8 / 1e6, BusiestUpMbps: batchesPerSec * float64(maxUp) * 8 / 1e6,
		Hops: hops / float64(p.Batches), Latency: report.Summarise(sample)}
}

// newMesh links each node to random others until it has d mesh peers,
// none beyond hi, as gossipsub's grafting does from a full view.
func newMesh(rng *rand.Rand, n int, deg meshDegree) [][]int {
	mesh := make([][]int, n)
	for v := range n {
		for tries := 0; len(mesh[v]) < min(deg.d, n-1) && tries < 50*n; tries++ {
			w := rng.IntN(n)
			if w != v && len(mesh[w]) < deg.hi && !slices.Contains(mesh[v], w) {
				mesh[v], mesh[w] = append(mesh[v], w), append(mesh[w], v)
			}
		}
	}
	return mesh
}

// spread runs one batch through a mesh.
type spread struct {
	p     simParams
	mesh  [][]int
	body  int
	push  bool
	merge time.Duration

	queue    simQueue
	held     []time.Duration // when each node held the batch; 0 for the origin, and not yet
	has      []bool
	asking   []bool          // a fetch is under way
	from     []int           // whom each node had it from
	upFree   []time.Duration // when each node's uplink is next free
	received []int           // bytes each node received
	uploaded []int           // bytes each node sent
	hops     []int
}

// simEvent is a message arriving at node to from node from.
type simEvent struct {
	at       time.Duration
	to, from int
	kind     int // arrive: an announcement or pushed batch; fetched: a batch a fetch asked for; asked: a fetch request
}

const (
	arrive = iota
	asked
	fetched
)

func (s *spread) wire(bytes int, mbps float64) time.Duration {
	return time.Duration(float64(bytes*8) / (mbps * 1e6) * float64(time.Second))
}

// send queues bytes on from's uplink towards to, arriving after the link's
// latency and the slower of the two ends.
func (s *spread) send(at time.Duration, from, to, bytes, kind int) {
	start := max(at, s.upFree[from])
	s.upFree[from] = start + s.wire(bytes, s.p.UpMbps)
	s.uploaded[from] += bytes
	lat := time.Duration(s.p.LatencyMs * float64(time.Millisecond))
	heap.Push(&s.queue, simEvent{at: start + lat + s.wire(bytes, min(s.p.UpMbps, s.p.DownMbps)), to: to, from: from, kind: kind})
}

// run spreads a batch from origin, and returns when each node held it,
// the bytes each received and sent, and the mean hops from the origin.
func (s *spread) run(origin int) (held []time.Duration, received, uploaded []int, hops float64) {
	n := len(s.mesh)
	s.held, s.has, s.asking = make([]time.Duration, n), make([]bool, n), make([]bool, n)
	s.from, s.hops = make([]int, n), make([]int, n)
	s.upFree, s.received, s.uploaded = make([]time.Duration, n), make([]int, n), make([]int, n)
	s.queue = s.queue[:0]
	s.hold(0, origin, origin)
	if s.push {
		// Gossipsub floods its own messages to every peer in the topic.
		for w := range n {
			if w != origin {
				s.send(0, origin, w, s.body+s.p.HeaderBytes, arrive)
			}
		}
	}
	for s.queue.Len() > 0 {
		ev := heap.Pop(&s.queue).(simEvent)
		switch {
		case ev.kind == asked:
			s.send(ev.at, ev.to, ev.from, s.body, fetched)
		case ev.kind == fetched:
			s.received[ev.to] += s.body + s.p.FetchBytes
			s.hold(ev.at+s.merge, ev.to, ev.from)
		case s.push:
			s.received[ev.to] += s.body + s.p.HeaderBytes
			if !s.has[ev.to] {
				s.hold(ev.at+s.merge, ev.to, ev.from)
			}
		default:
			s.received[ev.to] += s.p.AnnounceBytes
			if s.asking[ev.to] || s.has[ev.to] {
				break
			}
			// The first announcement: fetch from its sender.
			s.asking[ev.to] = true
			s.send(ev.at, ev.to, ev.from, s.p.IDBytes, asked)
		}
	}
	total := 0
	for v := range n {
		// Each node advertises each message to dLazy peers outside its mesh.
		s.received[v] += min(dLazy, n-1-len(s.mesh[v])) * s.p.IDBytes
		total += s.hops[v]
		if !s.has[v] {
			s.held[v] = 0 // cut off: never reached
		}
	}
	return s.held, s.received, s.uploaded, float64(total) / float64(n-1)
}

// hold makes v hold the batch at t, had from from, and passes it on: an
// announcement, or the batch itself to each mesh peer that has not said
// it has it (IDONTWANT, which gossipsub sends for large messages).
func (s *spread) hold(t time.Duration, v, from int) {
	s.has[v], s.held[v], s.from[v] = true, t, from
	if v != from {
		s.hops[v] = s.hops[from] + 1
	}
	lat := time.Duration(s.p.LatencyMs * float64(time.Millisecond))
	for _, w := range s.mesh[v] {
		if w == from {
			continue
		}
		if !s.push {
			s.send(t, v, w, s.p.AnnounceBytes, arrive)
			continue
		}
		if s.has[w] && s.held[w]+lat <= max(t, s.upFree[v]) {
			continue // its IDONTWANT arrived
		}
		s.send(t, v, w, s.body+s.p.HeaderBytes, arrive)
	}
	if s.push && v != from {
		for _, w := range s.mesh[v] {
			s.received[w] += s.p.IDBytes // v's IDONTWANT
		}
	}
}

// simQueue orders events by time.
type simQueue []simEvent

func (q simQueue) Len() int           { return len(q) }
func (q simQueue) Less(i, j int) bool { return q[i].at < q[j].at }
func (q simQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *simQueue) Push(x any)        { *q = append(*q, x.(simEvent)) }
func (q *simQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}
