package report

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"time"
)

// Machine describes the computer a run happened on.
type Machine struct {
	CPU        string `json:"cpu"`        // model name from /proc/cpuinfo
	Cores      int    `json:"cores"`      // logical CPUs
	GOMAXPROCS int    `json:"gomaxprocs"` // CPUs the run could use
	Go         string `json:"go"`         // Go version the harness was built with
	OS         string `json:"os"`         // GOOS/GOARCH
	MemoryGiB  int    `json:"memory_gib"` // total memory, from /proc/meminfo
	Module     string `json:"module"`     // the scopemesh version measured
	Dirty      bool   `json:"dirty"`      // built from a work tree with changes
	Revision   string `json:"revision"`   // the VCS revision, when the build knows it
	// Load is the 1-minute load average when the run started: on a shared
	// machine, what else was running.
	Load float64 `json:"load"`
}

// ThisMachine describes the machine the process runs on.
func ThisMachine() Machine {
	m := Machine{
		CPU:        cpuModel(),
		Cores:      runtime.NumCPU(),
		GOMAXPROCS: runtime.GOMAXPROCS(0),
		Go:         runtime.Version(),
		OS:         runtime.GOOS + "/" + runtime.GOARCH,
		MemoryGiB:  memoryGiB(),
		Load:       loadAverage(),
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		m.Module = bi.Main.Version
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				m.Revision = s.Value
			case "vcs.modified":
				m.Dirty = s.Value == "true"
			}
		}
	}
	if m.Revision == "" {
		// Built without VCS stamping (-buildvcs=false, as go run may be):
		// ask git, when the run starts inside the work tree.
		if out, err := exec.Command("git", "rev-parse", "HEAD").Output(); err == nil {
			m.Revision = strings.TrimSpace(string(out))
			out, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output()
			m.Dirty = err == nil && len(out) > 0
		}
	}
	return m
}

func (m Machine) String() string {
	s := fmt.Sprintf("%s, %d cores (GOMAXPROCS %d), %d GiB, %s %s, load %.2f at start",
		m.CPU, m.Cores, m.GOMAXPROCS, m.MemoryGiB, m.Go, m.OS, m.Load)
	if m.Revision != "" {
		s += ", revision " + m.Revision[:min(12, len(m.Revision))]
		if m.Dirty {
			s += " with local changes"
		}
	}
	return s
}

// loadAverage reads the 1-minute load average from /proc/loadavg.
func loadAverage() float64 {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	var l float64
	fmt.Sscanf(string(data), "%f", &l)
	return l
}

// cpuModel reads the first "model name" of /proc/cpuinfo; elsewhere it
// falls back to the architecture.
func cpuModel() string {
	return procField("/proc/cpuinfo", "model name", runtime.GOARCH)
}

func memoryGiB() int {
	var kib int
	fmt.Sscanf(procField("/proc/meminfo", "MemTotal", "0"), "%d", &kib)
	return (kib + 1<<19) >> 20
}

// procField returns the value of the first "name: value" line of a /proc
// file, or def.
func procField(path, name, def string) string {
	f, err := os.Open(path)
	if err != nil {
		return def
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == name {
			return strings.TrimSpace(v)
		}
	}
	return def
}

// Run is the record of one benchmark run, as written to JSON.
type Run struct {
	Scenario string    `json:"scenario"`
	Command  string    `json:"command"` // how to run it again
	Started  time.Time `json:"started"`
	Seconds  float64   `json:"seconds"` // wall time of the whole run
	Machine  Machine   `json:"machine"`
	Params   any       `json:"params"`
	Results  any       `json:"results"`
}

// New starts the record of a run of scenario with the given parameters.
// The command line is taken from the process's arguments.
func New(scenario string, params any) *Run {
	return &Run{
		Scenario: scenario,
		Command:  Command(),
		Started:  time.Now(),
		Machine:  ThisMachine(),
		Params:   params,
	}
}

// Command returns the command line that reproduces this process's run,
// spelled as a go run of the harness from the repository root.
func Command() string {
	args := make([]string, 0, len(os.Args))
	for _, a := range os.Args[1:] {
		if strings.ContainsAny(a, " \t'\"$") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		args = append(args, a)
	}
	run := "go run ./" + harnessDir()
	if dir := harnessDir(); dir != "bench" {
		// A harness with a module of its own runs from its directory.
		run = "cd " + dir + " && go run ."
	}
	return strings.TrimSpace(run + " " + strings.Join(args, " "))
}

// harnessDir names the harness's directory relative to the repository root,
// from the binary's main package path.
func harnessDir() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Path != "" {
		const root = "github.com/scopemesh/scopemesh/"
		if rel, ok := strings.CutPrefix(bi.Path, root); ok {
			return rel
		}
	}
	return "bench"
}

// Write saves the run as JSON in dir, named after its scenario and start
// time, and returns the file's path.
func (r *Run) Write(dir string) (string, error) {
	r.Seconds = time.Since(r.Started).Seconds()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	name := fmt.Sprintf("%s-%s.json", r.Scenario, r.Started.UTC().Format("20060102-150405"))
	path := filepath.Join(dir, name)
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", err
	}
	return path, os.WriteFile(path, append(data, '\n'), 0o644)
}

// Saved is a run read back from its JSON file: Params and Results stay
// raw, for the reader to decode into the scenario's own types.
type Saved struct {
	Path     string          `json:"-"`
	Scenario string          `json:"scenario"`
	Command  string          `json:"command"`
	Started  time.Time       `json:"started"`
	Machine  Machine         `json:"machine"`
	Params   json.RawMessage `json:"params"`
	Results  json.RawMessage `json:"results"`
}

// Load reads every run saved in dir, oldest first. Files that are not runs
// are skipped.
func Load(dir string) ([]Saved, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	var out []Saved
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		var s Saved
		if json.Unmarshal(data, &s) != nil || s.Scenario == "" {
			continue
		}
		s.Path = p
		out = append(out, s)
	}
	// Names sort by scenario, then time; order by time across scenarios.
	slices.SortStableFunc(out, func(a, b Saved) int { return a.Started.Compare(b.Started) })
	return out, nil
}
