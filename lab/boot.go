package lab

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// BootArgs is the hidden subcommand the lab runs inside a host's fresh
// namespaces; the CLI must route it to Boot with the spec path after it.
var BootArgs = []string{"lab", "boot"}

// bootSpec is what the boot helper needs to turn a process that just entered
// a host's namespaces into that host's dockerd.
type bootSpec struct {
	Hostname    string   `json:"hostname"`
	CgroupProcs string   `json:"cgroup_procs"`
	SaveDir     string   `json:"save_dir"` // scratch mount point used while /sys is replaced
	Binds       []bind   `json:"binds"`
	Command     []string `json:"command"`
}

// bind is a directory of the host's own that hides a machine-wide one.
type bind struct {
	Source string `json:"source"`
	Target string `json:"target"`
}

// Boot runs inside a host's network namespace and a new mount and UTS
// namespace (the lab starts it that way) and execs the host's dockerd. It
// returns only on failure.
//
// Each step is needed for a dockerd to believe it has a machine of its own:
// sysfs must be remounted to show the host's network devices, but that hides
// the cgroup mounts, which are carried over; /run/docker (plugin sockets),
// /run/containerd (so dockerd runs its own containerd in these namespaces,
// not the machine's) and /etc/docker (the engine's identity key) are the
// host's own directories.
func Boot(specPath string) error {
	b, err := os.ReadFile(specPath)
	if err != nil {
		return fmt.Errorf("boot: %w", err)
	}
	var spec bootSpec
	if err := json.Unmarshal(b, &spec); err != nil {
		return fmt.Errorf("boot: read %s: %w", specPath, err)
	}
	// Join the host's cgroup first, so that everything started from here on
	// is killed when the host powers off.
	if err := os.WriteFile(spec.CgroupProcs, []byte(strconv.Itoa(os.Getpid())), 0); err != nil {
		return fmt.Errorf("boot: join cgroup: %w", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("boot: make mounts private: %w", err)
	}
	if err := remountSys(spec.SaveDir); err != nil {
		return err
	}
	for _, b := range spec.Binds {
		if err := bindDir(b); err != nil {
			return err
		}
	}
	if err := unix.Sethostname([]byte(spec.Hostname)); err != nil {
		return fmt.Errorf("boot: set hostname: %w", err)
	}
	path, err := exec.LookPath(spec.Command[0])
	if err != nil {
		return fmt.Errorf("boot: %w", err)
	}
	return syscall.Exec(path, spec.Command, os.Environ())
}

// remountSys mounts a sysfs of the current network namespace on /sys and
// puts the machine's cgroup hierarchies back under it.
func remountSys(save string) error {
	if err := os.MkdirAll(save, 0o755); err != nil {
		return fmt.Errorf("boot: %w", err)
	}
	steps := []struct {
		src, dst, fstype string
		flags            uintptr
	}{
		{"/sys/fs/cgroup", save, "", unix.MS_BIND | unix.MS_REC},
		{"sysfs", "/sys", "sysfs", 0},
		{save, "/sys/fs/cgroup", "", unix.MS_BIND | unix.MS_REC},
	}
	for _, s := range steps {
		if err := unix.Mount(s.src, s.dst, s.fstype, s.flags, ""); err != nil {
			return fmt.Errorf("boot: mount %s on %s: %w", s.src, s.dst, err)
		}
	}
	if err := unix.Unmount(save, unix.MNT_DETACH); err != nil {
		return fmt.Errorf("boot: unmount %s: %w", save, err)
	}
	return nil
}

// bindDir mounts a host directory over a machine directory, creating both.
func bindDir(b bind) error {
	for _, d := range []string{b.Source, b.Target} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("boot: %w", err)
		}
	}
	if err := unix.Mount(b.Source, b.Target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("boot: bind %s on %s: %w", b.Source, b.Target, err)
	}
	return nil
}
