package netns

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// insideEnv marks a test process started inside its namespace.
const insideEnv = "SCOPEMESH_TEST_NETNS"

// Inside reports whether the test process runs in a namespace Run made.
func Inside() bool { return os.Getenv(insideEnv) != "" }

// Run re-runs the calling test (t.Name()) in a new network namespace whose
// loopback interface is up and multicast-capable, and reports its result.
// It skips the test where namespaces cannot be made (no unshare, or not
// permitted). Call it at the top of the test:
//
//	if !netns.Inside() {
//		netns.Run(t)
//		return
//	}
func Run(t *testing.T) {
	t.Helper()
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("needs unshare(1) to make a network namespace")
	}
	if probe := exec.Command(unshare, "--net", "true"); probe.Run() != nil {
		t.Skip("not permitted to make a network namespace")
	}
	script := "ip link set lo up && ip link set lo multicast on && exec \"$0\" \"$@\""
	cmd := exec.Command(unshare, "--net", "sh", "-c", script,
		os.Args[0], "-test.run=^"+t.Name()+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), insideEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS") {
		t.Fatalf("in its own network namespace: %v\n%s", err, out)
	}
}
