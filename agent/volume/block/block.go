package block

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"
)

const (
	// MinSize is the smallest image Create makes: below it the journal and
	// the metadata take most of the filesystem and it holds next to
	// nothing.
	MinSize = 16 << 20
	// MaxSize is the largest image Create makes: well past what one volume
	// should hold, so a bigger size is taken for a unit mistake rather
	// than honoured (it would cost little disk, being sparse, but mkfs and
	// every mount would carry the metadata of a huge filesystem).
	MaxSize = 16 << 40
)

var (
	// ErrBusy says the filesystem could not be unmounted because a process
	// still has files open (or its working directory) in it; the volume
	// stays attached and the caller may retry once the process is gone.
	ErrBusy = errors.New("busy")
	// ErrInUse says the image is attached somewhere else (another
	// mountpoint, or another mount namespace on this kernel): attaching it
	// a second time would corrupt it, so the caller must detach it there.
	ErrInUse = errors.New("in use")
)

// State is what Status reports about one image on this host.
type State struct {
	// Attached says a loop device is bound to the image. With no
	// Mountpoints it is either left over from a crash (Attach and Detach
	// clean it up) or mounted in another mount namespace on this kernel.
	Attached bool
	// Loop is the loop device, e.g. /dev/loop3 ("" when not attached).
	Loop string
	// Mountpoints are where the image's filesystem is mounted in the
	// caller's mount namespace (normally one).
	Mountpoints []string
	// SizeBytes is the image's size, the filesystem's capacity.
	SizeBytes int64
}

// Create makes a new volume: a sparse image file of size bytes at imagePath
// with an empty ext4 filesystem in it. The directory must already exist: a
// missing one usually means the shared storage is not mounted, and creating
// it would put the volume on a local disk that no other host sees. It
// refuses an existing file (it never formats over data). The image is made
// under a temporary name (imagePath + ".creating-*") and linked into place
// only once complete, so that imagePath is always a whole filesystem, even
// if the agent dies half-way; a failed Create removes its temporary file, a
// killed one leaves it behind for the caller to sweep.
func Create(ctx context.Context, imagePath string, size int64) error {
	if err := create(ctx, imagePath, size); err != nil {
		return fmt.Errorf("create %s: %w", show(imagePath), err)
	}
	return nil
}

// create is Create without the error's context.
func create(ctx context.Context, imagePath string, size int64) error {
	if err := checkImagePath(imagePath); err != nil {
		return err
	}
	if size < MinSize || size > MaxSize {
		return fmt.Errorf("size %d bytes is out of range (%d MiB to %d TiB)", size, MinSize>>20, MaxSize>>40)
	}
	if _, err := os.Lstat(imagePath); err == nil {
		return errors.New("it exists already; Create never formats over a file")
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	tmp, err := createSparse(imagePath, size)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := makeFilesystem(ctx, tmp); err != nil {
		return err
	}
	// link, not rename: it fails if imagePath appeared meanwhile, on
	// every filesystem (NFS has no RENAME_NOREPLACE).
	if err := os.Link(tmp, imagePath); err != nil {
		return err
	}
	return syncDir(filepath.Dir(imagePath))
}

// syncDir makes the new image's name durable: after a crash the cluster
// state says the volume exists, so its file must too.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// createSparse makes a temporary image file next to imagePath without
// writing its blocks, so that a 10 GiB volume costs no disk until it is
// filled, and returns its name.
func createSparse(imagePath string, size int64) (string, error) {
	dir := filepath.Dir(imagePath)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("directory %s does not exist (is the shared storage mounted?)", dir)
	}
	f, err := os.CreateTemp(dir, filepath.Base(imagePath)+".creating-*")
	if err != nil {
		return "", err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), f.Close()
}

// makeFilesystem runs mkfs.ext4 with options that keep it fast on a big
// sparse file: the inode tables and the journal are not zeroed (the holes
// already read as zeros) and nothing is discarded. No blocks are reserved
// for root, since a volume holds application data, not a system. Then it
// removes lost+found, so the volume starts empty like a Docker volume:
// databases (postgres, mysql) refuse to initialise a non-empty directory;
// e2fsck makes lost+found again when it needs one.
func makeFilesystem(ctx context.Context, imagePath string) error {
	if err := run(ctx, "mkfs.ext4", "-F", "-q", "-m", "0",
		"-E", "lazy_itable_init=1,lazy_journal_init=1,nodiscard", imagePath); err != nil {
		return err
	}
	return run(ctx, "debugfs", "-w", "-R", "rmdir lost+found", imagePath)
}

// run runs a tool from e2fsprogs and turns a failure into one line.
func run(ctx context.Context, name string, args ...string) error {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", name, err, oneLine(out))
	}
	return nil
}

