package block

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const testSize = 64 << 20

// TestMoveKeepsData is a move between two hosts: attach, write, detach,
// attach at another mountpoint, read back the same bytes.
func TestMoveKeepsData(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	img := newImage(t, dir, testSize)
	src, dst := filepath.Join(dir, "host1", "vol"), filepath.Join(dir, "host2", "vol")

	if err := Attach(ctx, img, src); err != nil {
		t.Fatal(err)
	}
	if names := readDir(t, src); len(names) != 0 {
		t.Errorf("a new volume holds %v, want it empty (no lost+found)", names)
	}
	s := mustStatus(t, img)
	if !s.Attached || !strings.HasPrefix(s.Loop, "/dev/loop") || !slices.Equal(s.Mountpoints, []string{src}) || s.SizeBytes != testSize {
		t.Fatalf("status after attach = %+v", s)
	}
	want := make([]byte, 3<<20+17)
	rand.Read(want)
	if err := os.WriteFile(filepath.Join(src, "data"), want, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Detach(ctx, img, src); err != nil {
		t.Fatal(err)
	}
	if s := mustStatus(t, img); s.Attached || s.Loop != "" || len(s.Mountpoints) != 0 {
		t.Fatalf("status after detach = %+v", s)
	}
	if err := Attach(ctx, img, dst); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dst, "data"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read back %d bytes that differ from the %d written", len(got), len(want))
	}
	if err := Detach(ctx, img, dst); err != nil {
		t.Fatal(err)
	}
}

func TestAttachTwiceIsNoop(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	img := newImage(t, dir, testSize)
	mp := filepath.Join(dir, "mnt")
	for range 2 {
		if err := Attach(ctx, img, mp); err != nil {
			t.Fatal(err)
		}
	}
	if s := mustStatus(t, img); !slices.Equal(s.Mountpoints, []string{mp}) {
		t.Fatalf("mountpoints = %v, want [%s]", s.Mountpoints, mp)
	}
	if n := len(loopsOf(t, img)); n != 1 {
		t.Fatalf("%d loop devices, want 1", n)
	}
}

// TestConcurrentAttach is Docker mounting one volume for two containers at
// once: one mount, one loop device.
func TestConcurrentAttach(t *testing.T) {
	dir := t.TempDir()
	img := newImage(t, dir, testSize)
	mp := filepath.Join(dir, "mnt")
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { errs[i] = Attach(context.Background(), img, mp) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if s := mustStatus(t, img); len(s.Mountpoints) != 1 || len(loopsOf(t, img)) != 1 {
		t.Fatalf("status = %+v with %d loop devices, want one mount on one device", s, len(loopsOf(t, img)))
	}
}

func TestDetachTwiceIsNoop(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	img := newImage(t, dir, testSize)
	mp := filepath.Join(dir, "mnt")
	if err := Detach(ctx, img, mp); err != nil {
		t.Fatalf("detach of a never attached volume: %v", err)
	}
	if err := Attach(ctx, img, mp); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := Detach(ctx, img, mp); err != nil {
			t.Fatal(err)
		}
	}
	if len(loopsOf(t, img)) != 0 {
		t.Fatal("a loop device is left after detach")
	}
}

func TestDetachBusy(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	img := newImage(t, dir, testSize)
	mp := filepath.Join(dir, "mnt")
	if err := Attach(ctx, img, mp); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(mp, "open"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	err = Detach(ctx, img, mp)
	if !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), mp) {
		t.Fatalf("detach with a file open = %v, want ErrBusy naming %s", err, mp)
	}
	t.Log(err)
	if s := mustStatus(t, img); !slices.Equal(s.Mountpoints, []string{mp}) {
		t.Fatalf("after a busy detach, mountpoints = %v, want still [%s]", s.Mountpoints, mp)
	}
	if _, err := f.WriteString("still writable"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := Detach(ctx, img, mp); err != nil {
		t.Fatal(err)
	}
}

func TestAttachElsewhereRefused(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	img := newImage(t, dir, testSize)
	mp1, mp2 := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	if err := Attach(ctx, img, mp1); err != nil {
		t.Fatal(err)
	}
	err := Attach(ctx, img, mp2)
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), mp1) {
		t.Fatalf("attach at a second place = %v, want ErrInUse naming %s", err, mp1)
	}
	t.Log(err)
	err = Detach(ctx, img, mp2)
	if !errors.Is(err, ErrInUse) {
		t.Fatalf("detach at a place it is not mounted while mounted elsewhere = %v, want ErrInUse", err)
	}
	if s := mustStatus(t, img); !slices.Equal(s.Mountpoints, []string{mp1}) {
		t.Fatalf("mountpoints = %v, want [%s]", s.Mountpoints, mp1)
	}
}

