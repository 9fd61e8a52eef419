package report

import "time"

// CPUPerEvent starts measuring the CPU time, user and system, of the whole
// process. The function it returns gives the time used since, in
// microseconds per event for n events, or 0 where the system does not
// report it. On a shared machine this is steadier than events/s, which
// also counts the time other tenants hold the cores; it counts all the
// process's work, the nodes' background work included.
func CPUPerEvent() func(n int) float64 {
	start, ok := processCPU()
	return func(n int) float64 {
		end, ok2 := processCPU()
		if !ok || !ok2 || n == 0 {
			return 0
		}
		return float64(end-start) / float64(time.Microsecond) / float64(n)
	}
}
