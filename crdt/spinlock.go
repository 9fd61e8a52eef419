package crdt

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// spinLock is a RWMutex whose writers may spin for it (lockSpinning)
// rather than wait in line. A commit to memory holds the lock for a
// microsecond or two, less than it takes to park a goroutine and wake it
// again; worse, a woken waiter queues behind the goroutine that woke it, so
// that the commits of concurrent callers run one after another on one
// processor while the others sit idle. A caller that spins commits as soon
// as the lock is free, on its own processor, while the last holder goes on
// to seal its next event: with 8 callers on 2 processors, Record ran about
// a third faster and its 99th percentile fell from hundreds of
// microseconds to about 15 (`go run ./bench record -stores memory`,
// 8e4353f against its parent).
type spinLock struct {
	sync.RWMutex
	// held is set while a writer that came through lockSpinning holds the
	// lock. Spinners read it and try the lock only once it is clear: a
	// failed TryLock writes the lock's cache line, which the holder then
	// has to fetch back to unlock. With 8 callers on 2 processors that
	// made Record 7 % faster, at 8 % less CPU per event (`go run ./bench
	// record -stores memory -callers 8 -events 500000`, 12 runs of each
	// alternating with 681e92a's parent).
	held atomic.Bool
}

// lockSpinning locks l for writing, spinning first if spin. Unlock it with
// unlockSpinning.
//
// A spinner that has not got the lock after spinTries yields its
// processor and spins again, for up to spinRounds rounds, before it waits
// in line. Waiting in line early let the process seize up: with every
// processor busy, a waiter woken by an unlock is not run for a millisecond
// or more, which turns the mutex to handing itself to the waiter it
// queued first; every other writer then spins in vain and queues too,
// and processors idled. A trace of recording in memory with 8 callers
// showed 3,078 waits of 1.9 ms on average for 500,000 events, and the
// process used 1.6 of its 2 processors; yielding instead, 108 waits of
// under 0.1 s in all (`go run ./bench record -stores memory -callers 8
// -events 500000 -trace trace.out`, then `go tool trace -pprof=sync
// trace.out`). Record ran 24 % faster at the same CPU per event (`go run
// ./bench record -stores memory -callers 8 -events 1000000`, 6 runs of
// each, alternating with spinners that waited in line after one round).
func (l *spinLock) lockSpinning(spin bool) {
	if spin {
		for range spinRounds {
			for range spinTries {
				if !l.held.Load() && l.TryLock() {
					l.held.Store(true)
					return
				}
				var pause atomic.Int32
				for range spinPause {
					pause.Add(1)
				}
			}
			runtime.Gosched()
		}
	}
	l.Lock()
	l.held.Store(true)
}

// unlockSpinning unlocks l, locked by lockSpinning.
func (l *spinLock) unlockSpinning() {
	l.held.Store(false)
	l.Unlock()
}

// spinWorthwhile reports whether spinning for a lock can help: on one
// processor the holder cannot run while a waiter spins. A set decides it
// when it is made (GOMAXPROCS takes the scheduler's lock).
func spinWorthwhile() bool { return runtime.GOMAXPROCS(0) > 1 }

// spinTries times spinPause atomic adds is about 10 µs of spinning here.
// Rounds of 2 µs (spinTries 10) yielded so often that Record's 99th
// percentile rose from about 17 µs to about 370 (6 runs of each, as for
// lockSpinning).
const spinTries, spinPause = 50, 20

// spinRounds bounds the yielding rounds of a spinner, about a millisecond
// in all, so that a lock held long (by Close, or a reader) is waited for
// in line rather than spun for.
const spinRounds = 100
