package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// The prober's pace and patience.
const (
	probeEvery   = 50 * time.Millisecond
	probeTimeout = 2 * time.Second
	waitHits     = time.Minute
)

// prober is the demo's visitors: a GET of a web front end every
// probeEvery, turn by turn over the front ends, each request on its own,
// recording the counts web answered.
type prober struct {
	cancel context.CancelFunc
	done   chan struct{}
	client *http.Client

	mu      sync.Mutex
	targets []string
	next    int
	since   time.Time   // the last reset
	answers []time.Time // when answers came, since the reset
	counts  []int64     // the counts they carried, in order
	failed  int
	maxHits int64
}

// startProber starts visiting targets.
func startProber(targets []string) *prober {
	ctx, cancel := context.WithCancel(context.Background())
	p := &prober{cancel: cancel, done: make(chan struct{}), targets: targets, since: time.Now(),
		client: &http.Client{Timeout: probeTimeout, Transport: &http.Transport{DisableKeepAlives: true}}}
	go p.loop(ctx)
	return p
}

func (p *prober) loop(ctx context.Context) {
	defer close(p.done)
	var wg sync.WaitGroup
	defer wg.Wait()
	tick := time.NewTicker(probeEvery)
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
func (p *prober) pick() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	url := p.targets[p.next%len(p.targets)]
	p.next++
	return url
}

// visit counts one visit; -1 when it got no count back.
func (p *prober) visit(url string) int64 {
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

func (p *prober) record(hits int64) {
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

// setTargets replaces the front ends visited.
func (p *prober) setTargets(targets []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.targets = targets
}

// reset starts a new measurement: gaps and failures from now on.
func (p *prober) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.since, p.answers, p.counts, p.failed = time.Now(), nil, nil, 0
}

// acked is the highest count web has acknowledged so far.
func (p *prober) acked() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.maxHits
}

// firstAfter is the first count answered since the reset that is above
// before, or the highest seen: it shows where the counter went on.
func (p *prober) firstAfter(before int64) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.counts {
		if c > before {
			return c
		}
	}
	return p.maxHits
}

// longestGap is the longest time without an answer since the reset.
func (p *prober) longestGap() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	last, gap := p.since, time.Duration(0)
	for _, at := range p.answers {
		gap = max(gap, at.Sub(last))
		last = at
	}
	return max(gap, time.Since(last))
}

// waitHits waits until n more answers came after the call.
func (p *prober) waitHits(ctx context.Context, n int) error {
	p.mu.Lock()
	want := len(p.answers) + n
	p.mu.Unlock()
	deadline := time.Now().Add(waitHits)
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
		case <-time.After(probeEvery):
		}
	}
	return fmt.Errorf("the app answered fewer than %d visits in %s (%s)", n, waitHits, p.summary())
}

// summary is the visits so far, in one line.
func (p *prober) summary() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return fmt.Sprintf("%d visits answered, %d failed, counter at %d", len(p.answers), p.failed, p.maxHits)
}

// stop ends the visits.
func (p *prober) stop() {
	p.cancel()
	<-p.done
}
