package block

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// mountinfoPath is the calling thread's mount table. thread-self rather
// than self: /proc/self is the thread group leader, and a goroutine locked
// to a thread that entered another mount namespace must see its own table.
const mountinfoPath = "/proc/thread-self/mountinfo"

// mountEntry is one line of the mount table of the caller's mount
// namespace: what is mounted (device number, source) and where.
type mountEntry struct {
	id, parent int
	devno      uint64
	dir        string
	source     string
}

// mountsOf lists the mounts of the given loop devices.
func mountsOf(loops []loopDev) ([]mountEntry, error) {
	if len(loops) == 0 {
		return nil, nil
	}
	all, err := readMountinfo()
	if err != nil {
		return nil, err
	}
	var mine []mountEntry
	for _, m := range all {
		if slices.ContainsFunc(loops, func(l loopDev) bool { return l.devno == m.devno }) {
			mine = append(mine, m)
		}
	}
	return mine, nil
}

// mountsAt lists the mounts at dir, bottom first when stacked.
func mountsAt(dir string) ([]mountEntry, error) {
	all, err := readMountinfo()
	if err != nil {
		return nil, err
	}
	var at []mountEntry
	for _, m := range all {
		if m.dir == dir {
			at = append(at, m)
		}
	}
	return at, nil
}

// topOf finds the visible mount of a stack at one directory: the one no
// other mount of the stack sits on. The table's order is not enough, since
// propagation can list a mount before the one it covers.
func topOf(stack []mountEntry) (mountEntry, bool) {
	for _, m := range stack {
		covered := slices.ContainsFunc(stack, func(o mountEntry) bool { return o.parent == m.id })
		if !covered {
			return m, true
		}
	}
	return mountEntry{}, false
}

// readMountinfo reads the caller's mount table.
func readMountinfo() ([]mountEntry, error) {
	f, err := os.Open(mountinfoPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var mounts []mountEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		m, err := parseMountinfoLine(sc.Text())
		if err != nil {
			return nil, err
		}
		mounts = append(mounts, m)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", mountinfoPath, err)
	}
	return mounts, nil
}

// parseMountinfoLine parses one line, e.g.
// "36 25 7:3 / /var/lib/vol/a rw,nosuid shared:10 - ext4 /dev/loop3 rw".
func parseMountinfoLine(line string) (mountEntry, error) {
	pre, post, ok := strings.Cut(line, " - ")
	fields, tail := strings.Fields(pre), strings.Fields(post)
	if !ok || len(fields) < 5 || len(tail) < 2 {
		return mountEntry{}, fmt.Errorf("unexpected line in %s: %q", mountinfoPath, line)
	}
	id, err1 := strconv.Atoi(fields[0])
	parent, err2 := strconv.Atoi(fields[1])
	devno, err3 := parseDevno(fields[2])
	if err1 != nil || err2 != nil || err3 != nil {
		return mountEntry{}, fmt.Errorf("unexpected line in %s: %q", mountinfoPath, line)
	}
	return mountEntry{id: id, parent: parent, devno: devno, dir: unescapeOctal(fields[4]), source: unescapeOctal(tail[1])}, nil
}

// parseDevno parses "major:minor" as found in mountinfo and in sysfs.
func parseDevno(s string) (uint64, error) {
	maj, min, ok := strings.Cut(strings.TrimSpace(s), ":")
	ma, err1 := strconv.ParseUint(maj, 10, 32)
	mi, err2 := strconv.ParseUint(min, 10, 32)
	if !ok || err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bad device number %q", s)
	}
	return unix.Mkdev(uint32(ma), uint32(mi)), nil
}

// unescapeOctal undoes the kernel's escaping of space, tab, newline and
// backslash in mountinfo paths (\040, \011, \012, \134).
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1:i+4]) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// isOctal says whether s is three octal digits.
func isOctal(s string) bool {
	for _, c := range []byte(s) {
		if c < '0' || c > '7' {
			return false
		}
	}
	return len(s) == 3
}
