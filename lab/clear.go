package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// clearTimeout bounds how long killing a lab's processes may take.
const clearTimeout = 30 * time.Second

// clear removes everything any lab left on the machine, found by the lab's
// fixed names rather than by the state file, which may be gone or stale. It
// returns what it found, for the user.
func (lab *Lab) clear(ctx context.Context) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, clearTimeout)
	defer cancel()
	var found []string
	note := func(what string, ok bool) {
		if ok {
			found = append(found, what)
		}
	}
	cgDir := labCgroupDir(lab.Layout.RunDir)
	note("processes", cgDir != "" && cgroupPopulated(cgDir))
	if cgDir != "" {
		if err := killCgroup(ctx, cgDir); err != nil {
			return found, err
		}
	}
	if err := removeLabCgroups(""); err != nil {
		return found, err
	}
	hosts, bridge := leftoverNetworks()
	note(fmt.Sprintf("%d host networks", len(hosts)), len(hosts) > 0)
	for _, h := range hosts {
		if err := unplugHost(h); err != nil {
			return found, err
		}
	}
	note("bridge "+bridgeName, bridge)
	if err := removeBridge(); err != nil {
		return found, err
	}
	note("iptables rules", hasLabRules())
	if err := removeLabRules(); err != nil {
		return found, err
	}
	dirs := []string{lab.Layout.RunDir, lab.Layout.StateDir}
	mounts := mountsUnder(dirs...)
	note(fmt.Sprintf("%d mounts", len(mounts)), len(mounts) > 0)
	for _, m := range mounts {
		if err := unix.Unmount(m, unix.MNT_DETACH); err != nil {
			return found, fmt.Errorf("unmount %s: %w", m, err)
		}
	}
	for _, d := range dirs {
		_, err := os.Stat(d)
		note("files in "+d, err == nil)
		if err := os.RemoveAll(d); err != nil {
			return found, fmt.Errorf("remove %s: %w", d, err)
		}
		_ = os.Remove(filepath.Dir(d)) // the parent too, if the lab was all it held
	}
	return found, nil
}

// labCgroupDir is the lab's cgroup2 directory, or "" if there is none.
func labCgroupDir(runDir string) string {
	root := findCgroup2Mount()
	if root == "" {
		return ""
	}
	dir := filepath.Join(root, cgroupName)
	if _, err := os.Stat(dir); err != nil {
		return ""
	}
	return dir
}

// mountsUnder lists the root namespace's mount points inside dirs, deepest
// first, so that they can be unmounted before the dirs are removed (removing
// a directory tree through a mount would delete the mounted data).
func mountsUnder(dirs ...string) []string {
	var mounts []string
	for _, m := range readMounts() {
		for _, d := range dirs {
			if m.dir == d || strings.HasPrefix(m.dir, d+"/") {
				mounts = append(mounts, m.dir)
			}
		}
	}
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i]) > len(mounts[j]) })
	return mounts
}