// Attach makes the image's filesystem mounted at mountpoint, creating the
// mountpoint directory if it is missing. It is idempotent: if the image is
// already mounted there it succeeds at once. It refuses if the image is
// mounted anywhere else (ErrInUse), if another filesystem is mounted at
// mountpoint, or if the bare mountpoint directory holds files (they would be
// hidden under the mount; usually a sign that something wrote there while
// the volume was not attached). A loop device of the image left over from a
// crash (bound, not mounted) is released first rather than reused, because
// it may have been set up with other flags (read-only, no autoclear).
//
// The mount is nosuid and nodev: a volume holds data, and a setuid binary
// or device node written into it by one container must not gain powers on
// the host or in another container.
func Attach(ctx context.Context, imagePath, mountpoint string) error {
	if err := checkPaths(imagePath, mountpoint); err != nil {
		return fmt.Errorf("attach %s at %s: %w", show(imagePath), show(mountpoint), err)
	}
	defer lockImage(imagePath)()
	if err := attach(ctx, imagePath, mountpoint); err != nil {
		return fmt.Errorf("attach %s at %s: %w", show(imagePath), show(mountpoint), err)
	}
	return nil
}

// attach is Attach once the inputs are checked and the image is locked.
func attach(ctx context.Context, imagePath, mountpoint string) error {
	img, err := openImage(imagePath, os.O_RDWR)
	if err != nil {
		return err
	}
	defer img.Close()
	mp, err := prepareMountpoint(mountpoint)
	if err != nil {
		return err
	}
	v, err := look(img)
	if err != nil {
		return err
	}
	stack, err := mountsAt(mp)
	if err != nil {
		return err
	}
	if top, ok := topOf(stack); ok {
		if v.owns(top.devno) {
			return nil
		}
		return fmt.Errorf("%s already has another filesystem mounted (%s)", mp, top.source)
	}
	if err := v.checkFree(); err != nil {
		return err
	}
	if err := checkEmpty(mp); err != nil {
		return err
	}
	if err := releaseLeftovers(v.loops, imagePath); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return mountImage(img, mp)
}

// Detach syncs and unmounts the image's filesystem at mountpoint and
// releases every loop device bound to the image. It is idempotent: nothing
// attached (or no image at all, once removed) is success. If a process has
// files open in the filesystem it fails with ErrBusy and leaves the volume
// attached: it never unmounts lazily, since a lazy unmount would let the
// process keep writing to an image that another host is about to mount.
// It also fails (ErrInUse) if the image stays mounted somewhere else, so
// success means no loop device of this kernel uses the image any more;
// that includes a copy of the mount in another mount namespace (made by
// whatever created a namespace while the volume was attached), which
// keeps the filesystem alive after the unmount here: Detach waits up to
// releaseWait for such a copy to go, then reports it.
func Detach(ctx context.Context, imagePath, mountpoint string) error {
	if err := checkPaths(imagePath, mountpoint); err != nil {
		return fmt.Errorf("detach %s from %s: %w", show(imagePath), show(mountpoint), err)
	}
	defer lockImage(imagePath)()
	if err := detach(ctx, imagePath, mountpoint); err != nil {
		return fmt.Errorf("detach %s from %s: %w", show(imagePath), show(mountpoint), err)
	}
	return nil
}

// detach is Detach once the inputs are checked and the image is locked.
func detach(ctx context.Context, imagePath, mountpoint string) error {
	mp, err := resolveMountpoint(mountpoint)
	if err != nil {
		return err
	}
	img, err := openImage(imagePath, os.O_RDONLY)
	if errors.Is(err, fs.ErrNotExist) {
		return checkNoMount(mp)
	}
	if err != nil {
		return err
	}
	defer img.Close()
	v, err := look(img)
	if err != nil {
		return err
	}
	if err := v.unmountAt(mp); err != nil {
		return err
	}
	return releaseAll(ctx, img)
}

// releaseWait is how long Detach waits for the filesystem to be let go
// by a copy of the mount in another mount namespace: a container being
// created copies its host's mount table, and holds the copy for a few
// milliseconds until runc pivots into the container's root.
const releaseWait = 2 * time.Second

// releaseAll looks at the image's loop devices again after the unmount
// (autoclear has normally released them already) and releases the rest,
// waiting a little for copies of the mount in other namespaces to go.
func releaseAll(ctx context.Context, img *os.File) error {
	deadline := time.Now().Add(releaseWait)
	for delay := 5 * time.Millisecond; ; delay = min(2*delay, 200*time.Millisecond) {
		v, err := look(img)
		if err != nil {
			return err
		}
		if len(v.mounts) > 0 {
			return fmt.Errorf("%w: still mounted at %s", ErrInUse, v.mounts[0].dir)
		}
		err = releaseLeftovers(v.loops, img.Name())
		if !errors.Is(err, ErrInUse) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(delay):
		}
	}
}

