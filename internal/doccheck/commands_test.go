package doccheck

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var runCommands = flag.Bool("commands", false, "run every command the docs show, at the smallest sizes (a few minutes)")

// docs are the files whose commands are checked, relative to the
// repository root.
var docs = []string{"README.md", "bench/README.md"}

// small holds, for each program a `go run` command runs (its directory, if
// the command changes to one, its package and, for the bench, its
// scenario), the flags that shrink a run to seconds. They are appended to
// the command's own, so they win.
var small = map[string][]string{
	"./bench record":       {"-events", "4000"},
	"./bench replicate":    {"-nodes", "3", "-events", "4000", "-latency-events", "500"},
	"./bench heal":         {"-nodes", "3", "-history", "500", "-per-side", "500"},
	"./bench reconcile":    {"-n", "10000", "-d", "1,100", "-repeat", "1"},
	"./bench query":        {"-n", "2000", "-cluster-n", "2000", "-nodes", "3", "-samples", "20"},
	"./bench retain":       {"-events", "20000", "-samples", "10"},
	"./bench members":      {"-nodes", "3", "-spread", "1", "-idle", "2s"},
	"./bench sim":          {"-nodes", "10,100", "-batches", "2"},
	"./bench plot":         nil, // charts from the runs above
	"./examples/cluster":   {"-requests", "50"},
	"./examples/httptrace": nil,
	"./examples/clocks":    nil,
	"bench/compare .": {"-rounds", "1", "-events", "5", "-batched-events", "200",
		"-history", "50", "-per-side", "50", "-rebroadcast", "1s", "-timeout", "1m"},
}

// runsLast are the programs that read what the others wrote.
var runsLast = []string{"./bench plot"}

// placeholders stand in for the words in angle brackets that docs use in
// a command's place.
var placeholders = map[string]string{"<scenario>": "record"}

// A command is one command line a doc shows.
type command struct {
	where string   // file:line
	dir   string   // where it runs, relative to the root: "cd dir && …"
	words []string // "go", "run", …
}

func (c command) String() string {
	s := strings.Join(c.words, " ")
	if c.dir != "" {
		s = "cd " + c.dir + " && " + s
	}
	return s
}

// program returns the key of a `go run` command in small: the package,
// after the directory if any, and the bench's scenario.
func (c command) program() string {
	key := c.words[2]
	if c.dir != "" {
		key = c.dir + " " + key
	}
	if key == "./bench" && len(c.words) > 3 {
		key += " " + c.words[3]
	}
	return key
}

func (c command) kind() string {
	if c.words[0] == "scopemesh" {
		return "scopemesh"
	}
	return c.words[1] // run, test, install
}

// commandStarts are what a command the docs show begins with.
var commandStarts = []string{"cd ", "go run ", "go test ", "go install ", "scopemesh "}

// parseCommand reads a command from a code span or line, or reports false
// if it holds none. A wrapper before the command (`perf record -g go run
// …`) is dropped.
func parseCommand(where, text string) (command, bool) {
	text = strings.TrimSpace(text)
	start := -1
	for _, s := range commandStarts {
		if i := strings.Index(text, s); i >= 0 && (i == 0 || text[i-1] == ' ') && (start < 0 || i < start) {
			start = i
		}
	}
	if start < 0 {
		return command{}, false
	}
	words, err := splitWords(text[start:])
	if err != nil || len(words) < 2 {
		return command{}, false
	}
	c := command{where: where}
	if words[0] == "cd" {
		if len(words) < 5 || words[2] != "&&" {
			return command{}, false
		}
		c.dir, words = words[1], words[3:]
	}
	for i, w := range words {
		if v, ok := placeholders[w]; ok {
			words[i] = v
		}
	}
	c.words = words
	switch {
	case c.words[0] == "scopemesh":
		return c, true
	case c.words[0] != "go", len(c.words) < 3:
		return command{}, false
	}
	return c, true
}

// splitWords splits a command line into words as a shell would, for the
// quoting the docs use: single and double quotes, no expansions.
func splitWords(s string) ([]string, error) {
	var words []string
	var w strings.Builder
	inWord := false
	var quote rune
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			w.WriteRune(r)
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		default:
			w.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unbalanced %c in %q", quote, s)
	}
	if inWord {
		words = append(words, w.String())
	}
	return words, nil
}

