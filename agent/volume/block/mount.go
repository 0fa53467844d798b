package block

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/cenkalti/backoff/v4"
	"golang.org/x/sys/unix"
)

// mountFlags: a volume holds data, so nothing in it may act as a setuid
// binary or a device node on the host or in another container.
const mountFlags = unix.MS_NOSUID | unix.MS_NODEV

// mountImage binds a loop device to the image with autoclear and mounts it
// at mp. Autoclear makes the kernel release the device when its last user
// goes: the unmount in Detach, or this process's exit if it dies before
// the mount, so a crash here leaves no loop device behind.
func mountImage(img *os.File, mp string) error {
	rw, l, err := setupLoop(img, unix.LO_FLAGS_AUTOCLEAR)
	if err != nil {
		return err
	}
	// Hold the device read-only during mount(2): kernels built without
	// CONFIG_BLK_DEV_WRITE_MOUNTED refuse to mount a device open for
	// writing, and one reference is enough to keep autoclear away.
	hold, err := os.OpenFile(l.dev, os.O_RDONLY|unix.O_CLOEXEC, 0)
	rw.Close()
	if err != nil {
		return fmt.Errorf("open %s: %w", l.dev, err)
	}
	defer hold.Close()
	if err := unix.Mount(l.dev, mp, "ext4", mountFlags, ""); err != nil {
		_, _ = clearLoop(hold, l.dev)
		return fmt.Errorf("mount %s (ext4) at %s: %w%s", l.dev, mp, err, mountHint(err))
	}
	return nil
}

// mountHint says what a mount error usually means for an image.
func mountHint(err error) string {
	switch {
	case errors.Is(err, unix.EINVAL):
		return " (is the image an ext4 filesystem made by Create?)"
	case errors.Is(err, unix.EUCLEAN), errors.Is(err, unix.EIO):
		return " (the filesystem is damaged: run e2fsck -f on the image while it is detached)"
	}
	return ""
}

// busyWait is how long an unmount that finds the filesystem busy tries
// again: a container that has just stopped keeps its mount of the volume
// until its mount namespace goes, a moment after its process (seen on a
// loaded lab: a move's detach right after the stop failed once in six).
const busyWait = 2 * time.Second

// unmount flushes the filesystem at mp and unmounts it, refusing (ErrBusy)
// while anything has files open there: never MNT_DETACH, which would leave
// the filesystem alive and writable behind a process.
func unmount(mp string) error {
	if err := syncfs(mp); err != nil {
		return err
	}
	b := backoff.WithMaxRetries(backoff.NewConstantBackOff(50*time.Millisecond), uint64(busyWait/(50*time.Millisecond)))
	err := backoff.Retry(func() error {
		err := unix.Unmount(mp, unix.UMOUNT_NOFOLLOW)
		if err != nil && !errors.Is(err, unix.EBUSY) {
			return backoff.Permanent(err)
		}
		return err
	}, b)
	if errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("%w: a process has files open (or its working directory) under %s; it stays attached", ErrBusy, mp)
	}
	if err != nil {
		return fmt.Errorf("unmount %s: %w", mp, err)
	}
	return nil
}

// syncfs writes the filesystem's dirty data and metadata to the image
// before the unmount (which syncs too, but then a write error would only
// be logged by the kernel, not returned).
func syncfs(mp string) error {
	f, err := os.OpenFile(mp, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("sync %s: %w", mp, err)
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("sync %s: %w", mp, err)
	}
	return nil
}

// checkEmpty refuses a bare mountpoint that holds files: the mount would
// hide them, and they usually mean something wrote there while the volume
// was not attached, data that the caller should look at, not lose.
func checkEmpty(mp string) error {
	f, err := os.Open(mp)
	if err != nil {
		return err
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if errors.Is(err, io.EOF) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", mp, err)
	}
	return fmt.Errorf("mountpoint %s is not empty (it holds %s, which the mount would hide)", mp, names[0])
}

// checkNoMount is Detach for an image that does not exist: nothing can be
// attached from it, unless a filesystem at mp is what is left of it.
func checkNoMount(mp string) error {
	stack, err := mountsAt(mp)
	if err != nil {
		return err
	}
	if top, ok := topOf(stack); ok {
		return fmt.Errorf("the image does not exist, yet %s has a filesystem mounted (%s); not touching it", mp, top.source)
	}
	return nil
}
