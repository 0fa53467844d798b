package block

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"unicode"

	"golang.org/x/sys/unix"
)

// checkImagePath refuses image paths that are not absolute and clean (no
// "..", no "//", no trailing "/"), so that what the caller stored in the
// cluster state is exactly the file this package opens.
func checkImagePath(p string) error {
	return checkPath("image path", p)
}

// checkPaths checks an image path and a mountpoint.
func checkPaths(imagePath, mountpoint string) error {
	if err := checkImagePath(imagePath); err != nil {
		return err
	}
	if err := checkPath("mountpoint", mountpoint); err != nil {
		return err
	}
	if mountpoint == "/" {
		return errors.New("mountpoint / refused")
	}
	return nil
}

// checkPath refuses a path that is empty, relative or not clean.
func checkPath(what, p string) error {
	switch {
	case p == "":
		return fmt.Errorf("%s is empty", what)
	case strings.ContainsRune(p, 0):
		return fmt.Errorf("%s %q contains a NUL byte", what, p)
	case !filepath.IsAbs(p):
		return fmt.Errorf("%s %q is not absolute", what, p)
	case filepath.Clean(p) != p:
		return fmt.Errorf("%s %q is not clean (want %q)", what, p, filepath.Clean(p))
	case len(p) >= unix.PathMax:
		return fmt.Errorf("%s is longer than %d bytes", what, unix.PathMax)
	}
	return nil
}

// openImage opens an existing image without following a symlink at its
// last component, and only if it is a regular file: the lstat first keeps
// a FIFO or device from blocking or being bound, the fstat after proves
// the file opened is the file checked.
func openImage(p string, flag int) (*os.File, error) {
	before, err := os.Lstat(p)
	if err != nil {
		return nil, err
	}
	if !before.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is %s, not a regular file", p, kind(before.Mode()))
	}
	f, err := os.OpenFile(p, flag|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	after, err := f.Stat()
	if err != nil || !os.SameFile(before, after) {
		f.Close()
		return nil, fmt.Errorf("%s changed while being opened", p)
	}
	return f, nil
}

// kind names a file type for errors.
func kind(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "a symlink (the path must name the image itself)"
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "an irregular file"
}

// statImage returns the image's device, inode and size.
func statImage(f *os.File) (unix.Stat_t, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return st, fmt.Errorf("stat: %w", err)
	}
	return st, nil
}

// prepareMountpoint creates the mountpoint if it is missing, refuses one
// that is a symlink or not a directory, and returns it with the symlinks
// of its parents resolved (/var/run is /run on many systems), since that
// is how the mount table names it.
func prepareMountpoint(mp string) (string, error) {
	if err := os.MkdirAll(mp, 0o755); err != nil {
		return "", fmt.Errorf("create mountpoint: %w", err)
	}
	return resolveMountpoint(mp)
}

// resolveMountpoint is prepareMountpoint without creating anything: a
// missing mountpoint resolves through its parent.
func resolveMountpoint(mp string) (string, error) {
	fi, err := os.Lstat(mp)
	if errors.Is(err, fs.ErrNotExist) {
		parent, err := filepath.EvalSymlinks(filepath.Dir(mp))
		if err != nil {
			return mp, nil
		}
		return filepath.Join(parent, filepath.Base(mp)), nil
	}
	if err != nil {
		return "", err
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return "", fmt.Errorf("mountpoint %s is a symlink (refused)", mp)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("mountpoint %s is not a directory", mp)
	}
	return filepath.EvalSymlinks(mp)
}

// imageLocks serialises the operations on one image in this process.
// Docker may ask to mount one volume for two containers at once, and two
// racing Attach calls would each find it unmounted and mount it through two
// loop devices, which corrupts ext4. Other processes are kept out by the
// cluster lease, not by this.
var imageLocks = struct {
	sync.Mutex
	m map[string]*imageLock
}{m: map[string]*imageLock{}}

// imageLock is one image's lock and how many callers hold or wait for it.
type imageLock struct {
	sync.Mutex
	refs int
}

// lockImage locks the image and returns the unlock function.
func lockImage(p string) (unlock func()) {
	imageLocks.Lock()
	l := imageLocks.m[p]
	if l == nil {
		l = &imageLock{}
		imageLocks.m[p] = l
	}
	l.refs++
	imageLocks.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		imageLocks.Lock()
		if l.refs--; l.refs == 0 {
			delete(imageLocks.m, p)
		}
		imageLocks.Unlock()
	}
}

// show prints a path for an error: as it is, or quoted if it holds
// characters that would break the error's single line (newline, NUL).
func show(p string) string {
	if strings.ContainsFunc(p, func(r rune) bool { return !unicode.IsPrint(r) }) {
		return strconv.Quote(p)
	}
	return p
}

// oneLine squeezes a tool's output into one line for an error.
func oneLine(out []byte) string {
	s := string(bytes.Join(bytes.Fields(out), []byte(" ")))
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}
