package block

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// privateNSEnv marks the test binary re-executed in its own mount
// namespace.
const privateNSEnv = "BLOCK_TEST_PRIVATE_MOUNT_NS"

// TestMain runs the tests in a private mount namespace of their own, so
// that their mounts never leak into namespaces that other programs create
// meanwhile (a lab host booting copies the machine's mount table and would
// keep a test volume alive), and so that a crashed test run leaves no
// mount behind: the namespace dies with it, and autoclear frees the loop
// devices. Without root it runs the tests as they are, and they fail
// saying why.
func TestMain(m *testing.M) {
	if os.Getenv(privateNSEnv) != "" || os.Geteuid() != 0 {
		os.Exit(m.Run())
	}
	cmd := exec.Command(os.Args[0], os.Args[1:]...)
	cmd.Env = append(os.Environ(), privateNSEnv+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS} // and makes / private
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		os.Exit(exit.ExitCode())
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "run the tests in a private mount namespace: %v\n", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// requireLoop fails (never skips) a test that needs what this package
// needs: root, loop devices and e2fsprogs. A skipped test would let CI pass
// without ever attaching a volume.
func requireLoop(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("these tests make loop devices and mount filesystems, which needs root: run them as root (sudo go test ./agent/volume/block/)")
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		t.Fatalf("no loop devices on this machine (%v): load the loop module (modprobe loop)", err)
	}
	for _, tool := range []string{"mkfs.ext4", "debugfs"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing: install e2fsprogs", tool)
		}
	}
}

// newImage creates an image of size bytes in a fresh directory and makes
// sure, even if the test fails, that nothing of it stays mounted or bound.
func newImage(t testing.TB, dir string, size int64) string {
	t.Helper()
	requireLoop(t)
	img := filepath.Join(dir, "vol.img")
	if err := Create(context.Background(), img, size); err != nil {
		t.Fatal(err)
	}
	cleanupImage(t, img)
	if names, _ := filepath.Glob(img + ".creating-*"); len(names) > 0 {
		t.Fatalf("Create left %v behind", names)
	}
	return img
}

// cleanupImage unmounts and releases everything of the image when the
// test ends (lazily only if a plain unmount fails, and then it complains).
func cleanupImage(t testing.TB, img string) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(img, &st); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		loops, _ := findLoops(st.Dev, st.Ino)
		mounts, _ := mountsOf(loops)
		for i := len(mounts) - 1; i >= 0; i-- {
			if err := unix.Unmount(mounts[i].dir, 0); err != nil && !errors.Is(err, unix.EINVAL) {
				t.Errorf("cleanup: unmount %s: %v; detaching it lazily", mounts[i].dir, err)
				_ = unix.Unmount(mounts[i].dir, unix.MNT_DETACH)
			}
		}
		// A mount in a dying mount namespace (TestOtherNamespace) lets go
		// of its loop device a moment later: try for a while.
		deadline := time.Now().Add(3 * time.Second)
		for {
			err := releaseImageLoops(st.Dev, st.Ino)
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("cleanup of %s: %v", img, err)
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

// releaseImageLoops releases the loop devices of an image, or says why not.
func releaseImageLoops(dev, ino uint64) error {
	loops, err := findLoops(dev, ino)
	if err != nil {
		return err
	}
	for _, l := range loops {
		if _, err := releaseLoop(l); err != nil {
			return err
		}
	}
	if left, _ := findLoops(dev, ino); len(left) > 0 {
		return fmt.Errorf("%d loop devices left", len(left))
	}
	return nil
}

// loopsOf lists the image's loop devices.
func loopsOf(t testing.TB, img string) []loopDev {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(img, &st); err != nil {
		t.Fatal(err)
	}
	loops, err := findLoops(st.Dev, st.Ino)
	if err != nil {
		t.Fatal(err)
	}
	return loops
}

// mustStatus is Status that fails the test on error.
func mustStatus(t testing.TB, img string) State {
	t.Helper()
	s, err := Status(img)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// leaveLoop does only the loop step of an attach, without autoclear, as a
// crashed agent (or a manual losetup) would leave it: bound, not mounted.
func leaveLoop(t testing.TB, img string) loopDev {
	t.Helper()
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lf, l, err := setupLoop(f, 0)
	if err != nil {
		t.Fatal(err)
	}
	lf.Close()
	return l
}
