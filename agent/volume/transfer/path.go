package transfer

import (
	"fmt"
	"io/fs"
	"regexp"
	"strings"
)

// maxPath bounds a path or symlink target (Linux's PATH_MAX).
const maxPath = 4096

// volumeName is what a volume may be called: Docker's rule for volume
// names, which also keeps "/", ".." and hidden names out of the directory
// names Dirs builds from it.
var volumeName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$`)

// checkVolume refuses a volume name that could reach outside its
// directories.
func checkVolume(name string) error {
	if !volumeName.MatchString(name) {
		return fmt.Errorf("bad volume name %q: want letters, digits, '_', '.', '-', starting with a letter or digit", name)
	}
	return nil
}

// checkPath refuses a tree path that is not a clean relative path: no
// leading or doubled "/", no "." or ".." element (except the root "."
// itself), no NUL, no element longer than NAME_MAX. Every path a receiver
// gets from the network passes here before it touches the disk.
func checkPath(p string) error {
	if p == "." {
		return nil
	}
	if len(p) > maxPath || !fs.ValidPath(p) || strings.IndexByte(p, 0) >= 0 {
		return fmt.Errorf("bad path %q: want a clean relative path", p)
	}
	for elem := range strings.SplitSeq(p, "/") {
		if len(elem) > 255 {
			return fmt.Errorf("bad path %q: element longer than 255 bytes", p)
		}
	}
	return nil
}

// parentOf returns the path of p's parent directory ("." for a top-level
// path).
func parentOf(p string) string {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return "."
	}
	return p[:i]
}

// joinPath joins a tree path and a name.
func joinPath(dir, name string) string {
	if dir == "." {
		return name
	}
	return dir + "/" + name
}

// depth is how many elements a tree path has (0 for the root).
func depth(p string) int {
	if p == "." {
		return 0
	}
	return strings.Count(p, "/") + 1
}
