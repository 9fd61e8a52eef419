package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/scopemesh/scopemesh/bench/internal/cluster"
	"github.com/scopemesh/scopemesh/bench/internal/report"
	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/hlc"
)

type params struct {
	Rounds        int           `json:"rounds"`
	Nodes         int           `json:"nodes"`
	Workloads     []string      `json:"workloads"`
	Events        int           `json:"events"`         // replicate: one write at a time
	BatchedEvents int           `json:"batched_events"` // batched: as fast as the writer can
	Batch         int           `json:"batch"`          // go-ds-crdt keys per batch commit
	History       int           `json:"history"`        // heal: keys everyone holds before the split
	PerSide       int           `json:"per_side"`       // heal: keys written on each side while split
	Rebroadcast   time.Duration `json:"rebroadcast_ns"` // go-ds-crdt's RebroadcastInterval
	Timeout       time.Duration `json:"timeout_ns"`
}

// figure is one system's result on one workload in one round.
type figure struct {
	Workload     string  `json:"workload"`
	System       string  `json:"system"`
	Round        int     `json:"round"`
	Events       int     `json:"events"`  // events that had to reach every node
	Seconds      float64 `json:"seconds"` // writing to every node holding them; for heal, reconnect to convergence
	EventsPerSec float64 `json:"events_per_sec"`
	Bytes        int64   `json:"bytes"` // sent by every host during the measured span
	Err          string  `json:"err,omitempty"`
}

const (
	scopemesh = "scopemesh"
	dsCRDT    = "go-ds-crdt"
)

func main() {
	p := params{Rounds: 2, Nodes: 3, Events: 200, BatchedEvents: 20_000, Batch: 100,
		History: 1000, PerSide: 1000, Rebroadcast: 10 * time.Second, Timeout: 3 * time.Minute}
	workloads := "replicate,batched,heal"
	fs := flag.NewFlagSet("compare", flag.ExitOnError)
	fs.IntVar(&p.Rounds, "rounds", p.Rounds, "rounds; each runs every workload on both systems, the order alternating")
	fs.IntVar(&p.Nodes, "nodes", p.Nodes, "nodes of each cluster, in this process on loopback TCP")
	fs.StringVar(&workloads, "workloads", workloads, "replicate (one write at a time), batched (writes as fast as possible), heal")
	fs.IntVar(&p.Events, "events", p.Events, "replicate: events written by node 0, one at a time")
	fs.IntVar(&p.BatchedEvents, "batched-events", p.BatchedEvents, "batched: events written by node 0")
	fs.IntVar(&p.Batch, "batch", p.Batch, "batched: go-ds-crdt keys per batch commit (scopemesh batches by itself)")
	fs.IntVar(&p.History, "history", p.History, "heal: events every node holds before the split")
	fs.IntVar(&p.PerSide, "per-side", p.PerSide, "heal: events written on each side while split")
	fs.DurationVar(&p.Rebroadcast, "rebroadcast", p.Rebroadcast, "go-ds-crdt's RebroadcastInterval (its default is 1m)")
	fs.DurationVar(&p.Timeout, "timeout", p.Timeout, "longest wait for convergence, per run")
	out := fs.String("out", "../results", "directory the JSON results are written to")
	fs.Parse(os.Args[1:])
	p.Workloads = strings.Split(workloads, ",")

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	run := report.New("compare", p)
	var figs []figure
	for round := range p.Rounds {
		for _, w := range p.Workloads {
			// Alternate which system goes first, so neither always runs on
			// a machine the other has just warmed up or left busy.
			order := []string{scopemesh, dsCRDT}
			if round%2 == 1 {
				slices.Reverse(order)
			}
			for _, sys := range order {
				fmt.Fprintf(os.Stderr, "round %d, %s, %s\n", round+1, w, sys)
				f, err := runOne(ctx, p, w, sys)
				f.Workload, f.System, f.Round = w, sys, round+1
				if err != nil {
					f.Err = err.Error()
					fmt.Fprintf(os.Stderr, "  %v\n", err)
				}
				figs = append(figs, f)
				if ctx.Err() != nil {
					return
				}
			}
		}
	}
	ratios := summarise(figs, p.Workloads)
	run.Results = map[string]any{"runs": figs, "ratios": ratios}
	printFigures(figs, ratios, p)
	path, err := run.Write(*out)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("\nmachine: %s\nresults: %s\n", run.Machine, path)
}

