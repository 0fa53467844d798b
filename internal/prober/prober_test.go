package prober

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// TestGapCoversAnOutage serves counts, then fails for a while, then serves
// again: the longest gap covers the outage, the failures are counted, and
// the count goes on above what was acknowledged.
func TestGapCoversAnOutage(t *testing.T) {
	var hits atomic.Int64
	var down atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if down.Load() {
			http.Error(w, "db unreachable", http.StatusBadGateway)
			return
		}
		fmt.Fprintf(w, `{"hits":%d}`, hits.Add(1))
	}))
	defer srv.Close()
	p := Start([]string{srv.URL}, 5*time.Millisecond)
	defer p.Stop()
	ctx := context.Background()
	if err := p.WaitAnswers(ctx, 5, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	p.Reset()
	before := p.Acked()
	down.Store(true)
	time.Sleep(200 * time.Millisecond)
	down.Store(false)
	if err := p.WaitAnswers(ctx, 5, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if gap := p.LongestGap(); gap < 200*time.Millisecond || gap > 2*time.Second {
		t.Errorf("longest gap %s, want about the 200ms outage", gap)
	}
	if p.Failed() == 0 {
		t.Error("no failed visit counted during the outage")
	}
	if after := p.FirstAbove(before); after <= before {
		t.Errorf("count went on at %d after %d", after, before)
	}
}
