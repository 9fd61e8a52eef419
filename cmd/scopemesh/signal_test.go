package main

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/internal/gobuild"
)

func TestNodeBinaryStopsOnSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := gobuild.Binary(t, "github.com/scopemesh/scopemesh/cmd/scopemesh")
	dataDir, err := os.MkdirTemp("", "smnode")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dataDir) })
	sock := filepath.Join(dataDir, apiSocketName)

	node := exec.Command(bin, "node", "--data-dir", dataDir, "--listen", "/ip4/127.0.0.1/tcp/0",
		"--mdns=false", "--dht", "off", "--cluster", t.Name(), "--json")
	stdout, err := node.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	node.Stderr = &stderr
	if err := node.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- node.Wait() }()
	t.Cleanup(func() {
		if node.ProcessState == nil {
			node.Process.Kill()
			<-exited
		}
	})

	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the start-up report: %v\n%s", err, stderr.String())
	}
	var report startReport
	if err := json.Unmarshal([]byte(line), &report); err != nil || report.API != sock {
		t.Fatalf("start-up report %q: %v", line, err)
	}

	var e events.Event
	mustJSON(t, &e, "record", "--api", sock, "before.sigterm")
	if err := node.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("node exited with %v\n%s", err, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("node still running 20s after SIGTERM\n%s", stderr.String())
	}
	for _, want := range []string{"node running", "stopping the node", "node stopped"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("the log lacks %q:\n%s", want, stderr.String())
		}
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("the API socket outlived the node: %v", err)
	}

	// Restarted on the same data dir, the node has the same identity and
	// the event it acknowledged.
	restarted := exec.Command(bin, "node", "--data-dir", dataDir, "--listen", "/ip4/127.0.0.1/tcp/0",
		"--mdns=false", "--dht", "off", "--cluster", t.Name(), "--json")
	restarted.Stdout = &strings.Builder{}
	restarted.Stderr = &strings.Builder{}
	if err := restarted.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		restarted.Process.Signal(syscall.SIGTERM)
		restarted.Wait()
	}()
	eventually(t, 10*time.Second, "the restarted node's API", func() bool {
		_, _, code := cli(t.Context(), "status", "--api", sock)
		return code == exitOK
	})
	var res resultJSON
	mustJSON(t, &res, "query", "--api", sock)
	if len(res.Events) != 1 || res.Events[0].ID != e.ID || res.Events[0].Node != report.ID {
		t.Fatalf("after the restart: %+v", res.Events)
	}
}