func runOne(ctx context.Context, p params, workload, sys string) (figure, error) {
	switch workload + "/" + sys {
	case "replicate/" + scopemesh:
		return smReplicate(ctx, p, p.Events, 1)
	case "batched/" + scopemesh:
		return smReplicate(ctx, p, p.BatchedEvents, 4)
	case "heal/" + scopemesh:
		return smHeal(ctx, p)
	case "replicate/" + dsCRDT:
		return dsReplicate(ctx, p, p.Events, 1)
	case "batched/" + dsCRDT:
		return dsReplicate(ctx, p, p.BatchedEvents, p.Batch)
	case "heal/" + dsCRDT:
		return dsHeal(ctx, p)
	}
	return figure{}, fmt.Errorf("unknown workload %q", workload)
}

func smReplicate(ctx context.Context, p params, n, recorders int) (figure, error) {
	c, err := cluster.Start(ctx, cluster.Options{Nodes: p.Nodes, Name: fmt.Sprintf("compare-%d", time.Now().UnixNano())})
	if err != nil {
		return figure{}, err
	}
	defer c.Close()
	progress := report.Stderr("  delivered to every node", n)
	defer progress.Done()
	r, err := c.Replicate(ctx, cluster.ReplicateConfig{Events: n, Recorders: recorders, Timeout: p.Timeout, Progress: progress.Set})
	return figure{Events: n, Seconds: r.Seconds, EventsPerSec: r.EventsPerSec, Bytes: r.Traffic.Total()}, err
}

func smHeal(ctx context.Context, p params) (figure, error) {
	c, err := cluster.Start(ctx, cluster.Options{Nodes: p.Nodes, Name: fmt.Sprintf("compare-%d", time.Now().UnixNano())})
	if err != nil {
		return figure{}, err
	}
	defer c.Close()
	r, err := c.Heal(ctx, cluster.HealConfig{History: p.History, PerSide: p.PerSide, Timeout: p.Timeout})
	return figure{Events: 2 * p.PerSide, Seconds: r.Seconds, EventsPerSec: float64(2*p.PerSide) / r.Seconds, Bytes: r.Traffic.Total()}, err
}

