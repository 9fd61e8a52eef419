package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/scopemesh/scopemesh/bench/internal/cluster"
	"github.com/scopemesh/scopemesh/bench/internal/report"
)

type healParams struct {
	Nodes     int   `json:"nodes"`
	PerSide   []int `json:"per_side"`
	History   int   `json:"history"`
	FullState bool  `json:"full_state"`
}

func runHeal(ctx context.Context, e *env, args []string) error {
	p := healParams{Nodes: 3, PerSide: []int{10_000}, History: 10_000, FullState: true}
	fs := e.flags("heal")
	fs.IntVar(&p.Nodes, "nodes", p.Nodes, "nodes, split into the first half (rounded down) and the rest")
	fs.Var((*ints)(&p.PerSide), "per-side", "events each side records while split, a comma-separated list")
	fs.IntVar(&p.History, "history", p.History, "events every node holds before the split")
	fs.BoolVar(&p.FullState, "full-state", p.FullState, "also heal the same split by full-state exchange, the naive baseline")
	timeout := fs.Duration("timeout", 2*time.Minute, "longest wait for convergence")
	if err := e.parse(fs, args); err != nil {
		return err
	}
	if p.Nodes < 2 || p.Nodes > 50 {
		return fmt.Errorf("-nodes %d: want 2 to 50", p.Nodes)
	}

	run := report.New("heal", p)
	var results []cluster.HealResult
	for _, d := range p.PerSide {
		fmt.Fprintf(os.Stderr, "starting %d nodes\n", p.Nodes)
		c, err := cluster.Start(ctx, cluster.Options{Nodes: p.Nodes, Name: fmt.Sprintf("bench-heal-%d", time.Now().UnixNano())})
		if err != nil {
			return err
		}
		r, err := c.Heal(ctx, cluster.HealConfig{
			History: p.History, PerSide: d, FullState: p.FullState, Timeout: *timeout,
			Progress: func(step string) { fmt.Fprintf(os.Stderr, "  %s\n", step) },
		})
		c.Close()
		if err != nil {
			return fmt.Errorf("%d events a side: %w", d, err)
		}
		results = append(results, r)
	}
	printHeal(results)
	return e.finish(run, results, healTargets(results))
}

func printHeal(rs []cluster.HealResult) {
	t := report.Table{Title: "partition heal on loopback TCP", Header: []string{
		"nodes", "split", "history", "per side", "converged", "sent", "of it sync", "missing", "× missing", "rounds",
		"full-state sent", "× missing", "full-state time", "saved"}}
	for _, r := range rs {
		fsBytes, fsRatio, fsTime, saved := "-", "-", "-", "-"
		if b := r.FullState; b != nil {
			fsBytes, fsRatio, fsTime = report.Bytes(b.Traffic.Total()), report.Float(b.Ratio), report.Duration(secs(b.Seconds))
			saved = report.Float(float64(b.Traffic.Total())/float64(r.Traffic.Total())) + "×"
		}
		t.Add(r.Nodes, fmt.Sprintf("%d|%d", r.SideA, r.SideB), r.History, r.PerSide, secs(r.Seconds),
			report.Bytes(r.Traffic.Total()), report.Bytes(r.Traffic.Sync), report.Bytes(r.MissingBytes), r.Ratio, r.Rounds,
			fsBytes, fsRatio, fsTime, saved)
	}
	t.Print(os.Stdout)

	p := report.Table{Title: "where the bytes went: sync traffic by pair, and the reconciliation alone", Header: []string{
		"per side", "pair", "A→B", "B→A", "reconcile rounds", "reconcile bytes", "32 B × differing IDs"}}
	for _, r := range rs {
		rec := r.Reconcile
		for _, x := range r.Pairs {
			p.Add(r.PerSide, fmt.Sprintf("%d–%d", x.A, x.B), report.Bytes(x.AToB), report.Bytes(x.BToA),
				rec.Rounds, report.Bytes(rec.BytesOut+rec.BytesIn), report.Bytes(int64(32*(rec.Have+rec.Need))))
		}
	}
	p.Print(os.Stdout)
}

// healTargets checks issue 5's end-to-end figures: 3 nodes, 10,000 events
// on each side, convergence ≤ 2 s after reconnecting, ≤ 1.3 × the encoded
// size of the missing events on the wire.
func healTargets(rs []cluster.HealResult) []target {
	var ts []target
	for _, r := range rs {
		if r.Nodes != 3 || r.PerSide != 10_000 {
			continue
		}
		ts = append(ts,
			atMost("heal 10k+10k on 3 nodes: time to converge", r.Seconds, 2, "s"),
			atMost("heal 10k+10k on 3 nodes: bytes / missing events' size", r.Ratio, 1.3, "×"))
	}
	return ts
}

func secs(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
