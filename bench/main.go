package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"runtime/trace"
	"sort"
	"strconv"
	"strings"

	"github.com/scopemesh/scopemesh/bench/internal/report"
)

// A scenario parses its own flags and runs.
type scenario struct {
	summary string
	run     func(ctx context.Context, env *env, args []string) error
}

var scenarios = map[string]scenario{
	"record":    {"Record on one node: in memory and Pebble, 1 and N concurrent callers", runRecord},
	"replicate": {"P loopback nodes: throughput to every node, record-to-visible latency, gossip drops", runReplicate},
	"members":   {"a cluster whose members each join one earlier at random: view convergence, idle bytes per member", runMembers},
	"heal":      {"split P nodes in two, write on both sides, heal: time, bytes vs the missing events, rounds", runHeal},
	"reconcile": {"the reconciler alone, n up to 10,000,000, chosen d, clustered and scattered", runReconcile},
	"retain":    {"recording on Pebble with retention as simulated days pass: store size, throughput, expiry cost", runRetain},
	"query":     {"trace and filter queries at n up to 1,000,000, on one node and across a cluster", runQuery},
	"sim":       {"a model of 10 to 1,000 nodes from measured costs: bytes per event per node, latency, batches announced or pushed", runSim},
	"plot":      {"render the JSON results as PNG charts", runPlot},
}

// env holds what every scenario shares: where results go.
type env struct {
	out        string // results directory
	cpuprofile string // where to write a CPU profile of the run, if anywhere
	trace      string // where to write an execution trace of the run, if anywhere

	stopProfile func() // stops the CPU profile and the trace, if started
}

func main() {
	if len(os.Args) < 2 || scenarios[os.Args[1]].run == nil {
		usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	e := &env{out: "bench/results", stopProfile: func() {}}
	err := scenarios[os.Args[1]].run(ctx, e, os.Args[2:])
	e.stopProfile()
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintf(os.Stderr, "usage: go run ./bench <scenario> [flags]   (go run ./bench <scenario> -h for its flags)\n\n")
	names := make([]string, 0, len(scenarios))
	for n := range scenarios {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-10s %s\n", n, scenarios[n].summary)
	}
}

// flags returns a flag set for a scenario, with the flags all share.
func (e *env) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ExitOnError)
	fs.StringVar(&e.out, "out", e.out, "directory the JSON results are written to")
	fs.StringVar(&e.cpuprofile, "cpuprofile", "", "write a CPU profile of the whole run to this file")
	fs.StringVar(&e.trace, "trace", "", "write an execution trace of the whole run to this file (go tool trace)")
	return fs
}

// parse parses a scenario's flags and starts the CPU profile and the
// execution trace if they were asked for; main stops them when the
// scenario returns.
func (e *env) parse(fs *flag.FlagSet, args []string) error {
	fs.Parse(args) // exits on error
	var stops []func()
	e.stopProfile = func() {
		for _, stop := range stops {
			stop()
		}
	}
	start := func(path string, begin func(io.Writer) error, end func()) error {
		if path == "" {
			return nil
		}
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		if err := begin(f); err != nil {
			f.Close()
			return err
		}
		stops = append(stops, func() { end(); f.Close() })
		return nil
	}
	if err := start(e.cpuprofile, pprof.StartCPUProfile, pprof.StopCPUProfile); err != nil {
		return err
	}
	return start(e.trace, trace.Start, trace.Stop)
}

// finish ends a scenario whose tables are printed: it prints the targets
// and writes the run, with its results, where -out says.
func (e *env) finish(run *report.Run, results any, targets []target) error {
	run.Results = map[string]any{"runs": results, "targets": targets}
	printTargets(targets)
	path, err := run.Write(e.out)
	if err != nil {
		return err
	}
	fmt.Printf("\nmachine: %s\nresults: %s\n", run.Machine, path)
	return nil
}

// ints is a flag holding a comma-separated list of integers; underscores
// may separate thousands.
type ints []int

func (l *ints) String() string {
	s := make([]string, len(*l))
	for i, v := range *l {
		s[i] = strconv.Itoa(v)
	}
	return strings.Join(s, ",")
}

func (l *ints) Set(v string) error {
	*l = nil
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.ReplaceAll(strings.TrimSpace(f), "_", ""))
		if err != nil {
			return err
		}
		*l = append(*l, n)
	}
	return nil
}

// words is a flag holding a comma-separated list of choices among allowed.
type words struct {
	list    []string
	allowed []string
}

func (w *words) String() string { return strings.Join(w.list, ",") }

func (w *words) Set(v string) error {
	w.list = nil
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		ok := false
		for _, a := range w.allowed {
			ok = ok || a == f
		}
		if !ok {
			return fmt.Errorf("%q is not one of %s", f, strings.Join(w.allowed, ", "))
		}
		w.list = append(w.list, f)
	}
	return nil
}

// target is a figure the issues set, checked against a measurement.
type target struct {
	Name   string  `json:"name"`
	Want   string  `json:"want"`
	Got    float64 `json:"got"`
	Unit   string  `json:"unit"`
	Met    bool    `json:"met"`
	Ran    bool    `json:"ran"` // false when the run did not measure it
	Detail string  `json:"detail,omitempty"`
}

func atLeast(name string, got, want float64, unit string) target {
	return target{Name: name, Want: "≥ " + report.Float(want) + " " + unit, Got: got, Unit: unit, Met: got >= want, Ran: true}
}

func atMost(name string, got, want float64, unit string) target {
	return target{Name: name, Want: "≤ " + report.Float(want) + " " + unit, Got: got, Unit: unit, Met: got <= want, Ran: true}
}

// printTargets prints the targets a run measured.
func printTargets(ts []target) {
	t := report.Table{Title: "targets", Header: []string{"target", "wanted", "measured", "met"}}
	shown := false
	for _, x := range ts {
		if !x.Ran {
			continue
		}
		shown = true
		t.Add(x.Name, x.Want, report.Float(x.Got)+" "+x.Unit, x.Met)
	}
	if shown {
		t.Print(os.Stdout)
	}
}
