package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/scopemesh/scopemesh/bench/internal/cluster"
	"github.com/scopemesh/scopemesh/bench/internal/report"
)

type replicateParams struct {
	Nodes         []int    `json:"nodes"`
	Events        int      `json:"events"`
	Writers       []string `json:"writers"`
	Recorders     int      `json:"recorders"`
	Rate          float64  `json:"rate"`
	LatencyEvents int      `json:"latency_events"`
	Store         string   `json:"store"`
}

func runReplicate(ctx context.Context, e *env, args []string) error {
	p := replicateParams{Nodes: []int{3}, Events: 200_000, Recorders: 4, Rate: 10_000, LatencyEvents: 30_000, Store: "memory"}
	writers := words{list: []string{"one", "all"}, allowed: []string{"one", "all"}}
	fs := e.flags("replicate")
	fs.Var((*ints)(&p.Nodes), "nodes", "cluster sizes, a comma-separated list (2 to 50)")
	fs.IntVar(&p.Events, "events", p.Events, "events recorded in each throughput run")
	fs.Var(&writers, "writers", "who records in throughput runs: one (node 0), all (every node), or both")
	fs.IntVar(&p.Recorders, "recorders", p.Recorders, "goroutines calling Record on each writing node")
	fs.Float64Var(&p.Rate, "rate", p.Rate, "events/s offered in the latency run; 0 skips it")
	fs.IntVar(&p.LatencyEvents, "latency-events", p.LatencyEvents, "events recorded in the latency run")
	fs.StringVar(&p.Store, "store", p.Store, "memory or pebble")
	timeout := fs.Duration("timeout", 2*time.Minute, "longest wait for every node to hold every event")
	if err := e.parse(fs, args); err != nil {
		return err
	}
	p.Writers = writers.list
	for _, n := range p.Nodes {
		if n < 2 || n > 50 {
			return fmt.Errorf("-nodes %d: want 2 to 50", n)
		}
	}

	run := report.New("replicate", p)
	var results []cluster.ReplicateResult
	for _, nodes := range p.Nodes {
		var cfgs []cluster.ReplicateConfig
		for _, w := range p.Writers {
			cfgs = append(cfgs, cluster.ReplicateConfig{Events: p.Events, AllWriters: w == "all", Recorders: p.Recorders})
		}
		if p.Rate > 0 {
			// One writer: the latency an event sees when it must cross the
			// network to every other node.
			cfgs = append(cfgs, cluster.ReplicateConfig{Events: p.LatencyEvents, Recorders: p.Recorders, Rate: p.Rate})
		}
		for _, cfg := range cfgs {
			cfg.Timeout = *timeout
			r, err := replicateOnce(ctx, nodes, p.Store, cfg)
			if err != nil {
				return fmt.Errorf("%d nodes: %w", nodes, err)
			}
			results = append(results, r)
		}
	}
	printReplicate(results)
	return e.finish(run, results, replicateTargets(results))
}

// replicateOnce starts a fresh cluster, so each run starts from empty sets.
func replicateOnce(ctx context.Context, nodes int, store string, cfg cluster.ReplicateConfig) (cluster.ReplicateResult, error) {
	opts := cluster.Options{Nodes: nodes, Name: fmt.Sprintf("bench-replicate-%d", time.Now().UnixNano())}
	if store == "pebble" {
		dir, err := os.MkdirTemp("", "scopemesh-bench-")
		if err != nil {
			return cluster.ReplicateResult{}, err
		}
		defer os.RemoveAll(dir)
		opts.Dir = dir
	}
	fmt.Fprintf(os.Stderr, "starting %d nodes\n", nodes)
	c, err := cluster.Start(ctx, opts)
	if err != nil {
		return cluster.ReplicateResult{}, err
	}
	defer c.Close()
	label := fmt.Sprintf("%d nodes, %s, delivered to every node", nodes, writersName(cfg))
	if cfg.Rate > 0 {
		label = fmt.Sprintf("%d nodes, %s events/s offered", nodes, report.Float(cfg.Rate))
	}
	progress := report.Stderr(label, cfg.Events)
	defer progress.Done()
	cfg.Progress = progress.Set
	return c.Replicate(ctx, cfg)
}

func writersName(cfg cluster.ReplicateConfig) string {
	if cfg.AllWriters {
		return "all writers"
	}
	return "one writer"
}

func printReplicate(rs []cluster.ReplicateResult) {
	t := report.Table{Title: "replication on loopback TCP", Header: []string{
		"nodes", "writers", "events", "offered/s", "record s", "to all s", "events/s", "CPU µs/event", "p50", "p99", "drops out/in", "by sync", "B/event", "batch B/event", "× batch"}}
	for _, r := range rs {
		offered, p50, p99 := "max", "-", "-"
		if r.Rate > 0 {
			offered, p50, p99 = report.Float(r.Rate), ms(r.Latency.P50ms), ms(r.Latency.P99ms)
		}
		t.Add(r.Nodes, r.Writers, r.Events, offered, r.RecordSecs, r.Seconds, r.EventsPerSec, r.CPUPerEvent, p50, p99,
			fmt.Sprintf("%d/%d", r.Gossip.DroppedOutbound, r.Gossip.DroppedInbound), r.BySync, r.BytesPerEvent,
			r.EventBytes, r.BytesPerEvent/r.EventBytes)
	}
	t.Print(os.Stdout)
}

// replicateTargets checks the replication figures the project promises:
// on 3 nodes ≥ 200,000 events/s delivered to every node, one writer and
// all writers, and p99 record-to-visible ≤ 50 ms at 10,000 events/s
// offered; on 10 nodes and more, what each node receives of an event
// within 1.5 × its size in a compressed batch, and the same p99.
func replicateTargets(rs []cluster.ReplicateResult) []target {
	var ts []target
	for _, r := range rs {
		n := fmt.Sprintf("%d nodes", r.Nodes)
		if r.Nodes >= 10 && r.EventBytes > 0 {
			ts = append(ts, atMost("bytes received per event, "+n+", × its size in a batch", r.BytesPerEvent/r.EventBytes, 1.5, "×"))
		}
		switch {
		case r.Rate == 10_000 && (r.Nodes == 3 || r.Nodes >= 10):
			ts = append(ts, atMost("p99 record-to-visible at 10k events/s, "+n, r.Latency.P99ms, 50, "ms"))
		case r.Nodes != 3:
		case r.Rate == 0 && r.Writers == 1:
			ts = append(ts, atLeast("replication, 3 nodes, one writer", r.EventsPerSec, 200_000, "events/s"))
		case r.Rate == 0:
			ts = append(ts, atLeast("replication, 3 nodes, all writers", r.EventsPerSec, 200_000, "events/s"))
		}
	}
	return ts
}
