package agent

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestUsageIsCoresBusyBetweenSamples(t *testing.T) {
	cpu, mem := time.Second, int64(4096)
	u := usageSampler{read: func() (time.Duration, int64, error) { return cpu, mem, nil }}
	start := time.Unix(100, 0)
	if first := u.sample(start); first != nil {
		t.Errorf("the first sample has no interval, got %+v", first)
	}
	cpu, mem = 2*time.Second, 8192 // one more CPU-second over two seconds
	got := u.sample(start.Add(2 * time.Second))
	if got == nil || got.CPUCores != 0.5 || got.MemoryBytes != 8192 {
		t.Errorf("sample %+v, want 0.5 cores and 8192 bytes", got)
	}
}

func TestUsageFromACgroup(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "cpu.stat"), []byte("usage_usec 1500000\nuser_usec 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "memory.current"), []byte("4096\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cpu, mem, err := readCgroup(dir)
	if err != nil || cpu != 1500*time.Millisecond || mem != 4096 {
		t.Errorf("readCgroup: %v %d %v", cpu, mem, err)
	}
	if _, _, err := readCgroup(filepath.Join(dir, "nosuch")); err == nil {
		t.Error("a missing cgroup reads")
	}
}

func TestUsageOfTheMachine(t *testing.T) {
	cpu, mem, err := readMachine()
	if err != nil || cpu <= 0 || mem <= 0 {
		t.Errorf("readMachine: %v %d %v", cpu, mem, err)
	}
}
