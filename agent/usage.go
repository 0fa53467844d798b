package agent

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/clusterctl/clusterctl/store"
)

// usageSampler measures what the host uses: CPU (cores busy since the last
// sample) and memory. With a cgroup (v2, a path below /sys/fs/cgroup) it
// reads that cgroup's counters, which is how a lab host, a cgroup on a
// shared machine, measures its own; without, the whole machine's
// (/proc/stat, /proc/meminfo).
type usageSampler struct {
	read     func() (cpu time.Duration, mem int64, err error)
	lastCPU  time.Duration
	lastTime time.Time
}

// newUsageSampler measures a cgroup, or the machine for "".
func newUsageSampler(cgroup string) usageSampler {
	if cgroup == "" {
		return usageSampler{read: readMachine}
	}
	dir := filepath.Join("/sys/fs/cgroup", cgroup)
	return usageSampler{read: func() (time.Duration, int64, error) { return readCgroup(dir) }}
}

// sample returns the usage since the previous sample (nil on the first
// call, and when the counters cannot be read: usage is only shown).
func (u *usageSampler) sample(now time.Time) *store.HostUsage {
	cpu, mem, err := u.read()
	if err != nil {
		return nil
	}
	prevCPU, prevTime := u.lastCPU, u.lastTime
	u.lastCPU, u.lastTime = cpu, now
	if prevTime.IsZero() || !now.After(prevTime) {
		return nil
	}
	cores := float64(cpu-prevCPU) / float64(now.Sub(prevTime))
	return &store.HostUsage{CPUCores: max(0, cores), MemoryBytes: mem, At: now.UTC()}
}

// readCgroup reads a cgroup v2's cpu.stat usage_usec and memory.current.
func readCgroup(dir string) (time.Duration, int64, error) {
	stat, err := os.ReadFile(filepath.Join(dir, "cpu.stat"))
	if err != nil {
		return 0, 0, err
	}
	var usec int64
	for line := range strings.SplitSeq(string(stat), "\n") {
		if v, ok := strings.CutPrefix(line, "usage_usec "); ok {
			usec, err = strconv.ParseInt(v, 10, 64)
			if err != nil {
				return 0, 0, fmt.Errorf("cpu.stat: %w", err)
			}
		}
	}
	mem, err := os.ReadFile(filepath.Join(dir, "memory.current"))
	if err != nil {
		return 0, 0, err
	}
	bytes, err := strconv.ParseInt(strings.TrimSpace(string(mem)), 10, 64)
	return time.Duration(usec) * time.Microsecond, bytes, err
}

// clockTick is USER_HZ, the unit of /proc/stat on Linux.
const clockTick = 100

// readMachine reads the machine's busy CPU time (/proc/stat: all but idle
// and iowait) and its memory in use (/proc/meminfo: total - available).
func readMachine() (time.Duration, int64, error) {
	stat, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := bytes.Cut(stat, []byte("\n"))
	fields := strings.Fields(string(line))
	if len(fields) < 6 || fields[0] != "cpu" {
		return 0, 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	var busy int64
	for i, f := range fields[1:] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/stat: %w", err)
		}
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	mem, err := memInUse()
	return time.Duration(busy) * time.Second / clockTick, mem, err
}

// memInUse is MemTotal - MemAvailable from /proc/meminfo, in bytes.
func memInUse() (int64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var total, avail int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var kb int64
		var name string
		if _, err := fmt.Sscanf(sc.Text(), "%s %d", &name, &kb); err != nil {
			continue
		}
		switch name {
		case "MemTotal:":
			total = kb << 10
		case "MemAvailable:":
			avail = kb << 10
		}
	}
	if total == 0 {
		return 0, fmt.Errorf("/proc/meminfo: no MemTotal")
	}
	return total - avail, sc.Err()
}
