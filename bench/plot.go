package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/scopemesh/scopemesh/bench/internal/cluster"
	"github.com/scopemesh/scopemesh/bench/internal/report"
)

// A chart is drawn from the runs of one scenario; it reports false when
// the results hold nothing for it.
type chart struct {
	file     string
	scenario string
	draw     func(runs []report.Saved) (*plot.Plot, bool, error)
}

var charts = []chart{
	{"replicate-throughput.png", "replicate", drawThroughput},
	{"replicate-bytes.png", "replicate", drawReplicateBytes},
	{"sim-bytes.png", "sim", drawSimBytes},
	{"heal-bytes.png", "heal", drawHealBytes},
	{"reconcile-bytes.png", "reconcile", drawReconcileBytes},
	{"retain-bytes.png", "retain", drawRetainBytes},
	{"members-spread.png", "members", drawMembersSpread},
}

func runPlot(ctx context.Context, e *env, args []string) error {
	fs := e.flags("plot")
	dir := fs.String("charts", "bench/charts", "directory the PNG charts are written to")
	if err := e.parse(fs, args); err != nil {
		return err
	}
	runs, err := report.Load(e.out)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return err
	}
	drawn := 0
	for _, c := range charts {
		var mine []report.Saved
		for _, r := range runs {
			if r.Scenario == c.scenario {
				mine = append(mine, r)
			}
		}
		p, ok, err := c.draw(mine)
		if err != nil {
			return fmt.Errorf("%s: %w", c.file, err)
		}
		if !ok {
			fmt.Printf("%s: no %s results in %s\n", c.file, c.scenario, e.out)
			continue
		}
		path := filepath.Join(*dir, c.file)
		if err := p.Save(16*vg.Centimeter, 10*vg.Centimeter, path); err != nil {
			return err
		}
		fmt.Printf("%s\n", path)
		drawn++
	}
	if drawn == 0 {
		return fmt.Errorf("nothing to draw: run some scenarios first")
	}
	return nil
}

// runsOf decodes the "runs" of each saved result, newest run last.
func runsOf[T any](saved []report.Saved) ([][]T, []report.Saved, error) {
	var out [][]T
	var from []report.Saved
	for _, s := range saved {
		var body struct{ Runs []T }
		if err := json.Unmarshal(s.Results, &body); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", s.Path, err)
		}
		if len(body.Runs) > 0 {
			out = append(out, body.Runs)
			from = append(from, s)
		}
	}
	return out, from, nil
}

func newPlot(title, x, y string, from report.Saved) *plot.Plot {
	p := plot.New()
	p.Title.Text = title + "\n" + from.Machine.CPU + fmt.Sprintf(", %d cores, %s", from.Machine.Cores, from.Started.Format("2006-01-02"))
	p.X.Label.Text = x
	p.Y.Label.Text = y
	p.Legend.Top = true
	p.Add(plotter.NewGrid())
	return p
}

// drawThroughput plots events/s delivered to every node against the number
// of nodes, one line per writer mode, from the newest run that measured
// more than one cluster size (or the newest run, if none did).
func drawThroughput(saved []report.Saved) (*plot.Plot, bool, error) {
	all, from, err := runsOf[cluster.ReplicateResult](saved)
	if err != nil || len(all) == 0 {
		return nil, false, err
	}
	pick := newestMultiSize(all)
	// Every node stores every event, and all of them share this process's
	// CPUs: the stores per second of the whole cluster show what the
	// machine spent.
	one, many, stored := plotter.XYs{}, plotter.XYs{}, plotter.XYs{}
	for _, r := range all[pick] {
		if r.Rate > 0 {
			continue
		}
		pt := plotter.XY{X: float64(r.Nodes), Y: r.EventsPerSec}
		if r.Writers == 1 {
			one = append(one, pt)
			stored = append(stored, plotter.XY{X: pt.X, Y: r.EventsPerSec * float64(r.Nodes)})
		} else {
			many = append(many, pt)
		}
	}
	if len(one)+len(many) == 0 {
		return nil, false, nil
	}
	p := newPlot("replication: events/s delivered to every node", "nodes (loopback TCP, all in one process)", "events/s", from[pick])
	var lines []any
	if len(one) > 0 {
		lines = append(lines, "one writer", one)
	}
	if len(many) > 0 {
		lines = append(lines, "all writers", many)
	}
	if len(stored) > 0 {
		lines = append(lines, "one writer: events stored/s, all nodes together", stored)
	}
	err = plotutil.AddLinePoints(p, lines...)
	p.Y.Min = 0
	headroom(p, 1.3)
	return p, true, err
}