// TestOtherNamespace is two lab hosts on one kernel: the image is mounted
// in another mount namespace, where this one cannot see the mount, but its
// loop device is global. Attach, Detach and Remove here must refuse.
func TestOtherNamespace(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	img := newImage(t, dir, testSize)
	other := newHost(t, dir)
	theirs, ours := filepath.Join(dir, "theirs"), filepath.Join(dir, "ours")
	if err := other.do(func() error { return Attach(ctx, img, theirs) }); err != nil {
		t.Fatal(err)
	}
	if s := mustStatus(t, img); !s.Attached || len(s.Mountpoints) != 0 {
		t.Fatalf("status here while mounted in another namespace = %+v", s)
	}
	if err := Attach(ctx, img, ours); !errors.Is(err, ErrInUse) {
		t.Fatalf("attach here = %v, want ErrInUse", err)
	} else {
		t.Log(err)
	}
	if err := Detach(ctx, img, ours); !errors.Is(err, ErrInUse) {
		t.Fatalf("detach here = %v, want ErrInUse", err)
	}
	if err := Remove(img); !errors.Is(err, ErrInUse) {
		t.Fatalf("remove here = %v, want ErrInUse", err)
	}
	if err := other.do(func() error { return Detach(ctx, img, theirs) }); err != nil {
		t.Fatal(err)
	}
	if err := Attach(ctx, img, ours); err != nil {
		t.Fatal(err)
	}
	if err := Detach(ctx, img, ours); err != nil {
		t.Fatal(err)
	}
}

// TestDetachWaitsForCopies: a mount namespace made while the volume is
// attached holds a copy of the mount, which keeps the filesystem alive
// after the unmount here. Detach waits for a copy that goes soon (as a
// container's does once runc pivots) and reports one that stays.
func TestDetachWaitsForCopies(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	img := newImage(t, dir, testSize)
	mp := filepath.Join(dir, "mnt")
	if err := Attach(ctx, img, mp); err != nil {
		t.Fatal(err)
	}
	brief := newHost(t, dir)
	gone := make(chan error, 1)
	go func() {
		time.Sleep(200 * time.Millisecond)
		gone <- brief.do(func() error { return unix.Unmount(mp, 0) })
	}()
	if err := Detach(ctx, img, mp); err != nil {
		t.Fatalf("detach while a copy of the mount goes away: %v", err)
	}
	if err := <-gone; err != nil {
		t.Fatal(err)
	}

	if err := Attach(ctx, img, mp); err != nil {
		t.Fatal(err)
	}
	stuck := newHost(t, dir)
	start := time.Now()
	err := Detach(ctx, img, mp)
	if !errors.Is(err, ErrInUse) || time.Since(start) < releaseWait {
		t.Fatalf("detach with a copy of the mount that stays = %v after %v, want ErrInUse after %v", err, time.Since(start), releaseWait)
	}
	t.Log(err)
	if s := mustStatus(t, img); !s.Attached || len(s.Mountpoints) != 0 {
		t.Fatalf("status = %+v, want attached with no mountpoint here", s)
	}
	stuck.close() // the namespace dies, and its copy with it
	if err := Detach(ctx, img, mp); err != nil {
		t.Fatal(err)
	}
}

// host runs functions on an OS thread in a mount namespace of its own,
// like an agent of another lab host. At close (or the test's end) it
// unmounts whatever is mounted under dir in its namespace, then ends the
// thread: ending it alone is not enough, since Go keeps the main thread
// alive (with its namespace) if the goroutine happened to run there.
type host struct {
	work  chan func()
	close func()
}

func newHost(t *testing.T, dir string) *host {
	h := &host{work: make(chan func())}
	h.close = sync.OnceFunc(func() {
		if err := h.do(func() error { return unmountUnder(dir) }); err != nil {
			t.Errorf("clean the other namespace: %v", err)
		}
		close(h.work)
	})
	ready := make(chan error)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		err := unix.Unshare(unix.CLONE_NEWNS)
		if err == nil {
			err = unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, "")
		}
		ready <- err
		for f := range h.work {
			f()
		}
	}()
	if err := <-ready; err != nil {
		t.Fatalf("make a mount namespace: %v", err)
	}
	t.Cleanup(h.close)
	return h
}