// Status says whether the image is attached on this host and where: its
// loop device (from the kernel's loop devices, matched by the backing
// file's device and inode) and its mountpoints in the caller's mount
// namespace (from /proc/thread-self/mountinfo). It changes nothing.
func Status(imagePath string) (State, error) {
	if err := checkImagePath(imagePath); err != nil {
		return State{}, fmt.Errorf("status of %s: %w", show(imagePath), err)
	}
	img, err := openImage(imagePath, os.O_RDONLY)
	if err != nil {
		return State{}, fmt.Errorf("status of %s: %w", show(imagePath), err)
	}
	defer img.Close()
	v, err := look(img)
	if err != nil {
		return State{}, fmt.Errorf("status of %s: %w", show(imagePath), err)
	}
	return v.state(), nil
}

// Remove deletes the image, and with it the volume's data. It refuses while
// any loop device uses the image, mounted or not, since the kernel would
// keep the deleted file alive behind it. Removing a missing image succeeds,
// so that a retry after a crash does not fail.
func Remove(imagePath string) error {
	if err := checkImagePath(imagePath); err != nil {
		return fmt.Errorf("remove %s: %w", show(imagePath), err)
	}
	defer lockImage(imagePath)()
	if err := remove(imagePath); err != nil {
		return fmt.Errorf("remove %s: %w", show(imagePath), err)
	}
	return nil
}

// remove is Remove once the input is checked and the image is locked.
func remove(imagePath string) error {
	img, err := openImage(imagePath, os.O_RDONLY)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer img.Close()
	v, err := look(img)
	if err != nil {
		return err
	}
	if len(v.loops) > 0 {
		return fmt.Errorf("%w: attached via %s%s; detach it first", ErrInUse, v.loops[0].dev, v.where())
	}
	return os.Remove(imagePath)
}

// view is what this host's kernel says about one image: the loop devices
// bound to it and their mounts in this mount namespace.
type view struct {
	size   int64
	loops  []loopDev
	mounts []mountEntry
}

// look gathers the view of an open image.
func look(img *os.File) (view, error) {
	st, err := statImage(img)
	if err != nil {
		return view{}, err
	}
	loops, err := findLoops(st.Dev, st.Ino)
	if err != nil {
		return view{}, err
	}
	mounts, err := mountsOf(loops)
	if err != nil {
		return view{}, err
	}
	return view{size: st.Size, loops: loops, mounts: mounts}, nil
}

// owns says whether a device number is one of the image's loop devices.
func (v view) owns(devno uint64) bool {
	return slices.ContainsFunc(v.loops, func(l loopDev) bool { return l.devno == devno })
}

// checkFree refuses an image that is already mounted: at another place in
// this mount namespace, or in another namespace on this kernel (then its
// loop device is claimed by a filesystem we cannot see).
func (v view) checkFree() error {
	if len(v.mounts) > 0 {
		return fmt.Errorf("%w: already mounted at %s; detach it there first", ErrInUse, v.mounts[0].dir)
	}
	for _, l := range v.loops {
		if claimed(l) {
			return inOtherNamespace(l)
		}
	}
	return nil
}

// maxStacked bounds how many times Detach unmounts the image at one place
// (it was mounted over itself): a safety net against looping forever.
const maxStacked = 8

// unmountAt syncs and unmounts the image's filesystem at mp, as long as it
// is the top mount there, and never touches a filesystem that is not the
// image's.
func (v view) unmountAt(mp string) error {
	for range maxStacked {
		stack, err := mountsAt(mp)
		if err != nil {
			return err
		}
		top, ok := topOf(stack)
		if !ok {
			return nil
		}
		if !v.owns(top.devno) {
			if slices.ContainsFunc(stack, func(m mountEntry) bool { return v.owns(m.devno) }) {
				return fmt.Errorf("%s has another filesystem (%s) mounted over the image's", mp, top.source)
			}
			return nil
		}
		if err := unmount(mp); err != nil {
			return err
		}
	}
	return fmt.Errorf("the image is mounted at %s more than %d times", mp, maxStacked)
}

// where says where the image is mounted in this namespace, for errors.
func (v view) where() string {
	if len(v.mounts) == 0 {
		return ""
	}
	return " mounted at " + v.mounts[0].dir
}

// state turns the view into the exported State.
func (v view) state() State {
	s := State{Attached: len(v.loops) > 0, SizeBytes: v.size}
	for _, m := range v.mounts {
		s.Mountpoints = append(s.Mountpoints, m.dir)
	}
	if len(v.loops) > 0 {
		s.Loop = v.loops[0].dev
	}
	for _, l := range v.loops {
		if slices.ContainsFunc(v.mounts, func(m mountEntry) bool { return m.devno == l.devno }) {
			s.Loop = l.dev
		}
	}
	return s
}

// releaseLeftovers releases loop devices of the image that nothing mounts.
func releaseLeftovers(loops []loopDev, imagePath string) error {
	for _, l := range loops {
		released, err := releaseLoop(l)
		if err != nil {
			return err
		}
		if released {
			slog.Info("released a loop device left over from an earlier attach", "image", imagePath, "loop", l.dev)
		}
	}
	return nil
}
