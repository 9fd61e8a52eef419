//go:build !unix

package report

import "time"

// processCPU reports that the system gives no CPU time here.
func processCPU() (time.Duration, bool) { return 0, false }
