package events

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestW3CTraceContextSuite runs the official W3C Trace Context test suite,
// vendored in testdata/w3c-trace-context, at strictness and specification
// level 2 against a service built on Propagator, and fails if any of its
// tests fails. It skips when no python3 with aiohttp is installed (Debian:
// python3-aiohttp).
func TestW3CTraceContextSuite(t *testing.T) {
	python := pythonWithAiohttp(t)
	clock, _ := manualClock(t, 0)
	service := httptest.NewServer(suiteService(t, Propagator{Clock: clock}))
	defer service.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "test.py", service.URL+"/test")
	cmd.Dir = "testdata/w3c-trace-context"
	cmd.Env = append(os.Environ(),
		"STRICT_LEVEL=2", "SPEC_LEVEL=2",
		"HARNESS_HOST=127.0.0.1", "HARNESS_PORT="+freePort(t),
		"PYTHONDONTWRITEBYTECODE=1", // keep the tree clean
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the W3C suite failed (%v):\n%s", err, out)
	}
	// unittest prints "Ran N tests" and "OK", with "(skipped=N)" if it
	// left some out: none may be at level 2.
	ran := regexp.MustCompile(`Ran (\d+) tests`).FindSubmatch(out)
	if ran == nil || !bytes.Contains(out, []byte("\nOK")) || bytes.Contains(out, []byte("skipped")) {
		t.Fatalf("the W3C suite did not run whole:\n%s", out)
	}
	if n, _ := strconv.Atoi(string(ran[1])); n < 40 {
		t.Fatalf("the W3C suite ran %d tests, 41 at the vendored commit:\n%s", n, out)
	}
	t.Logf("%s", ran[0])
}

// pythonWithAiohttp returns a python3 that can import aiohttp: the one on
// PATH, or the system's, where Debian's python3-aiohttp installs it. It
// skips the test if there is none.
func pythonWithAiohttp(t *testing.T) string {
	t.Helper()
	var candidates []string
	if p, err := exec.LookPath("python3"); err == nil {
		candidates = append(candidates, p)
	}
	candidates = append(candidates, "/usr/bin/python3")
	for _, p := range candidates {
		if exec.Command(p, "-c", "import aiohttp").Run() == nil {
			return p
		}
	}
	t.Skip("no python3 with aiohttp (Debian: apt-get install python3-aiohttp) to run the W3C Trace Context suite")
	return ""
}

// freePort returns a loopback TCP port that was free a moment ago, for the
// suite's harness.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// suiteService is the service the suite tests: for each request it records
// an event, and for each callback the suite asks for, an event for the
// call, whose ID goes out as the parent-id, as a traced service would.
func suiteService(t *testing.T, p Propagator) http.Handler {
	client := &http.Client{Transport: p.Transport(nil), Timeout: 10 * time.Second}
	record := func(ctx context.Context, kind string) context.Context {
		trace, _ := TraceFromContext(ctx)
		parent, _ := ParentFromContext(ctx)
		e, err := Seal(Event{Time: p.Clock.Now(), Node: "w3c-suite-service", Kind: kind, Correlation: trace, Parent: parent})
		if err != nil {
			t.Error(err)
		}
		return ContextWithParent(ctx, e.ID)
	}
	return p.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var actions []struct {
			URL       string          `json:"url"`
			Arguments json.RawMessage `json:"arguments"`
		}
		if err := json.NewDecoder(r.Body).Decode(&actions); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		ctx := record(r.Context(), "http.server")
		var results []string
		for _, a := range actions {
			body := a.Arguments
			if len(body) == 0 {
				body = json.RawMessage("[]")
			}
			req, err := http.NewRequestWithContext(record(ctx, "http.client"), http.MethodPost, a.URL, bytes.NewReader(body))
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				results = append(results, err.Error())
				continue
			}
			resp.Body.Close()
			results = append(results, fmt.Sprintf("%s: %s", a.URL, resp.Status))
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(strings.Join(results, "\n"))
	}))
}