// docCommands returns the commands of a Markdown file: the lines of its
// shell code blocks (continued lines joined, comments dropped) and its
// code spans (which may span lines) that hold one.
func docCommands(name, text string) []command {
	var out []command
	lines := strings.Split(text, "\n")
	inFence, shell := false, false
	var prose []string // lines outside code blocks, with their numbers
	var proseLine []int
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if fence := strings.HasPrefix(strings.TrimSpace(line), "```"); fence {
			info := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "```"))
			inFence, shell = !inFence, info == "sh" || info == "bash" || info == ""
			prose = append(prose, "")
			proseLine = append(proseLine, i+1)
			continue
		}
		if !inFence {
			prose = append(prose, line)
			proseLine = append(proseLine, i+1)
			continue
		}
		if !shell {
			continue
		}
		at := i + 1
		for strings.HasSuffix(line, "\\") && i+1 < len(lines) {
			i++
			line = strings.TrimSuffix(line, "\\") + " " + strings.TrimSpace(lines[i])
		}
		if c, ok := parseCommand(fmt.Sprintf("%s:%d", name, at), stripComment(line)); ok {
			out = append(out, c)
		}
	}
	// Code spans: text between single backticks, across line ends.
	var span strings.Builder
	open, openedAt := false, 0
	for k, line := range prose {
		for _, r := range line {
			switch {
			case r == '`' && !open:
				open, openedAt = true, proseLine[k]
				span.Reset()
			case r == '`':
				open = false
				if c, ok := parseCommand(fmt.Sprintf("%s:%d", name, openedAt), span.String()); ok {
					out = append(out, c)
				}
			case open:
				span.WriteRune(r)
			}
		}
		if open {
			span.WriteByte(' ')
		}
	}
	return out
}

// stripComment drops a shell comment: from a '#' that starts a word.
func stripComment(line string) string {
	for i := range line {
		if line[i] == '#' && (i == 0 || line[i-1] == ' ') {
			return line[:i]
		}
	}
	return line
}

// root returns the repository's root directory.
func root(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		t.Fatalf("no repository root at %s: %v", dir, err)
	}
	return dir
}

// allCommands returns the commands the docs show, each once, and a `go
// run` of every example, in the order they should run.
func allCommands(t *testing.T, top string) []command {
	t.Helper()
	var cmds []command
	for _, d := range docs {
		text, err := os.ReadFile(filepath.Join(top, d))
		if err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, docCommands(d, string(text))...)
	}
	examples, err := filepath.Glob(filepath.Join(top, "examples", "*", "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range examples {
		name := filepath.Base(filepath.Dir(m))
		cmds = append(cmds, command{where: "examples/" + name, words: []string{"go", "run", "./examples/" + name}})
	}
	seen := map[string]bool{}
	var out []command
	for _, c := range cmds {
		if !seen[c.String()] {
			seen[c.String()] = true
			out = append(out, c)
		}
	}
	slices.SortStableFunc(out, func(a, b command) int {
		last := func(c command) bool { return c.kind() == "run" && slices.Contains(runsLast, c.program()) }
		switch {
		case last(a) == last(b):
			return 0
		case last(a):
			return 1
		}
		return -1
	})
	return out
}

// TestEveryCommandHasASmallRun checks that every `go run` command the docs
// show has a recipe in small, and that every recipe is used: a new command
// needs one, and a removed one takes its recipe along.
func TestEveryCommandHasASmallRun(t *testing.T) {
	cmds := allCommands(t, root(t))
	if len(cmds) < 10 {
		t.Fatalf("found only %d commands in %v: is the parser broken?", len(cmds), docs)
	}
	used := map[string]bool{}
	for _, c := range cmds {
		switch c.kind() {
		case "run":
			if _, ok := small[c.program()]; !ok {
				t.Errorf("%s: `%s`: no entry %q in small: add the flags that make it run in seconds", c.where, c, c.program())
			}
			used[c.program()] = true
		case "test", "install", "scopemesh":
		default:
			t.Errorf("%s: `%s`: not a command this test knows how to check", c.where, c)
		}
	}
	for key := range small {
		if !used[key] {
			t.Errorf("small has %q, which no doc command or example runs", key)
		}
	}
}

