package report

import (
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// progressEvery is how often a Progress prints: often enough to show a run
// is alive, rarely enough not to cost the run anything.
const progressEvery = 2 * time.Second

// Progress prints how far a long step has come, every couple of seconds,
// until Done. Steps shorter than that print nothing. Add may be called from
// any goroutine.
type Progress struct {
	w     io.Writer
	label string
	total int64
	start time.Time
	done  atomic.Int64
	stop  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup
}

// NewProgress starts reporting the progress of a step of total units
// (0 if unknown) on w.
func NewProgress(w io.Writer, label string, total int) *Progress {
	p := &Progress{w: w, label: label, total: int64(total), start: time.Now(), stop: make(chan struct{})}
	p.wg.Add(1)
	go p.loop()
	return p
}

// Stderr starts reporting on the process's standard error.
func Stderr(label string, total int) *Progress { return NewProgress(os.Stderr, label, total) }

// Add counts n more units done.
func (p *Progress) Add(n int) { p.done.Add(int64(n)) }

// Set sets the count of units done.
func (p *Progress) Set(n int) { p.done.Store(int64(n)) }

// Done stops reporting.
func (p *Progress) Done() {
	p.once.Do(func() { close(p.stop) })
	p.wg.Wait()
}

func (p *Progress) loop() {
	defer p.wg.Done()
	t := time.NewTicker(progressEvery)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.print()
		}
	}
}

func (p *Progress) print() {
	done, elapsed := p.done.Load(), time.Since(p.start)
	rate := float64(done) / elapsed.Seconds()
	if p.total > 0 {
		fmt.Fprintf(p.w, "  %s: %s/%s (%.0f%%), %s/s, %s\n", p.label, Int(done), Int(p.total),
			100*float64(done)/float64(p.total), Float(rate), Duration(elapsed.Round(time.Second)))
		return
	}
	fmt.Fprintf(p.w, "  %s: %s, %s/s, %s\n", p.label, Int(done), Float(rate), Duration(elapsed.Round(time.Second)))
}
