package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// A host's processes (dockerd, containerd, shims, containers, and later the
// agent and server) all live under one cgroup2 directory, so that powering
// the host off is one write to cgroup.kill and nothing escapes it: container
// processes are reparented away from dockerd, but never leave their cgroup.

// cgroup2Root finds the machine's cgroup2 hierarchy: /sys/fs/cgroup on
// unified systems, /sys/fs/cgroup/unified on hybrid ones. On a machine with
// none, the lab mounts its own under runDir.
func cgroup2Root(runDir string) (string, error) {
	if root := findCgroup2Mount(); root != "" {
		return root, nil
	}
	own := filepath.Join(runDir, "cgroup2")
	if err := os.MkdirAll(own, 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", own, err)
	}
	if err := unix.Mount("cgroup2", own, "cgroup2", 0, ""); err != nil {
		return "", fmt.Errorf("mount a cgroup2 hierarchy on %s (the lab needs one to power hosts off): %w", own, err)
	}
	return own, nil
}

// findCgroup2Mount reads the root namespace's mount table for cgroup2.
func findCgroup2Mount() string {
	mounts := cgroupMounts()
	for _, m := range mounts {
		if m.fstype == "cgroup2" {
			return m.dir
		}
	}
	return ""
}

// cgroupMounts lists the cgroup hierarchies (v1 and v2) mounted on the
// machine. Docker creates a container's cgroup in every one of them.
func cgroupMounts() []mountEntry {
	var mounts []mountEntry
	for _, m := range readMounts() {
		if strings.HasPrefix(m.fstype, "cgroup") {
			mounts = append(mounts, m)
		}
	}
	return mounts
}

// mountEntry is one line of the mount table: where and what.
type mountEntry struct{ dir, fstype string }

// readMounts reads this process's mount table.
func readMounts() []mountEntry {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var mounts []mountEntry
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "36 25 0:31 / /sys/fs/cgroup/unified rw,relatime shared:10 - cgroup2 cgroup2 rw"
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		fields, fstype := strings.Fields(pre), strings.Fields(post)
		if ok && len(fields) >= 5 && len(fstype) > 0 {
			mounts = append(mounts, mountEntry{dir: fields[4], fstype: fstype[0]})
		}
	}
	return mounts
}

// removeLabCgroups removes the lab's (empty) cgroup directories from every
// hierarchy, or only one host's when host is not empty.
func removeLabCgroups(host string) error {
	var errs []error
	for _, m := range cgroupMounts() {
		dir := filepath.Join(m.dir, cgroupName, host)
		if _, err := os.Stat(dir); err == nil {
			errs = append(errs, removeCgroupTree(dir))
		}
	}
	return errors.Join(errs...)
}

// hostCgroup is a host's cgroup directory; daemons go in its "daemons"
// leaf and Docker puts containers beside it (cgroup-parent).
func hostCgroup(root, host string) string { return filepath.Join(root, cgroupName, host) }

// cgroupParent is the cgroup-parent a host's dockerd gives its containers,
// relative to every hierarchy's root.
func cgroupParent(host string) string { return "/" + cgroupName + "/" + host }

// daemonsCgroupProcs is the file a host's boot helper writes its pid to.
func daemonsCgroupProcs(root, host string) string {
	return filepath.Join(hostCgroup(root, host), "daemons", "cgroup.procs")
}

// makeHostCgroup creates a host's cgroup directories.
func makeHostCgroup(root, host string) error {
	dir := filepath.Join(hostCgroup(root, host), "daemons")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create cgroup for %s: %w", host, err)
	}
	return nil
}

// killCgroup kills every process under dir and waits until none is left.
// A missing dir has nothing left to kill.
func killCgroup(ctx context.Context, dir string) error {
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0); err != nil {
		return fmt.Errorf("kill processes in %s: %w", dir, err)
	}
	return waitEmpty(ctx, dir)
}

// waitEmpty polls until no process is left in the subtree.
func waitEmpty(ctx context.Context, dir string) error {
	for {
		b, err := os.ReadFile(filepath.Join(dir, "cgroup.events"))
		if err != nil {
			return fmt.Errorf("read %s: %w", dir, err)
		}
		if strings.Contains(string(b), "populated 0") {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("processes in %s did not die: %w", dir, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// removeCgroupTree removes cgroup directories deepest first: cgroupfs only
// lets an empty leaf be removed, and not with os.RemoveAll (the control
// files cannot be unlinked).
func removeCgroupTree(dir string) error {
	var dirs []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("walk %s: %w", dir, err)
	}
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	for _, d := range dirs {
		if err := unix.Rmdir(d); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("remove cgroup %s: %w", d, err)
		}
	}
	return nil
}

// cgroupPopulated says whether any process runs under dir.
func cgroupPopulated(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.events"))
	return err == nil && strings.Contains(string(b), "populated 1")
}
