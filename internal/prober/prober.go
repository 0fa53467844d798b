// Package prober is the visitors of the demo and of the move benchmark: a
// GET of a sample/web front end every so often, turn by turn over the
// front ends, each request on its own connection, recording when answers
// came and the visit counts they carried. The longest time without an
// answer is what a client of the app saw of a move.
package prober

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// timeout bounds one visit.
const timeout = 2 * time.Second

// Prober visits front ends until stopped.
type Prober struct {
	every  time.Duration
	cancel context.CancelFunc
	done   chan struct{}
	client *http.Client

	mu      sync.Mutex
	targets []string
	next    int
	since   time.Time   // the last reset
	end     time.Time   // when stopped
	answers []time.Time // when answers came, since the reset
	counts  []int64     // the counts they carried, in order
	failed  int
	maxHits int64
}

// Start visits targets (URLs of web front ends) every interval.
func Start(targets []string, every time.Duration) *Prober {
	ctx, cancel := context.WithCancel(context.Background())
	p := &Prober{every: every, cancel: cancel, done: make(chan struct{}), targets: targets, since: time.Now(),
		client: &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}}
	go p.loop(ctx)
	return p
}

func (p *Prober) loop(ctx context.Context) {
	defer close(p.done)
	var wg sync.WaitGroup
	defer wg.Wait()
	tick := time.NewTicker(p.every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		url := p.pick()
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.record(p.visit(url))
		}()
	}
}

// pick is the next front end's URL.
func (p *Prober) pick() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	url := p.targets[p.next%len(p.targets)]
	p.next++
	return url
}

// visit counts one visit; -1 when it got no count back.
func (p *Prober) visit(url string) int64 {
	resp, err := p.client.Get(url)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var hit struct {
		Hits int64 `json:"hits"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&hit) != nil {
		return -1
	}
	return hit.Hits
}

func (p *Prober) record(hits int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if hits < 0 {
		p.failed++
		return
	}
	p.answers = append(p.answers, time.Now())
	p.counts = append(p.counts, hits)
	p.maxHits = max(p.maxHits, hits)
}

// SetTargets replaces the front ends visited.
func (p *Prober) SetTargets(targets []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.targets = targets
}

// Reset starts a new measurement: gaps and failures from now on.
func (p *Prober) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.since, p.answers, p.counts, p.failed = time.Now(), nil, nil, 0
}

// Acked is the highest count web has acknowledged so far.
func (p *Prober) Acked() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.maxHits
}

// FirstAbove is the first count answered since the reset that is above
// before, or the highest seen: it shows where the counter went on.
func (p *Prober) FirstAbove(before int64) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.counts {
		if c > before {
			return c
		}
	}
	return p.maxHits
}

// LongestGap is the longest time without an answer since the reset, up
// to now (or to the stop).
func (p *Prober) LongestGap() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	last, gap := p.since, time.Duration(0)
	for _, at := range p.answers {
		gap = max(gap, at.Sub(last))
		last = at
	}
	end := p.end
	if end.IsZero() {
		end = time.Now()
	}
	return max(gap, end.Sub(last))
}

// Failed is how many visits got no answer since the reset.
func (p *Prober) Failed() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.failed
}

// WaitAnswers waits until n more answers came after the call, at most
// patience.
func (p *Prober) WaitAnswers(ctx context.Context, n int, patience time.Duration) error {
	p.mu.Lock()
	want := len(p.answers) + n
	p.mu.Unlock()
	deadline := time.Now().Add(patience)
	for time.Now().Before(deadline) {
		p.mu.Lock()
		got := len(p.answers)
		p.mu.Unlock()
		if got >= want {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(p.every):
		}
	}
	return fmt.Errorf("the app answered fewer than %d visits in %s (%s)", n, patience, p.Summary())
}

// Summary is the visits so far, in one line.
func (p *Prober) Summary() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return fmt.Sprintf("%d visits answered, %d failed, counter at %d", len(p.answers), p.failed, p.maxHits)
}

// Stop ends the visits (waiting for those under way).
func (p *Prober) Stop() {
	p.mu.Lock()
	p.end = time.Now()
	p.mu.Unlock()
	p.cancel()
	<-p.done
}