// sealed returns n events like the ones scopemesh nodes record in the same
// workload, sealed, to be written to go-ds-crdt as values under their IDs.
func sealed(n, first int, node string) ([]events.Event, error) {
	out := make([]events.Event, n)
	w := cluster.NewWorkload(context.Background(), first+n)
	now := time.Now().UnixNano()
	for i := range out {
		ctx, e := w.Event(first + i)
		e.Node = node
		e.Correlation, _ = events.TraceFromContext(ctx)
		e.Time = hlc.Timestamp{Wall: now + int64(i)}
		var err error
		if out[i], err = events.Seal(e); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func dsReplicate(ctx context.Context, p params, n, batch int) (figure, error) {
	c, err := startDS(ctx, p.Nodes, p.Rebroadcast)
	if err != nil {
		return figure{}, err
	}
	defer c.close()
	evs, err := sealed(n, 0, c.nodes[0].host.ID().String())
	if err != nil {
		return figure{}, err
	}
	progress := report.Stderr("  delivered to every node", n)
	defer progress.Done()
	before := c.traffic()
	start := time.Now()
	werr := make(chan error, 1)
	go func() { werr <- c.put(ctx, 0, evs, batch) }()
	last, err := c.waitKeys(ctx, cluster.All(p.Nodes), n, p.Timeout, progress.Set)
	if err := <-werr; err != nil {
		return figure{}, err
	}
	f := figure{Events: n, Bytes: c.traffic().Sub(before).Total()}
	if err != nil {
		return f, err
	}
	f.Seconds = last.Sub(start).Seconds()
	f.EventsPerSec = float64(n) / f.Seconds
	return f, nil
}

func dsHeal(ctx context.Context, p params) (figure, error) {
	c, err := startDS(ctx, p.Nodes, p.Rebroadcast)
	if err != nil {
		return figure{}, err
	}
	defer c.close()
	a, b := cluster.Sides(p.Nodes)
	everyone := cluster.All(p.Nodes)
	history, err := sealed(p.History, 0, c.nodes[0].host.ID().String())
	if err != nil {
		return figure{}, err
	}
	if err := c.put(ctx, 0, history, 100); err != nil {
		return figure{}, err
	}
	if _, err := c.waitKeys(ctx, everyone, p.History, p.Timeout, nil); err != nil {
		return figure{}, fmt.Errorf("history: %w", err)
	}
	c.split(a, b)
	// Each side's nodes write in turn, one Put at a time, as scopemesh's
	// nodes Record.
	var wg sync.WaitGroup
	errs := make([]error, p.Nodes)
	for side, nodes := range [][]int{a, b} {
		for k, i := range nodes {
			share := p.PerSide / len(nodes)
			if k == 0 {
				share += p.PerSide % len(nodes)
			}
			evs, err := sealed(share, p.History+side*p.PerSide+k*share, c.nodes[i].host.ID().String())
			if err != nil {
				return figure{}, err
			}
			wg.Go(func() { errs[i] = c.put(ctx, i, evs, 1) })
		}
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return figure{}, err
		}
	}
	if _, err := c.waitKeys(ctx, everyone, p.History+p.PerSide, p.Timeout, nil); err != nil {
		return figure{}, fmt.Errorf("each side converging on its own: %w", err)
	}
	before := c.traffic()
	start := time.Now()
	if err := c.connect(ctx, a, b); err != nil {
		return figure{}, err
	}
	progress := report.Stderr("  healing, the slowest replica's keys", p.History+2*p.PerSide)
	defer progress.Done()
	last, err := c.waitKeys(ctx, everyone, p.History+2*p.PerSide, p.Timeout, progress.Set)
	f := figure{Events: 2 * p.PerSide, Bytes: c.traffic().Sub(before).Total()}
	if err != nil {
		return f, err
	}
	f.Seconds = last.Sub(start).Seconds()
	f.EventsPerSec = float64(2*p.PerSide) / f.Seconds
	return f, nil
}

// ratio is how scopemesh compares with go-ds-crdt on one workload: the
// median over rounds of each round's ratio.
type ratio struct {
	Workload   string  `json:"workload"`
	Speed      float64 `json:"speed"` // scopemesh events/s over go-ds-crdt's
	Bytes      float64 `json:"bytes"` // go-ds-crdt bytes over scopemesh's
	RoundsUsed int     `json:"rounds_used"`
}

func summarise(figs []figure, workloads []string) []ratio {
	var out []ratio
	for _, w := range workloads {
		var speed, bytes []float64
		for _, f := range figs {
			if f.Workload != w || f.System != scopemesh || f.Err != "" {
				continue
			}
			for _, g := range figs {
				if g.Workload == w && g.System == dsCRDT && g.Round == f.Round && g.Err == "" {
					speed = append(speed, f.EventsPerSec/g.EventsPerSec)
					bytes = append(bytes, float64(g.Bytes)/float64(f.Bytes))
				}
			}
		}
		out = append(out, ratio{Workload: w, Speed: report.Median(speed), Bytes: report.Median(bytes), RoundsUsed: len(speed)})
	}
	return out
}

func printFigures(figs []figure, ratios []ratio, p params) {
	t := report.Table{Title: fmt.Sprintf("side by side, %d loopback nodes each (go-ds-crdt rebroadcast interval %v)", p.Nodes, p.Rebroadcast),
		Header: []string{"workload", "round", "system", "events", "seconds", "events/s", "sent", "B/event", "error"}}
	for _, f := range figs {
		perEvent := "-"
		if f.Events > 0 && f.Bytes > 0 {
			perEvent = report.Float(float64(f.Bytes) / float64(f.Events))
		}
		t.Add(f.Workload, f.Round, f.System, f.Events, f.Seconds, f.EventsPerSec, report.Bytes(f.Bytes), perEvent, f.Err)
	}
	t.Print(os.Stdout)
	r := report.Table{Title: "ratios (median over rounds of each round's ratio)", Header: []string{"workload", "scopemesh faster by", "go-ds-crdt sends more by", "rounds"}}
	for _, x := range ratios {
		if x.RoundsUsed == 0 {
			r.Add(x.Workload, "-", "-", 0)
			continue
		}
		r.Add(x.Workload, report.Float(x.Speed)+"×", report.Float(x.Bytes)+"×", x.RoundsUsed)
	}
	r.Print(os.Stdout)
}
