package block

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// The loop devices are driven with ioctls from this process rather than
// with losetup: LOOP_CONFIGURE binds the file and sets the flags in one
// step (no window where a device is bound without autoclear), the errors
// are errnos rather than text to parse, and nothing depends on the version
// of util-linux in the host's image. They proved reliable on 6.x kernels;
// LOOP_SET_FD plus LOOP_SET_STATUS64 is the fallback for kernels before
// 5.8, which have no LOOP_CONFIGURE.

// loopDev is one bound loop device.
type loopDev struct {
	dev   string // /dev/loopN
	devno uint64 // its device number, as mountinfo shows it
	// backDev and backIno identify the backing file.
	backDev, backIno uint64
}

// getFreeRetries bounds how often setupLoop tries again when another
// process takes the free device between LOOP_CTL_GET_FREE and binding it.
const getFreeRetries = 16

// findLoops lists the loop devices whose backing file is the given inode.
// /sys/block/loop*/loop exists only for bound devices; the backing file is
// then compared by device and inode (LOOP_GET_STATUS64), not by the path
// in backing_file, which depends on the reader's mount namespace and says
// "(deleted)" once the file is gone.
func findLoops(dev, ino uint64) ([]loopDev, error) {
	entries, err := os.ReadDir("/sys/block")
	if err != nil {
		return nil, fmt.Errorf("list loop devices: %w", err)
	}
	var found []loopDev
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "loop") {
			continue
		}
		l, ok, err := boundLoop(e.Name())
		if err != nil {
			return nil, err
		}
		if ok && l.backDev == dev && l.backIno == ino {
			found = append(found, l)
		}
	}
	return found, nil
}

// boundLoop describes the loop device name (loopN) if it is bound; a
// device that is unbound, or is released while we look, is not.
func boundLoop(name string) (loopDev, bool, error) {
	sys := filepath.Join("/sys/block", name)
	if _, err := os.Stat(filepath.Join(sys, "loop", "backing_file")); err != nil {
		return loopDev{}, false, nil
	}
	raw, err := os.ReadFile(filepath.Join(sys, "dev"))
	if err != nil {
		return loopDev{}, false, nil
	}
	devno, err := parseDevno(string(raw))
	if err != nil {
		return loopDev{}, false, err
	}
	l := loopDev{dev: "/dev/" + name, devno: devno}
	info, err := loopStatus(l.dev)
	if errors.Is(err, unix.ENXIO) || errors.Is(err, os.ErrNotExist) {
		return loopDev{}, false, nil
	}
	if err != nil {
		return loopDev{}, false, err
	}
	l.backDev, l.backIno = info.Device, info.Inode
	return l, true, nil
}

// loopStatus reads a loop device's binding; ENXIO means unbound.
func loopStatus(dev string) (*unix.LoopInfo64, error) {
	f, err := os.OpenFile(dev, os.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := unix.IoctlLoopGetStatus64(int(f.Fd()))
	if err != nil {
		return nil, fmt.Errorf("read the binding of %s: %w", dev, err)
	}
	return info, nil
}

// claimed says whether a filesystem (in any mount namespace of this
// kernel) holds the loop device: mount claims a block device exclusively,
// so an exclusive open then fails with EBUSY.
func claimed(l loopDev) bool {
	f, err := os.OpenFile(l.dev, os.O_RDONLY|os.O_EXCL|unix.O_CLOEXEC, 0)
	if err != nil {
		return errors.Is(err, unix.EBUSY)
	}
	f.Close()
	return false
}

// inOtherNamespace is the error for a loop device that a filesystem holds
// although no mount of it is visible here.
func inOtherNamespace(l loopDev) error {
	return fmt.Errorf("%w: %s is mounted in another mount namespace (another host's, or one that copied this host's mounts while the volume was attached)", ErrInUse, l.dev)
}

// releaseLoop unbinds a loop device that nothing mounts, after checking
// (with the device held exclusively, so nobody mounts it meanwhile) that it
// still belongs to the same backing file. It says whether it released it:
// a device that autoclear released already is no error.
func releaseLoop(l loopDev) (bool, error) {
	f, err := os.OpenFile(l.dev, os.O_RDONLY|os.O_EXCL|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.EBUSY) {
		return false, inOtherNamespace(l)
	}
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("release %s: %w", l.dev, err)
	}
	defer f.Close()
	info, err := unix.IoctlLoopGetStatus64(int(f.Fd()))
	if errors.Is(err, unix.ENXIO) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("release %s: %w", l.dev, err)
	}
	if info.Device != l.backDev || info.Inode != l.backIno {
		return false, nil
	}
	return clearLoop(f, l.dev)
}

// clearLoop unbinds the loop device open as f.
func clearLoop(f *os.File, dev string) (bool, error) {
	err := unix.IoctlSetInt(int(f.Fd()), unix.LOOP_CLR_FD, 0)
	if errors.Is(err, unix.ENXIO) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("release %s: %w", dev, err)
	}
	return true, nil
}

// setupLoop binds a free loop device to the open image with the given
// flags and returns the device, open read-write, and its description.
func setupLoop(img *os.File, flags uint32) (*os.File, loopDev, error) {
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, loopDev{}, fmt.Errorf("open the loop control device (is the loop module loaded?): %w", err)
	}
	defer ctl.Close()
	for range getFreeRetries {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return nil, loopDev{}, fmt.Errorf("find a free loop device: %w", err)
		}
		f, err := bindLoop(fmt.Sprintf("loop%d", n), img, flags)
		if errors.Is(err, unix.EBUSY) {
			continue // another process bound it first
		}
		if err != nil {
			return nil, loopDev{}, err
		}
		l, ok, err := boundLoop(fmt.Sprintf("loop%d", n))
		if err != nil || !ok {
			f.Close()
			return nil, loopDev{}, fmt.Errorf("loop%d vanished after binding it: %v", n, err)
		}
		return f, l, nil
	}
	return nil, loopDev{}, fmt.Errorf("find a free loop device: still taken after %d tries", getFreeRetries)
}

// bindLoop opens /dev/<name> and binds it to the image.
func bindLoop(name string, img *os.File, flags uint32) (*os.File, error) {
	dev := "/dev/" + name
	f, err := os.OpenFile(dev, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dev, err)
	}
	if err := configure(f, img, flags); err != nil {
		f.Close()
		if errors.Is(err, unix.EBUSY) {
			return nil, err
		}
		return nil, fmt.Errorf("bind %s: %w", dev, err)
	}
	return f, nil
}

// configure binds the loop device f to img in one step (LOOP_CONFIGURE),
// or in two on kernels that lack it.
func configure(f, img *os.File, flags uint32) error {
	cfg := unix.LoopConfig{Fd: uint32(img.Fd())}
	cfg.Info.Flags = flags
	copy(cfg.Info.File_name[:unix.LO_NAME_SIZE-1], img.Name())
	err := unix.IoctlLoopConfigure(int(f.Fd()), &cfg)
	if !errors.Is(err, unix.ENOTTY) && !errors.Is(err, unix.EINVAL) {
		return err
	}
	if err := unix.IoctlSetInt(int(f.Fd()), unix.LOOP_SET_FD, int(img.Fd())); err != nil {
		return err
	}
	if err := unix.IoctlLoopSetStatus64(int(f.Fd()), &cfg.Info); err != nil {
		_, _ = clearLoop(f, f.Name())
		return err
	}
	return nil
}
