package block

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestCreateRefuses(t *testing.T) {
	requireLoop(t)
	ctx := context.Background()
	dir := t.TempDir()
	existing := filepath.Join(dir, "existing.img")
	if err := os.WriteFile(existing, []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(dir, "target.img")
	link := filepath.Join(dir, "link.img")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		path string
		size int64
	}{
		{"empty path", "", testSize},
		{"relative path", "vol.img", testSize},
		{"dot-dot", dir + "/x/../vol.img", testSize},
		{"trailing slash", dir + "/vol.img/", testSize},
		{"too small", filepath.Join(dir, "small.img"), MinSize - 1},
		{"negative", filepath.Join(dir, "neg.img"), -1},
		{"too big", filepath.Join(dir, "big.img"), MaxSize + 1},
		{"existing file", existing, testSize},
		{"symlink", link, testSize},
		{"missing directory", filepath.Join(dir, "nowhere", "vol.img"), testSize},
		{"NUL byte", dir + "/a\x00b", testSize},
	}
	for _, c := range cases {
		err := Create(ctx, c.path, c.size)
		if err == nil {
			t.Errorf("%s: Create(%q, %d) succeeded", c.name, c.path, c.size)
			continue
		}
		t.Logf("%s: %v", c.name, err)
	}
	if b, _ := os.ReadFile(existing); string(b) != "data" {
		t.Error("Create touched an existing file")
	}
	for _, p := range []string{target, filepath.Join(dir, "small.img"), filepath.Join(dir, "big.img")} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("a refused Create left %s behind", p)
		}
	}
}

// TestCreateCleansUpOnFailure: mkfs fails (cancelled), and the half-made
// file is gone so that a retry works.
func TestCreateCleansUpOnFailure(t *testing.T) {
	requireLoop(t)
	dir := t.TempDir()
	img := filepath.Join(dir, "vol.img")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Create(ctx, img, testSize); err == nil {
		t.Fatal("Create with a cancelled context succeeded")
	}
	if names := readDir(t, dir); len(names) != 0 {
		t.Fatalf("a failed Create left %v behind", names)
	}
	if err := Create(context.Background(), img, testSize); err != nil {
		t.Fatalf("retry: %v", err)
	}
}

func TestAttachRefuses(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	img := newImage(t, dir, testSize)
	garbage := filepath.Join(dir, "garbage.img")
	if err := os.WriteFile(garbage, make([]byte, testSize), 0o600); err != nil {
		t.Fatal(err)
	}
	cleanupImage(t, garbage)
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.img")
	if err := os.Symlink(img, link); err != nil {
		t.Fatal(err)
	}
	mp := func(name string) string { return filepath.Join(dir, name) }
	if err := os.Symlink(t.TempDir(), mp("mplink")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(mp("mpfile"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(mp("full/dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	tmpfs := mountTmpfs(t, mp("tmpfs"))
	cases := []struct {
		name, img, mp string
	}{
		{"relative image", "vol.img", mp("a")},
		{"relative mountpoint", img, "mnt"},
		{"unclean mountpoint", img, dir + "/x/../a"},
		{"root mountpoint", img, "/"},
		{"image symlink", link, mp("a")},
		{"image is a directory", dir, mp("a")},
		{"image is a fifo", fifo, mp("a")},
		{"image missing", mp("missing.img"), mp("a")},
		{"image not ext4", garbage, mp("g")},
		{"mountpoint symlink", img, mp("mplink")},
		{"mountpoint is a file", img, mp("mpfile")},
		{"mountpoint not empty", img, mp("full")},
		{"mountpoint has another filesystem", img, tmpfs},
	}
	for _, c := range cases {
		err := Attach(ctx, c.img, c.mp)
		if err == nil {
			t.Errorf("%s: Attach(%q, %q) succeeded", c.name, c.img, c.mp)
			continue
		}
		if c.img != "" && !strings.Contains(err.Error(), c.img) {
			t.Errorf("%s: the error does not name the image: %v", c.name, err)
		}
		t.Logf("%s: %v", c.name, err)
	}
	for _, p := range []string{img, garbage} {
		if n := len(loopsOf(t, p)); n != 0 {
			t.Errorf("refused attaches left %d loop devices of %s", n, p)
		}
	}
}

func TestDetachLeavesOtherFilesystems(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	img := newImage(t, dir, testSize)
	tmpfs := mountTmpfs(t, filepath.Join(dir, "tmpfs"))
	if err := Detach(ctx, img, tmpfs); err != nil {
		t.Fatalf("detach of an image that is not attached: %v", err)
	}
	if stack, _ := mountsAt(tmpfs); len(stack) != 1 {
		t.Fatalf("detach touched the tmpfs at %s", tmpfs)
	}
	link := filepath.Join(dir, "link.img")
	if err := os.Symlink(img, link); err != nil {
		t.Fatal(err)
	}
	if err := Detach(ctx, link, filepath.Join(dir, "a")); err == nil {
		t.Error("detach through a symlinked image path succeeded")
	}
	if err := Remove(link); err == nil {
		t.Error("remove of a symlink succeeded")
	}
	if err := Remove(dir); err == nil {
		t.Error("remove of a directory succeeded")
	}
	if _, err := os.Stat(img); err != nil {
		t.Fatalf("the image is gone: %v", err)
	}
	if _, err := Status("vol.img"); err == nil {
		t.Error("status of a relative path succeeded")
	}
}

// mountTmpfs mounts a small tmpfs at dir for the test, a filesystem that is
// not the image's.
func mountTmpfs(t *testing.T, dir string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, 0) })
	return dir
}

func TestParseMountinfo(t *testing.T) {
	m, err := parseMountinfoLine(`36 25 7:3 / /var/lib/my\040vol rw,nosuid shared:10 - ext4 /dev/loop3 rw`)
	if err != nil {
		t.Fatal(err)
	}
	if m.id != 36 || m.parent != 25 || m.devno != unix.Mkdev(7, 3) || m.dir != "/var/lib/my vol" || m.source != "/dev/loop3" {
		t.Fatalf("parsed %+v", m)
	}
	if _, err := parseMountinfoLine("garbage"); err == nil {
		t.Fatal("garbage parsed")
	}
	if got := unescapeOctal(`a\134b\011c\`); got != "a\\b\tc\\" {
		t.Fatalf("unescape = %q", got)
	}
}

func TestTopOf(t *testing.T) {
	stack := []mountEntry{{id: 50, parent: 40}, {id: 40, parent: 1}, {id: 60, parent: 50}}
	if top, ok := topOf(stack); !ok || top.id != 60 {
		t.Fatalf("top = %+v, want id 60", top)
	}
	if _, ok := topOf(nil); ok {
		t.Fatal("top of nothing")
	}
}