// drawReplicateBytes plots the bytes each node received per event against
// the number of nodes, unpaced and paced, with an event's size in a batch,
// from the newest run that measured more than one cluster size.
func drawReplicateBytes(saved []report.Saved) (*plot.Plot, bool, error) {
	all, from, err := runsOf[cluster.ReplicateResult](saved)
	if err != nil || len(all) == 0 {
		return nil, false, err
	}
	pick := newestMultiSize(all)
	unpaced, paced, floor := plotter.XYs{}, plotter.XYs{}, plotter.XYs{}
	for _, r := range all[pick] {
		if r.Writers != 1 || r.EventBytes == 0 {
			continue
		}
		pt := plotter.XY{X: float64(r.Nodes), Y: r.BytesPerEvent}
		if r.Rate > 0 {
			paced = append(paced, pt)
		} else {
			unpaced = append(unpaced, pt)
			floor = append(floor, plotter.XY{X: pt.X, Y: r.EventBytes})
		}
	}
	if len(unpaced)+len(paced) == 0 {
		return nil, false, nil
	}
	p := newPlot("bytes each node received per event", "nodes (loopback TCP, all in one process)", "bytes", from[pick])
	var lines []any
	if len(unpaced) > 0 {
		lines = append(lines, "one writer, as fast as it can", unpaced, "an event in a compressed batch", floor)
	}
	if len(paced) > 0 {
		lines = append(lines, "one writer, paced (smaller batches)", paced)
	}
	err = plotutil.AddLinePoints(p, lines...)
	p.Y.Min = 0
	headroom(p, 1.5)
	return p, true, err
}

// drawSimBytes plots the model's bytes received per event per node against
// the number of nodes, batches announced and pushed, from the newest run.
func drawSimBytes(saved []report.Saved) (*plot.Plot, bool, error) {
	all, from, err := runsOf[simResult](saved)
	if err != nil || len(all) == 0 {
		return nil, false, err
	}
	last := len(all) - 1
	lines := map[string]plotter.XYs{}
	for _, r := range all[last] {
		lines[r.Design] = append(lines[r.Design], plotter.XY{X: float64(r.Nodes), Y: r.BytesPerEvent})
	}
	p := newPlot("model: bytes each node receives per event", "nodes", "bytes", from[last])
	p.X.Scale, p.X.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
	err = plotutil.AddLinePoints(p, "batches announced, each fetched once (now)", lines["announce"],
		"batches pushed over the mesh (before)", lines["push"])
	p.Y.Min = 0
	headroom(p, 1.3)
	return p, true, err
}

// newestMultiSize returns the index of the newest run that measured more
// than one cluster size, or of the newest run if none did.
func newestMultiSize(all [][]cluster.ReplicateResult) int {
	for i := len(all) - 1; i >= 0; i-- {
		if sizes(all[i]) > 1 {
			return i
		}
	}
	return len(all) - 1
}

func sizes(rs []cluster.ReplicateResult) int {
	var n []int
	for _, r := range rs {
		if !slices.Contains(n, r.Nodes) {
			n = append(n, r.Nodes)
		}
	}
	return len(n)
}

