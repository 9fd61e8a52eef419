// Package report records benchmark runs: the machine they ran on, their
// parameters and figures as JSON files for plots and regression checks, a
// table for the terminal, and progress lines for long runs.
//
// # Usage
//
//	run := report.New("replicate", params)  // records the machine and the command line
//	p := report.NewProgress(os.Stderr, "recording", total)
//	p.Add(n)                                // from any goroutine
//	p.Done()
//	run.Results = results
//	path, err := run.Write("bench/results") // bench/results/replicate-20261127-140013.json
//	t := report.Table{Header: []string{"nodes", "events/s"}}
//	t.Add(3, 212_000.0)
//	t.Print(os.Stdout)
//
// Figures a run compares are measured in that run: the machines these
// benchmarks run on are shared and noisy, so a ratio of two figures taken
// minutes apart says little.
package report
