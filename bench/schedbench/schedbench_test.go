package schedbench

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"testing"
	"time"
)

func TestRunCommitsEveryTaskOnEveryReplica(t *testing.T) {
	var seen []Checkpoint
	res, err := Run(context.Background(), Options{
		Hosts: 50, Tasks: 5000, Batch: 500, Services: 50,
		SnapshotEvery: 4, // compact the log during the run too
		OnCheckpoint:  func(cp Checkpoint) { seen = append(seen, cp) },
	})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	t.Logf("%+v", res)
	if len(res.Replicas) != 3 {
		t.Fatalf("%d replicas, want 3", len(res.Replicas))
	}
	leaders := 0
	for _, r := range res.Replicas {
		if r.Tasks != 5000 {
			t.Errorf("replica %s holds %d tasks, want 5000", r.Name, r.Tasks)
		}
		if r.Leader {
			leaders++
		}
	}
	if leaders != 1 {
		t.Errorf("%d leaders among the replicas, want 1", leaders)
	}
	if res.Entries != 10 {
		t.Errorf("%d raft entries, want 10 (5000 tasks in batches of 500)", res.Entries)
	}
	if res.PlacementsPerSec <= 0 || res.PeakRSSMiB <= 0 {
		t.Errorf("rate %v, peak RSS %v MiB: want both > 0", res.PlacementsPerSec, res.PeakRSSMiB)
	}
	if len(res.Checkpoints) != 1 || res.Checkpoints[0].Tasks != 5000 || len(seen) != 1 {
		t.Errorf("checkpoints %+v (%d reported), want one at 5000", res.Checkpoints, len(seen))
	}
	if res.Baseline == nil || res.Baseline.PlacementsPerSec <= 0 || res.Baseline.Ratio <= 0 {
		t.Errorf("baseline %+v, want a rate and a ratio", res.Baseline)
	}
}

func TestCheckpoints(t *testing.T) {
	for tasks, want := range map[int]string{
		5000:      "[5000]",
		10_000:    "[10000]",
		250_000:   "[10000 100000 250000]",
		1_000_000: "[10000 100000 1000000]",
	} {
		if got := fmt.Sprint(checkpoints(tasks)); got != want {
			t.Errorf("checkpoints(%d) = %s, want %s", tasks, got, want)
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	if err := (Options{}).Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
	for _, o := range []Options{
		{Hosts: -1}, {Tasks: -1}, {Batch: -1}, {Services: -1}, {MaxLag: -1},
		{SnapshotEvery: -1}, {SnapshotEvery: 10, MaxLag: trailingLogs},
	} {
		if err := o.Validate(); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
}

func TestWorkloadGroupsTasksByService(t *testing.T) {
	w := newWorkload(Options{Hosts: 10, Tasks: 10, Services: 3}.withDefaults())
	var got []string
	ids := map[string]bool{}
	for n := range 10 {
		s := w.spec(n)
		got = append(got, s.Service+"."+strconv.Itoa(s.Slot))
		ids[s.ID] = true
	}
	want := "[svc0.1 svc0.2 svc0.3 svc0.4 svc1.1 svc1.2 svc1.3 svc1.4 svc2.1 svc2.2]"
	if fmt.Sprint(got) != want || len(ids) != 10 {
		t.Errorf("tasks %v (%d distinct IDs), want %s with 10 IDs", got, len(ids), want)
	}
}

func TestCheckpointerSkipsPassedCheckpoints(t *testing.T) {
	var res Result
	c := newCheckpointer(Options{Tasks: 1_000_000}, time.Now().Add(-time.Second), &res)
	c.committed(5000)    // before the first checkpoint: nothing
	c.committed(150_000) // passes 10k and 100k at once: one window
	c.committed(1_000_000)
	if len(res.Checkpoints) != 2 || res.Checkpoints[0].Tasks != 150_000 || res.Checkpoints[1].Tasks != 1_000_000 {
		t.Fatalf("checkpoints %+v, want windows closing at 150000 and 1000000", res.Checkpoints)
	}
	for _, cp := range res.Checkpoints {
		if cp.PlacementsPerSec <= 0 || math.IsInf(cp.PlacementsPerSec, 0) || math.IsNaN(cp.CPUMicrosPerPlacement) {
			t.Errorf("checkpoint %+v: want finite rates", cp)
		}
	}
}