// drawHealBytes plots the bytes a heal sent against the events written on
// each side, for scopemesh, the full-state baseline and the lower bound,
// from the newest run with the most sizes.
func drawHealBytes(saved []report.Saved) (*plot.Plot, bool, error) {
	all, from, err := runsOf[cluster.HealResult](saved)
	if err != nil || len(all) == 0 {
		return nil, false, err
	}
	pick := len(all) - 1
	for i := range all {
		if len(all[i]) >= len(all[pick]) {
			pick = i
		}
	}
	rs := all[pick]
	slices.SortFunc(rs, func(a, b cluster.HealResult) int { return a.PerSide - b.PerSide })
	var ours, full, floor plotter.XYs
	for _, r := range rs {
		x := float64(r.PerSide)
		ours = append(ours, plotter.XY{X: x, Y: mib(r.Traffic.Total())})
		floor = append(floor, plotter.XY{X: x, Y: mib(r.MissingBytes)})
		if r.FullState != nil {
			full = append(full, plotter.XY{X: x, Y: mib(r.FullState.Traffic.Total())})
		}
	}
	r0 := rs[0]
	p := newPlot(fmt.Sprintf("heal: bytes sent, %d nodes split %d|%d, %s events of history", r0.Nodes, r0.SideA, r0.SideB,
		report.Int(int64(r0.History))), "events written on each side while split", "MiB sent by all nodes", from[pick])
	p.X.Scale, p.X.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
	p.Y.Scale, p.Y.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
	lines := []any{"scopemesh (reconciliation)", ours}
	if len(full) > 0 {
		lines = append(lines, "full-state exchange", full)
	}
	lines = append(lines, "missing events, encoded (lower bound)", floor)
	err = plotutil.AddLinePoints(p, lines...)
	headroom(p, 10)
	return p, true, err
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// drawReconcileBytes plots the reconciler's bytes over 32·d against d, for
// each layout, from the newest run's largest n.
func drawReconcileBytes(saved []report.Saved) (*plot.Plot, bool, error) {
	all, from, err := runsOf[reconcileResult](saved)
	if err != nil || len(all) == 0 {
		return nil, false, err
	}
	rs := all[len(all)-1]
	n := 0
	for _, r := range rs {
		n = max(n, r.N)
	}
	byLayout := map[string]plotter.XYs{}
	for _, r := range rs {
		if r.N == n && r.Err == "" {
			byLayout[r.Layout] = append(byLayout[r.Layout], plotter.XY{X: float64(r.D), Y: r.PerID})
		}
	}
	p := newPlot(fmt.Sprintf("reconciler: bytes over 32 B × differing IDs, n = %s a side", report.Int(int64(n))),
		"differing events d", "bytes / (32 · d)", from[len(from)-1])
	p.X.Scale, p.X.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
	p.Y.Scale, p.Y.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
	var lines []any
	for _, l := range []string{"clustered", "scattered"} {
		if pts := byLayout[l]; len(pts) > 0 {
			slices.SortFunc(pts, func(a, b plotter.XY) int { return int(a.X - b.X) })
			lines = append(lines, l, pts)
		}
	}
	err = plotutil.AddLinePoints(p, lines...)
	headroom(p, 6)
	return p, len(lines) > 0, err
}

// headroom raises the top of the y axis by a factor, so the legend, drawn
// at the top, clears the lines.
func headroom(p *plot.Plot, factor float64) {
	p.Y.Max *= factor
}

// drawRetainBytes plots the store's size against simulated time, with
// retention and without, from the newest run's first round.
func drawRetainBytes(saved []report.Saved) (*plot.Plot, bool, error) {
	all, from, err := runsOf[retainResult](saved)
	if err != nil || len(all) == 0 {
		return nil, false, err
	}
	var lines []any
	for _, r := range all[len(all)-1] {
		if r.Round != 0 {
			continue
		}
		var pts plotter.XYs
		for _, s := range r.Samples {
			pts = append(pts, plotter.XY{X: s.Hours, Y: mib(s.StoreBytes)})
		}
		name := "without retention"
		if r.Mode == "retain" {
			name = "with retention"
		}
		lines = append(lines, name, pts)
	}
	var params retainParams
	if err := json.Unmarshal(from[len(from)-1].Params, &params); err != nil {
		return nil, false, err
	}
	p := newPlot(fmt.Sprintf("retention: Pebble store size, %s events over %v, retention %v", report.Int(int64(params.Events)), params.Span, params.Retention),
		"simulated hours", "MiB on disk", from[len(from)-1])
	err = plotutil.AddLines(p, lines...)
	p.Y.Min = 0
	headroom(p, 1.3)
	return p, len(lines) > 0, err
}

// drawMembersSpread plots how long a new member takes to be in every
// member's view, against the cluster's size, from the run with the most
// sizes.
func drawMembersSpread(saved []report.Saved) (*plot.Plot, bool, error) {
	all, from, err := runsOf[membersResult](saved)
	if err != nil || len(all) == 0 {
		return nil, false, err
	}
	best := len(all) - 1
	for i, rs := range all {
		if len(rs) > len(all[best]) {
			best = i
		}
	}
	var median, slowest plotter.XYs
	for _, r := range all[best] {
		if len(r.Spread) == 0 {
			continue
		}
		median = append(median, plotter.XY{X: float64(r.Nodes), Y: 1000 * r.SpreadMedian})
		slowest = append(slowest, plotter.XY{X: float64(r.Nodes), Y: 1000 * slices.Max(r.Spread)})
	}
	p := newPlot("a new member in every view: from its Join, on loopback TCP", "members", "ms", from[best])
	err = plotutil.AddLinePoints(p, "median", median, "slowest", slowest)
	p.Y.Min = 0
	headroom(p, 1.3)
	return p, len(median) > 0, err
}