// TestDocCommandsRun runs every command the docs show (see the package
// doc). It runs only with -commands.
func TestDocCommandsRun(t *testing.T) {
	if !*runCommands {
		t.Skip("runs with -commands")
	}
	top := root(t)
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	scratch := t.TempDir()
	bins := map[string]string{} // dir and package → built binary
	build := func(dir, pkg string) (string, error) {
		key := dir + " " + pkg
		if bin, ok := bins[key]; ok {
			return bin, nil
		}
		bin := filepath.Join(scratch, "bin", fmt.Sprintf("prog%d", len(bins)))
		if err := run(filepath.Join(top, dir), 10*time.Minute, goCmd, "build", "-o", bin, pkg); err != nil {
			return "", fmt.Errorf("building %s: %w", pkg, err)
		}
		bins[key] = bin
		return bin, nil
	}
	for _, c := range allCommands(t, top) {
		ok := t.Run(c.String(), func(t *testing.T) {
			var err error
			switch c.kind() {
			case "run":
				var bin string
				if bin, err = build(c.dir, c.words[2]); err == nil {
					work := filepath.Join(scratch, "work", c.dir)
					if err = os.MkdirAll(work, 0o755); err == nil {
						err = run(work, 5*time.Minute, bin, append(slices.Clone(c.words[3:]), small[c.program()]...)...)
					}
				}
			case "test":
				if slices.Equal(c.words, []string{"go", "test", "./..."}) {
					t.Skip("the suite itself")
				}
				err = listTests(filepath.Join(top, c.dir), goCmd, c.words[2:])
			case "install":
				_, err = build(c.dir, c.words[len(c.words)-1])
			case "scopemesh":
				var bin string
				if bin, err = build("", "./cmd/scopemesh"); err == nil {
					err = run(scratch, time.Minute, bin, append(slices.Clone(c.words[1:]), "--help")...)
				}
			}
			if err != nil {
				t.Errorf("%s: `%s`: %v", c.where, c, err)
			}
		})
		if !ok {
			t.Logf("FAILED: %s: `%s`", c.where, c)
		}
	}
}

// run runs name with args in dir, and returns an error that holds the end
// of its output if it fails.
func run(dir string, timeout time.Duration, name string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		tail := out.Bytes()
		if len(tail) > 4000 {
			tail = tail[len(tail)-4000:]
		}
		return fmt.Errorf("%v\n%s", err, tail)
	}
	return nil
}

// goTestValueFlags are the flags of `go test` that take a value.
var goTestValueFlags = []string{"-run", "-bench", "-benchtime", "-count", "-timeout", "-cpu", "-cpuprofile",
	"-memprofile", "-trace", "-fuzz", "-fuzztime", "-list", "-o", "-parallel", "-tags", "-coverprofile", "-skip"}

// goTestBoolFlags are its flags that take none.
var goTestBoolFlags = []string{"-v", "-race", "-short", "-benchmem", "-failfast", "-json", "-cover"}

// listTests runs `go test -list` for the tests or benchmarks a `go test`
// command names, with its packages and test binary flags, and fails
// unless it lists at least one.
func listTests(dir, goCmd string, args []string) error {
	pattern := "."
	var bench, runPat string
	var pkgs, binFlags []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, value, hasValue := strings.Cut(a, "=")
		switch {
		case slices.Contains(goTestValueFlags, name):
			if !hasValue {
				if i+1 >= len(args) {
					return fmt.Errorf("%s without a value", a)
				}
				i++
				value = args[i]
			}
			switch name {
			case "-bench":
				bench = value
			case "-run":
				runPat = value
			}
		case slices.Contains(goTestBoolFlags, name):
		case strings.HasPrefix(a, "-"):
			binFlags = append(binFlags, a)
		case len(binFlags) > 0:
			binFlags = append(binFlags, a) // a test binary flag's value
		default:
			pkgs = append(pkgs, a)
		}
	}
	switch {
	case bench != "":
		pattern, _, _ = strings.Cut(bench, "/") // -list matches top-level names
	case runPat != "":
		pattern, _, _ = strings.Cut(runPat, "/")
	}
	if len(pkgs) == 0 {
		pkgs = []string{"."}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goCmd, append(append([]string{"test", "-list", pattern}, pkgs...), binFlags...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go test -list: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if line != "" && !strings.HasPrefix(line, "ok ") && !strings.HasPrefix(line, "?") {
			return nil
		}
	}
	return fmt.Errorf("no test or benchmark matches %q in %v", pattern, pkgs)
}
