package cli_test

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestBenchSchedulerJSON(t *testing.T) {
	stdout, _, err := run(t, "bench", "scheduler", "--hosts", "20", "--tasks", "2000", "--services", "10", "--batch", "200", "-o", "json")
	if err != nil {
		t.Fatalf("bench scheduler: %v", err)
	}
	var res struct {
		PlacementsPerSec float64 `json:"placements_per_sec"`
		PeakRSSMiB       float64 `json:"peak_rss_mib"`
		Checkpoints      []struct {
			Tasks            int     `json:"tasks"`
			PlacementsPerSec float64 `json:"placements_per_sec"`
		} `json:"checkpoints"`
		Baseline struct {
			PlacementsPerSec float64 `json:"placements_per_sec"`
			Ratio            float64 `json:"ratio"`
		} `json:"baseline"`
		Replicas []struct {
			Tasks int `json:"tasks"`
		} `json:"replicas"`
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, stdout)
	}
	if res.PlacementsPerSec <= 0 || res.PeakRSSMiB <= 0 || res.Baseline.PlacementsPerSec <= 0 || res.Baseline.Ratio <= 0 {
		t.Errorf("missing figures:\n%s", stdout)
	}
	if len(res.Checkpoints) != 1 || res.Checkpoints[0].Tasks != 2000 || res.Checkpoints[0].PlacementsPerSec <= 0 {
		t.Errorf("checkpoints %+v, want one at 2000 tasks", res.Checkpoints)
	}
	if len(res.Replicas) != 3 {
		t.Fatalf("%d replicas, want 3", len(res.Replicas))
	}
	for i, r := range res.Replicas {
		if r.Tasks != 2000 {
			t.Errorf("replica %d holds %d tasks, want 2000", i, r.Tasks)
		}
	}
}

func TestBenchSchedulerTable(t *testing.T) {
	stdout, _, err := run(t, "bench", "scheduler", "--hosts", "10", "--tasks", "500", "--services", "5", "--batch", "100")
	if err != nil {
		t.Fatalf("bench scheduler: %v", err)
	}
	for _, want := range []string{"PLACEMENTS/S", "0-500", "all, until every replica applied", "baseline: placement only", "placement-only rate"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("table lacks %q:\n%s", want, stdout)
		}
	}
}

func TestBenchSchedulerRefusesBadFlags(t *testing.T) {
	for _, args := range [][]string{{"--tasks", "-1"}, {"--batch", "-5"}, {"-o", "yaml"}} {
		if _, _, err := run(t, append([]string{"bench", "scheduler"}, args...)...); err == nil {
			t.Errorf("bench scheduler %v: no error", args)
		}
	}
}