// unmountUnder unmounts, in the calling thread's mount namespace, all
// mounts at or under dir, the deepest first.
func unmountUnder(dir string) error {
	mounts, err := readMountinfo()
	if err != nil {
		return err
	}
	var errs []error
	for i := len(mounts) - 1; i >= 0; i-- {
		m := mounts[i].dir
		if m == dir || strings.HasPrefix(m, dir+"/") {
			errs = append(errs, unix.Unmount(m, unix.MNT_DETACH))
		}
	}
	return errors.Join(errs...)
}

func (h *host) do(f func() error) error {
	done := make(chan error)
	h.work <- func() { done <- f() }
	return <-done
}

func TestRemove(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	img := newImage(t, dir, testSize)
	mp := filepath.Join(dir, "mnt")
	if err := Attach(ctx, img, mp); err != nil {
		t.Fatal(err)
	}
	err := Remove(img)
	if !errors.Is(err, ErrInUse) {
		t.Fatalf("remove while attached = %v, want ErrInUse", err)
	}
	t.Log(err)
	if _, err := os.Stat(img); err != nil {
		t.Fatalf("the image is gone after a refused remove: %v", err)
	}
	if err := Detach(ctx, img, mp); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := Remove(img); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Status(img); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("status of a removed image = %v, want not exist", err)
	}
	if err := Detach(ctx, img, mp); err != nil {
		t.Fatalf("detach of a removed image: %v", err)
	}
}

// TestCrashLeftoverLoop: an agent died after binding the loop device and
// before mounting it (or someone ran losetup). Attach and Detach clean up.
func TestCrashLeftoverLoop(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	img := newImage(t, dir, testSize)
	mp := filepath.Join(dir, "mnt")

	left := leaveLoop(t, img)
	if s := mustStatus(t, img); !s.Attached || s.Loop != left.dev || len(s.Mountpoints) != 0 {
		t.Fatalf("status with a leftover loop device = %+v", s)
	}
	if err := Attach(ctx, img, mp); err != nil {
		t.Fatal(err)
	}
	if loops := loopsOf(t, img); len(loops) != 1 {
		t.Fatalf("%d loop devices after attach over a leftover, want 1", len(loops))
	}
	if s := mustStatus(t, img); !slices.Equal(s.Mountpoints, []string{mp}) {
		t.Fatalf("mountpoints = %v", s.Mountpoints)
	}
	if err := Detach(ctx, img, mp); err != nil {
		t.Fatal(err)
	}

	leaveLoop(t, img)
	leaveLoop(t, img)
	if err := Detach(ctx, img, mp); err != nil {
		t.Fatal(err)
	}
	if loops := loopsOf(t, img); len(loops) != 0 {
		t.Fatalf("%d loop devices after detach of leftovers, want 0", len(loops))
	}
	leaveLoop(t, img)
	if err := Remove(img); !errors.Is(err, ErrInUse) {
		t.Fatalf("remove with a leftover loop device = %v, want ErrInUse", err)
	}
}

// TestMoveTimeIsConstant checks the promise of the backend: a move (detach
// plus attach) takes well under a second whatever the size. The images are
// sparse, so 10 GiB costs a few MiB of disk.
func TestMoveTimeIsConstant(t *testing.T) {
	for _, size := range []int64{1 << 30, 10 << 30} {
		ctx := context.Background()
		dir := diskTempDir(t)
		img := newImage(t, dir, size)
		mp := filepath.Join(dir, "a")
		if err := Attach(ctx, img, mp); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := Detach(ctx, img, mp); err != nil {
			t.Fatal(err)
		}
		if err := Attach(ctx, img, filepath.Join(dir, "b")); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took > time.Second {
			t.Errorf("%d GiB: detach+attach took %v, want under 1s", size>>30, took)
		} else {
			t.Logf("%d GiB: detach+attach took %v", size>>30, took)
		}
	}
}

// diskTempDir is a temporary directory on a real disk, not tmpfs, so that
// the images behave as on shared storage (sparse files, real writeback).
func diskTempDir(t testing.TB) string {
	t.Helper()
	var fsst unix.Statfs_t
	if err := unix.Statfs(os.TempDir(), &fsst); err == nil && fsst.Type != unix.TMPFS_MAGIC {
		return t.TempDir()
	}
	dir, err := os.MkdirTemp("/var/tmp", "block-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func readDir(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}
