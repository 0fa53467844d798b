package transfer

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// tree is a directory tree reached only through file descriptors: every
// element of a path is opened relative to its parent with O_NOFOLLOW, so
// no symlink inside the tree is ever followed, whoever planted it (a
// hostile stream on the receiver, a container swapping a directory for a
// symlink under a running sender). Not safe for concurrent use.
type tree struct {
	path string   // the root's path, for messages and the root's own times
	root *os.File // the root directory
	// lastRel and last cache the most recently walked directory: the paths
	// of a sorted walk come in runs that share a parent.
	lastRel string
	last    *os.File
	// onMkdir, when set, hears of every directory dir creates.
	onMkdir func(rel string)
}

const (
	dirFlags  = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	readFlags = unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_CLOEXEC
)

// openTree opens the directory at path as a tree root.
func openTree(path string) (*tree, error) {
	fd, err := unix.Open(path, dirFlags, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return &tree{path: path, root: os.NewFile(uintptr(fd), path)}, nil
}

func (t *tree) close() {
	t.forget()
	t.root.Close()
}

// forget drops the cached directory; callers removing directories call it
// so a later walk does not use a descriptor of a deleted directory.
func (t *tree) forget() {
	if t.last != nil {
		t.last.Close()
	}
	t.lastRel, t.last = "", nil
}

// dir returns a descriptor of directory rel, valid until the next call.
// With create, missing directories are made (mode 0700: a receiver sets
// their real mode when the round ends).
func (t *tree) dir(rel string, create bool) (int, error) {
	if rel == "." {
		return int(t.root.Fd()), nil
	}
	if t.last != nil && rel == t.lastRel {
		return int(t.last.Fd()), nil
	}
	f, err := t.walk(rel, create)
	if err != nil {
		return -1, err
	}
	t.forget()
	t.lastRel, t.last = rel, f
	return int(f.Fd()), nil
}

// walk opens directory rel element by element from the root.
func (t *tree) walk(rel string, create bool) (*os.File, error) {
	cur := int(t.root.Fd())
	var opened *os.File
	done := ""
	for elem := range strings.SplitSeq(rel, "/") {
		done = joinPath(orRoot(done), elem)
		fd, err := openDirAt(cur, elem)
		if errors.Is(err, unix.ENOENT) && create {
			if err = unix.Mkdirat(cur, elem, 0o700); err == nil || errors.Is(err, unix.EEXIST) {
				if t.onMkdir != nil && err == nil {
					t.onMkdir(done)
				}
				fd, err = openDirAt(cur, elem)
			}
		}
		if opened != nil {
			opened.Close()
		}
		if err != nil {
			return nil, dirError(done, err)
		}
		opened = os.NewFile(uintptr(fd), done)
		cur = fd
	}
	return opened, nil
}

// orRoot returns "." for the empty path.
func orRoot(p string) string {
	if p == "" {
		return "."
	}
	return p
}

// dirError says why a path element could not be opened as a directory.
func dirError(rel string, err error) error {
	if notDir(err) {
		return fmt.Errorf("%s: not a directory (a symlink or a file is in the way): %w", rel, err)
	}
	return &os.PathError{Op: "open", Path: rel, Err: err}
}

// notDir reports whether err says a path element is not a directory.
func notDir(err error) bool {
	return errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR)
}

// openDirAt opens directory name in dirfd without following a symlink.
func openDirAt(dirfd int, name string) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, name, dirFlags, 0)
		if !errors.Is(err, unix.EINTR) {
			return fd, err
		}
	}
}

// parent returns a descriptor of rel's parent directory and rel's last
// element.
func (t *tree) parent(rel string, create bool) (int, string, error) {
	dir := parentOf(rel)
	fd, err := t.dir(dir, create)
	if err != nil {
		return -1, "", err
	}
	return fd, rel[len(rel)-len(lastElem(rel)):], nil
}

// lastElem returns a path's last element.
func lastElem(p string) string {
	return p[strings.LastIndexByte(p, '/')+1:]
}

// lstat stats rel without following it; found is false when it does not
// exist.
func (t *tree) lstat(rel string) (st unix.Stat_t, found bool, err error) {
	if rel == "." {
		err = unix.Fstat(int(t.root.Fd()), &st)
		return st, err == nil, err
	}
	fd, name, err := t.parent(rel, false)
	if err != nil {
		return st, false, err
	}
	err = unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) {
		return st, false, nil
	}
	return st, err == nil, err
}

// readlinkAt returns the target of symlink name in dirfd.
func readlinkAt(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
		if size > maxPath {
			return "", unix.ENAMETOOLONG
		}
	}
}

// removeAt removes name in dirfd and, for a directory, everything under
// it, never following a symlink. A missing name is not an error.
func removeAt(dirfd int, name string) error {
	err := unix.Unlinkat(dirfd, name, 0)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.EPERM) {
		return err
	}
	fd, err := openDirAt(dirfd, name)
	if err != nil {
		return err
	}
	d := os.NewFile(uintptr(fd), name)
	names, err := d.Readdirnames(-1)
	for _, n := range names {
		if err != nil {
			break
		}
		err = removeAt(fd, n)
	}
	d.Close()
	if err != nil {
		return err
	}
	return unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR)
}

// setTimes sets rel's modification time (and its access time to the same)
// without following a symlink.
func (t *tree) setTimes(rel string, mtime int64) error {
	ts := []unix.Timespec{unix.NsecToTimespec(mtime), unix.NsecToTimespec(mtime)}
	if rel == "." {
		return unix.UtimesNanoAt(unix.AT_FDCWD, t.path, ts, unix.AT_SYMLINK_NOFOLLOW)
	}
	fd, name, err := t.parent(rel, false)
	if err != nil {
		return err
	}
	return unix.UtimesNanoAt(fd, name, ts, unix.AT_SYMLINK_NOFOLLOW)
}
