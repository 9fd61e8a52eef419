package nemesis

import (
	"runtime"
	"strings"
	"time"
)

// The test checks itself for leaked goroutines, as go.uber.org/goleak's
// VerifyTestMain does: once every test has ended, no goroutine may be left
// but the test binary's own and those listed here.
var ignoredGoroutines = []string{
	// The testing package's and the runtime's own.
	"testing.(*M).",
	"testing.tRunner",
	"testing.runTests",
	"runtime.goexit0",
	"os/signal.signal_recv",
	"runtime.ensureSigM",
}

// mocknetStream marks goroutines blocked on a stream of libp2p's simulated
// network. mocknet resets a connection's streams when the connection
// closes, but a stream opened while it closes (conn.openStream does not
// check) is never reset, and the libp2p goroutines reading or writing it
// (gossipsub's writer and dead-peer reader, the stream's own transport
// loop) stay blocked for good. They are mocknet's, not the library's: such
// a stack is ignored unless a scopemesh function is on it.
const mocknetStream = "p2p/net/mock.(*stream)"

// leftoverGoroutines returns the stacks of the goroutines that are still
// running and not ignored, after waiting up to timeout for them to end.
func leftoverGoroutines(timeout time.Duration) []string {
	deadline := time.Now().Add(timeout)
	for {
		left := runningGoroutines()
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func runningGoroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	// The first stack is the calling goroutine's.
	stacks := strings.Split(string(buf), "\n\n")[1:]
	var out []string
	for _, s := range stacks {
		ignored := false
		for _, ig := range ignoredGoroutines {
			if strings.Contains(s, ig) {
				ignored = true
				break
			}
		}
		if strings.Contains(s, mocknetStream) && !strings.Contains(s, "github.com/scopemesh/scopemesh") {
			ignored = true
		}
		if !ignored {
			out = append(out, s)
		}
	}
	return out
}
