package crdt

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"testing"

	"github.com/scopemesh/scopemesh/events"
	"github.com/scopemesh/scopemesh/internal/fixture"
	"github.com/scopemesh/scopemesh/internal/pebblestore"
)

// crashDirEnv, when set, makes the test binary the child of
// TestAcknowledgedEventsSurviveKill: it adds events to a Pebble store there
// and prints each event's ID once Add has returned, until it is killed.
const crashDirEnv = "SCOPEMESH_CRASH_CHILD_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashDirEnv); dir != "" {
		os.Exit(crashChild(dir))
	}
	os.Exit(m.Run())
}

func crashChild(dir string) int {
	ds, err := pebblestore.Open(dir, pebblestore.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	s, err := New(context.Background(), ds, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	g := fixture.New(20, 3)
	out := bufio.NewWriter(os.Stdout)
	for {
		e := g.Next()
		if _, err := s.Add(context.Background(), e); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Fprintln(out, e.ID)
		out.Flush()
	}
}

// TestAcknowledgedEventsSurviveKill kills a child process with SIGKILL while
// it writes, then checks that every event whose Add had returned is in the
// reopened store. The store runs as a node's does: commits reach the
// operating system before they return, disk flushes happen in the
// background.
func TestAcknowledgedEventsSurviveKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var acked []events.ID
	lines := bufio.NewScanner(stdout)
	for len(acked) < 300 && lines.Scan() {
		id, err := events.ParseID(lines.Text())
		if err != nil {
			t.Fatalf("child printed %q: %v", lines.Text(), err)
		}
		acked = append(acked, id)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if len(acked) < 300 {
		t.Fatalf("child acknowledged only %d events before exiting", len(acked))
	}

	ds, err := pebblestore.Open(dir, pebblestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	s := newSet(t, ds)
	for _, id := range acked {
		if _, err := s.Get(context.Background(), id); err != nil {
			t.Fatalf("acknowledged event %v lost: %v", id, err)
		}
	}
	if s.Len() < len(acked) {
		t.Fatalf("reopened index holds %d events, fewer than the %d acknowledged", s.Len(), len(acked))
	}
}
