//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/clusterctl/clusterctl/api"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	"github.com/docker/go-connections/nat"
)

// Where the lab keeps a host's files on this machine (lab.DefaultLayout).
const (
	labHostsDir = "/var/lib/clusterctl/lab/hosts"
	labRunDir   = "/run/clusterctl/lab"
)

// TestVolumeMoves moves cluster volumes between the hosts of a real lab,
// through their dockerd and the clustervol plugin: both backends with
// their data, the lease fencing mounts, an agent crash under running
// containers, racing attaches, transfers cut short by a dying target agent,
// a partition and a full disk, and the refusals of bad requests.
func TestVolumeMoves(t *testing.T) {
	c := labCLI(t)
	c.must("lab", "up", "--hosts", "3", "--images", images)
	st := c.status()
	h1, h2, h3 := st.Hosts[0], st.Hosts[1], st.Hosts[2]
	d1, d2, d3 := dockerAt(t, h1.Docker, h1.DockerCertPath), dockerAt(t, h2.Docker, h2.DockerCertPath), dockerAt(t, h3.Docker, h3.DockerCertPath)
	var servers []string
	for _, h := range st.Hosts {
		servers = append(servers, h.Addr+":7400")
	}
	managers := c.client(servers...)
	ctx := context.Background()

	for i, backend := range []string{"copy", "block"} {
		t.Run(backend+" volume moves with its data", func(t *testing.T) {
			c := c.with(t)
			vol, port := "moved-"+backend, fmt.Sprint(7201+i)
			opts := map[string]string{"backend": backend}
			if backend == "block" {
				opts["size"] = "256MiB"
			}
			if _, err := d1.VolumeCreate(ctx, volume.CreateOptions{Name: vol, Driver: "clustervol", DriverOpts: opts}); err != nil {
				t.Fatalf("docker volume create on %s: %v", h1.Name, err)
			}
			values := map[string]string{"a": "alpha " + backend, "b": "beta " + backend, "counter": "42"}
			kv := "kv-" + vol
			mustRunWithVolume(t, d1, kv, vol, port)
			for k, v := range values {
				eventually(t, 20*time.Second, "kvdb on "+h1.Name+" takes "+k, func() error { return httpPut(kvURL(h1.Addr, port, k), v) })
			}
			// Beside kvdb's files, a tree written straight into the data
			// (as the host sees it: a block volume is mounted only in the
			// host's mount namespace) while the container has it mounted.
			writeTree(t, inHost(t, h1.Name, dataDir(h1.Name, vol)), uint64(10+i), 24, 256<<10)
			removeContainer(t, d1, kv)
			waitUnused(t, c, vol)
			if backend == "block" && !mounted(t, h1.Name, dataDir(h1.Name, vol)) {
				t.Fatalf("the block volume is not mounted on %s, which holds it", h1.Name)
			}
			before := mustHashTree(t, inHost(t, h1.Name, dataDir(h1.Name, vol)))

			rep, err := c.moveVolume(vol, h2.Name)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %d files, %d bytes moved in %d ms (%d rounds, %d bytes sent)", vol, before.Files, before.Bytes, rep.TotalMS, rep.Rounds, rep.BytesSent)
			if rep.Volume != vol || rep.Op != "move" || rep.Backend != backend || rep.From != h1.Name || rep.To != h2.Name || rep.Generation != 2 {
				t.Errorf("report %+v: want a %s move of %s from %s to %s, generation 2", rep, backend, vol, h1.Name, h2.Name)
			}
			if backend == "copy" && (rep.Bytes < before.Bytes || rep.BytesSent < before.Bytes || rep.Rounds < 2) {
				t.Errorf("report %+v: want at least %d bytes sent in a pre-copy and a final round", rep, before.Bytes)
			}
			wantVolume(t, c, vol, h2.Name, 2)
			if after := mustHashTree(t, inHost(t, h2.Name, dataDir(h2.Name, vol))); after != before {
				t.Fatalf("data on %s after the move: %+v, want %+v as on %s", h2.Name, after, before, h1.Name)
			}
			if backend == "copy" {
				if _, err := os.Lstat(volumeDir(h1.Name, vol)); !os.IsNotExist(err) {
					t.Errorf("the old copy on %s is still there after the move (%v)", h1.Name, err)
				}
				if _, err := os.Lstat(filepath.Join(volumeDir(h2.Name, vol), "staging")); !os.IsNotExist(err) {
					t.Errorf("a staging copy is left on %s after the move (%v)", h2.Name, err)
				}
			} else if mounted(t, h1.Name, dataDir(h1.Name, vol)) {
				t.Errorf("%s still has the block volume mounted after the move", h1.Name)
			}

			// The container on the new owner reads what was written on the old one.
			kv2 := "kv2-" + vol
			mustRunWithVolume(t, d2, kv2, vol, port)
			for k, v := range values {
				wantValue(t, kvURL(h2.Addr, port, k), v)
			}
			wantValue(t, kvURL(h2.Addr, port, "marker"), markerOf(uint64(10+i)))

			// Only the lease holder mounts it: the old owner and a third
			// host are refused, naming the holder.
			for _, other := range []struct {
				name string
				d    *client.Client
			}{{h1.Name, d1}, {h3.Name, d3}} {
				err := runWithVolume(other.d, "kv-fenced-"+vol, vol, port)
				want := fmt.Sprintf("volume %s is attached to %s (lease generation 2)", vol, h2.Name)
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("mount on %s: want an error with %q, got %v", other.name, want, err)
				}
				removeContainer(t, other.d, "kv-fenced-"+vol)
			}
			removeContainer(t, d2, kv2)
			waitUnused(t, c, vol)

			if backend != "copy" {
				return
			}
			// With --keep the old copy stays where it was.
			before = mustHashTree(t, inHost(t, h2.Name, dataDir(h2.Name, vol)))
			rep, err = c.moveVolume(vol, h3.Name, "--keep")
			if err != nil {
				t.Fatal(err)
			}
			if !rep.SourceKept || rep.From != h2.Name || rep.To != h3.Name || rep.Generation != 3 {
				t.Errorf("move --keep report %+v: want from %s to %s, generation 3, source kept", rep, h2.Name, h3.Name)
			}
			wantVolume(t, c, vol, h3.Name, 3)
			for _, h := range []string{h2.Name, h3.Name} {
				if got := mustHashTree(t, dataDir(h, vol)); got != before {
					t.Errorf("data on %s after move --keep: %+v, want %+v", h, got, before)
				}
			}
		})
	}

	t.Run("agent restart keeps volumes and mounts", func(t *testing.T) {
		c := c.with(t)
		t.Cleanup(func() { _, _ = c.run("lab", "revive", h1.Name, "agent") })
		for _, bad := range []struct {
			args []string
			want string
		}{
			{[]string{"lab", "kill", "host9", "agent"}, `no host "host9" in the lab`},
			{[]string{"lab", "kill", h1.Name, "dockerd"}, `unknown daemon "dockerd": want agent or server`},
			{[]string{"lab", "revive", h1.Name}, "accepts 2 arg(s)"},
		} {
			wantRefused(t, c, bad.want, bad.args...)
		}
		type user struct{ vol, kv, port string }
		var users []user
		for i, backend := range []string{"copy", "block"} {
			u := user{vol: "restart-" + backend, kv: "kv-restart-" + backend, port: fmt.Sprint(7211 + i)}
			opts := map[string]string{"backend": backend}
			if backend == "block" {
				opts["size"] = "256MiB"
			}
			if _, err := d1.VolumeCreate(ctx, volume.CreateOptions{Name: u.vol, Driver: "clustervol", DriverOpts: opts}); err != nil {
				t.Fatal(err)
			}
			mustRunWithVolume(t, d1, u.kv, u.vol, u.port)
			eventually(t, 20*time.Second, "kvdb answers", func() error { return httpPut(kvURL(h1.Addr, u.port, "k"), "before "+backend) })
			users = append(users, u)
		}
		for _, u := range users {
			waitUsedBy(t, c, u.vol, h1.Name+"/"+u.kv)
		}

		c.must("lab", "kill", h1.Name, "agent")
		for _, u := range users {
			// Docker and the containers do not need the agent to run.
			wantValue(t, kvURL(h1.Addr, u.port, "k"), "before "+strings.TrimPrefix(u.vol, "restart-"))
		}
		c.must("lab", "revive", h1.Name, "agent")

		for _, u := range users {
			backend := strings.TrimPrefix(u.vol, "restart-")
			info, err := d1.ContainerInspect(ctx, u.kv)
			if err != nil || !info.State.Running {
				t.Fatalf("%s after the agent's restart: %v, %+v", u.kv, err, info.State)
			}
			wantValue(t, kvURL(h1.Addr, u.port, "k"), "before "+backend)
			// The container still writes to the volume's data itself.
			if err := httpPut(kvURL(h1.Addr, u.port, "after"), "after "+backend); err != nil {
				t.Fatal(err)
			}
			if b, err := os.ReadFile(filepath.Join(inHost(t, h1.Name, dataDir(h1.Name, u.vol)), "after")); err != nil || string(b) != "after "+backend {
				t.Errorf("%s: the value written after the restart is not in the volume's data: %q, %v", u.vol, b, err)
			}
			waitUsedBy(t, c, u.vol, h1.Name+"/"+u.kv)
			wantVolume(t, c, u.vol, h1.Name, 1)
			want := fmt.Sprintf("volume %s is in use by %s/%s", u.vol, h1.Name, u.kv)
			if _, err := c.moveVolume(u.vol, h2.Name); err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("move of %s in use after the restart: want an error with %q, got %v", u.vol, want, err)
			}
		}

		// Docker's unmount reaches the new agent, which releases what the
		// old one mounted: the volumes can move.
		for _, u := range users {
			removeContainer(t, d1, u.kv)
			waitUnused(t, c, u.vol)
			before := mustHashTree(t, inHost(t, h1.Name, dataDir(h1.Name, u.vol)))
			rep, err := c.moveVolume(u.vol, h2.Name)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Generation != 2 {
				t.Errorf("move of %s: generation %d, want 2", u.vol, rep.Generation)
			}
			wantVolume(t, c, u.vol, h2.Name, 2)
			if after := mustHashTree(t, inHost(t, h2.Name, dataDir(h2.Name, u.vol))); after != before {
				t.Errorf("%s on %s: %+v, want %+v", u.vol, h2.Name, after, before)
			}
			if mounted(t, h1.Name, dataDir(h1.Name, u.vol)) {
				t.Errorf("%s is still mounted on %s after its move", u.vol, h1.Name)
			}
		}
	})

	t.Run("racing attaches: one host wins", func(t *testing.T) {
		c := c.with(t)
		for i, backend := range []string{"copy", "block"} {
			vol, port := "race-"+backend, fmt.Sprint(7221+i)
			args := []string{"volume", "create", vol, "--opt", "backend=" + backend}
			if backend == "block" {
				args = append(args, "--opt", "size=256MiB")
			}
			c.must(args...)
			hosts := map[string]*client.Client{h1.Name: d1, h2.Name: d2}
			ids := map[string]string{}
			for name, d := range hosts {
				id, err := createWithVolume(d, "kv-"+vol, vol, port)
				if err != nil {
					t.Fatalf("create on %s: %v", name, err)
				}
				ids[name] = id
			}
			errs := map[string]error{}
			var mu sync.Mutex
			var wg sync.WaitGroup
			gate := make(chan struct{})
			for name, d := range hosts {
				wg.Go(func() {
					<-gate
					err := d.ContainerStart(ctx, ids[name], container.StartOptions{})
					mu.Lock()
					errs[name] = err
					mu.Unlock()
				})
			}
			close(gate)
			wg.Wait()
			var won, lost []string
			for name, err := range errs {
				if err == nil {
					won = append(won, name)
				} else {
					lost = append(lost, name)
				}
			}
			if len(won) != 1 {
				t.Fatalf("%s: %d containers started, want exactly one: %v", vol, len(won), errs)
			}
			want := fmt.Sprintf("volume %s is attached to %s (lease generation 1)", vol, won[0])
			if err := errs[lost[0]]; !strings.Contains(err.Error(), want) {
				t.Errorf("%s: the loser on %s says %v, want %q", vol, lost[0], err, want)
			}
			if info, err := hosts[lost[0]].ContainerInspect(ctx, ids[lost[0]]); err != nil || info.State.Running {
				t.Errorf("%s: the loser on %s runs: %v, %+v", vol, lost[0], err, info.State)
			}
			wantVolume(t, c, vol, won[0], 1)
			for name, d := range hosts {
				removeContainer(t, d, ids[name])
			}
		}
	})

	// Two interrupted transfers of the same 300 MiB volume: the target's
	// agent killed, then the target cut off the network.
	bulk := "bulk"
	c.must("volume", "create", bulk)
	c.must("volume", "attach", bulk, h1.Name)
	writeTree(t, dataDir(h1.Name, bulk), 20, 60, 5<<20)
	bulkSum := mustHashTree(t, dataDir(h1.Name, bulk))

	t.Run("transfer cut short by the target's agent dying", func(t *testing.T) {
		c := c.with(t)
		t.Cleanup(func() { _, _ = c.run("lab", "revive", h2.Name, "agent") })
		mv := c.startMove(bulk, h2.Name)
		waitStaged(t, h2.Name, bulk, 48<<20, mv)
		c.must("lab", "kill", h2.Name, "agent")
		err := mv.wait(t, time.Minute)
		wantFailed(t, err, "volume move", h2.Name)
		wantSourceIntact(t, c, d1, h1, bulk, 1, bulkSum, "7231")

		c.must("lab", "revive", h2.Name, "agent")
		rep, err := c.moveVolume(bulk, h2.Name)
		if err != nil {
			t.Fatalf("retry after the target agent's restart: %v", err)
		}
		t.Logf("retry sent %d of %d bytes", rep.BytesSent, rep.Bytes)
		if rep.Generation != 2 || rep.Bytes != bulkSum.Bytes || rep.BytesSent >= rep.Bytes {
			t.Errorf("retry report %+v: want generation 2 and fewer than %d bytes sent (the target kept what it had)", rep, bulkSum.Bytes)
		}
		wantVolume(t, c, bulk, h2.Name, 2)
		if got := mustHashTree(t, dataDir(h2.Name, bulk)); got != bulkSum {
			t.Fatalf("data on %s: %+v, want %+v", h2.Name, got, bulkSum)
		}
	})

	t.Run("transfer cut short by a partition", func(t *testing.T) {
		c := c.with(t)
		t.Cleanup(func() { _, _ = c.run("lab", "heal", h2.Name) })
		vols, err := c.volumeStates()
		if err != nil || vols[bulk].Owner != h2.Name {
			t.Fatalf("%s is not on %s after the last subtest (%+v, %v)", bulk, h2.Name, vols[bulk], err)
		}
		if _, err := c.moveVolume(bulk, h1.Name); err != nil {
			t.Fatal(err)
		}
		// The move runs on the leader: cutting it off would cut the move's
		// own connection, not the transfer's.
		leaderOtherThan(t, c, managers, h2.Name)
		mv := c.startMove(bulk, h2.Name)
		waitStaged(t, h2.Name, bulk, 48<<20, mv)
		c.must("lab", "partition", h2.Name)
		cut := time.Now()
		err = mv.wait(t, 90*time.Second)
		t.Logf("the move failed %.1fs after the partition", time.Since(cut).Seconds())
		wantFailed(t, err, "volume move", h2.Name)
		wantSourceIntact(t, c, d1, h1, bulk, 3, bulkSum, "7232")

		c.must("lab", "heal", h2.Name)
		eventually(t, 30*time.Second, h2.Name+" up again", func() error { return hostStateIs(managers, h2.Name, "up") })
		rep, err := c.moveVolume(bulk, h2.Name)
		if err != nil {
			t.Fatalf("retry after the partition healed: %v", err)
		}
		t.Logf("retry sent %d of %d bytes", rep.BytesSent, rep.Bytes)
		if rep.Generation != 4 || rep.BytesSent >= rep.Bytes {
			t.Errorf("retry report %+v: want generation 4 and fewer than %d bytes sent", rep, rep.Bytes)
		}
		wantVolume(t, c, bulk, h2.Name, 4)
		if got := mustHashTree(t, dataDir(h2.Name, bulk)); got != bulkSum {
			t.Fatalf("data on %s: %+v, want %+v", h2.Name, got, bulkSum)
		}
	})

	t.Run("bad requests are refused and change nothing", func(t *testing.T) {
		c := c.with(t)
		vol, kv := "guarded", "kv-guarded"
		c.must("volume", "create", vol)
		mustRunWithVolume(t, d1, kv, vol, "7241")
		eventually(t, 20*time.Second, "kvdb answers", func() error { return httpPut(kvURL(h1.Addr, "7241", "k"), "v") })
		waitUsedBy(t, c, vol, h1.Name+"/"+kv)
		before, err := c.volumeStates()
		if err != nil {
			t.Fatal(err)
		}
		sum := mustHashTree(t, dataDir(h1.Name, vol))
		for _, bad := range []struct {
			args []string
			want string
		}{
			{[]string{"volume", "move", "nosuch", h2.Name}, `no volume "nosuch"`},
			{[]string{"volume", "move", vol, "host9"}, `no host "host9" in the cluster`},
			{[]string{"volume", "move", vol, h1.Name}, fmt.Sprintf("volume %s is already attached to %s", vol, h1.Name)},
			{[]string{"volume", "move", vol, h2.Name}, fmt.Sprintf("volume %s is in use by %s/%s", vol, h1.Name, kv)},
			{[]string{"volume", "precopy", "nosuch", h2.Name}, `no volume "nosuch"`},
			{[]string{"volume", "sync", vol, h2.Name}, fmt.Sprintf("volume %s is in use by %s/%s", vol, h1.Name, kv)},
			{[]string{"volume", "detach", vol}, fmt.Sprintf("volume %s is a copy volume", vol)},
		} {
			wantRefused(t, c, bad.want, bad.args...)
		}
		after, err := c.volumeStates()
		if err != nil {
			t.Fatal(err)
		}
		if !sameVolumes(before, after) {
			t.Errorf("refused requests changed the volumes:\nbefore %+v\nafter  %+v", before, after)
		}
		for _, h := range []string{h2.Name, h3.Name} {
			if _, err := os.Lstat(volumeDir(h, vol)); !os.IsNotExist(err) {
				t.Errorf("a refused move left something of %s on %s (%v)", vol, h, err)
			}
		}
		if got := mustHashTree(t, dataDir(h1.Name, vol)); got != sum {
			t.Errorf("data of %s changed: %+v, want %+v", vol, got, sum)
		}
		removeContainer(t, d1, kv)
	})

	t.Run("target disk full", func(t *testing.T) {
		c := c.with(t)
		vol := "tight"
		c.must("volume", "create", vol)
		c.must("volume", "attach", vol, h1.Name)
		writeTree(t, dataDir(h1.Name, vol), 30, 8, 4<<20)
		sum := mustHashTree(t, dataDir(h1.Name, vol))
		// A small disk for the volume, in host2's own mount namespace.
		dir := volumeDir(h2.Name, vol)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		c.must("lab", "exec", h2.Name, "--", "mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", dir)
		t.Cleanup(func() {
			_, _ = c.run("volume", "rm", vol)
			_, _ = c.run("lab", "exec", h2.Name, "--", "umount", dir)
		})
		_, err := c.moveVolume(vol, h2.Name)
		wantFailed(t, err, "volume move", h2.Name)
		if msg := strings.ToLower(err.Error()); !strings.Contains(msg, "disk full") && !strings.Contains(msg, "no space") {
			t.Errorf("move to a full disk: %v, want it to say the disk is full", err)
		}
		wantSourceIntact(t, c, d1, h1, vol, 1, sum, "7251")

		// More room: the retry sends only what did not fit.
		c.must("lab", "exec", h2.Name, "--", "mount", "-o", "remount,size=128m", dir)
		rep, err := c.moveVolume(vol, h2.Name)
		if err != nil {
			t.Fatalf("retry with room on %s: %v", h2.Name, err)
		}
		t.Logf("retry sent %d of %d bytes", rep.BytesSent, rep.Bytes)
		if rep.Generation != 2 || rep.BytesSent >= rep.Bytes {
			t.Errorf("retry report %+v: want generation 2 and fewer than %d bytes sent", rep, rep.Bytes)
		}
		if got := mustHashTree(t, inHost(t, h2.Name, dataDir(h2.Name, vol))); got != sum {
			t.Fatalf("data on %s: %+v, want %+v", h2.Name, got, sum)
		}
	})
}

// volumeDir is a volume's directory on a host's disk: data is what Docker
// mounts, staging what an incoming move writes.
func volumeDir(host, vol string) string {
	return filepath.Join(labHostsDir, host, "agent", "volumes", vol)
}

func dataDir(host, vol string) string { return filepath.Join(volumeDir(host, vol), "data") }

// inHost is path as host sees it, through its dockerd's root: in the
// host's mount namespace, where its block volumes are mounted.
func inHost(t *testing.T, host, path string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(labRunDir, host, "dockerd.pid"))
	if err != nil {
		t.Fatalf("%s's dockerd pid: %v", host, err)
	}
	return filepath.Join("/proc", strings.TrimSpace(string(b)), "root", path)
}

// mounted says whether path is a mount point in host's mount namespace.
func mounted(t *testing.T, host, path string) bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(filepath.Dir(inHost(t, host, "/")), "mountinfo"))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == path {
			return true
		}
	}
	return false
}

// markerOf is the content of the tree's "marker" file, a key kvdb serves.
func markerOf(seed uint64) string { return fmt.Sprintf("marker of tree %d", seed) }

// writeTree fills dir with files of random content (about fileSize each)
// in subdirectories, with odd modes and an odd owner, symlinks (relative,
// absolute, dangling), an empty file, an empty directory, and a file named
// marker that kvdb serves as a key.
func writeTree(t *testing.T, dir string, seed uint64, files, fileSize int) {
	t.Helper()
	var s [32]byte
	for i := range 8 {
		s[i] = byte(seed >> (8 * i))
	}
	src := rand.NewChaCha8(s)
	rng := rand.New(src)
	dirs := []string{".", "sub/a", "sub/b/deep", "private", "shared"}
	for _, d := range append(slices.Clone(dirs), "empty") {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	modes := []fs.FileMode{0o644, 0o600, 0o755, 0o440, 0o755 | fs.ModeSetuid, 0o750 | fs.ModeSetgid}
	buf := make([]byte, 2*fileSize)
	var first string
	for i := range files {
		rel := filepath.Join(dirs[i%len(dirs)], fmt.Sprintf("file-%03d.bin", i))
		b := buf[:fileSize/2+rng.IntN(fileSize)]
		_, _ = src.Read(b)
		p := filepath.Join(dir, rel)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			if err := os.Lchown(p, 1234, 5678); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chmod(p, modes[i%len(modes)]); err != nil {
			t.Fatal(err)
		}
		if first == "" {
			first = rel
		}
	}
	steps := []func() error{
		func() error { return os.WriteFile(filepath.Join(dir, "marker"), []byte(markerOf(seed)), 0o644) },
		func() error { return os.WriteFile(filepath.Join(dir, "sub/empty.txt"), nil, 0o644) },
		func() error { return os.Symlink("../"+first, filepath.Join(dir, "sub/link")) },
		func() error { return os.Symlink("/etc/hostname", filepath.Join(dir, "sub/b/absolute")) },
		func() error { return os.Symlink("no/such/file", filepath.Join(dir, "dangling")) },
		func() error { return os.Lchown(filepath.Join(dir, "dangling"), 1234, 5678) },
		func() error { return os.Chmod(filepath.Join(dir, "private"), 0o700) },
		func() error { return os.Chmod(filepath.Join(dir, "shared"), 0o777|fs.ModeSticky) },
		func() error { return os.Chmod(filepath.Join(dir, "empty"), 0o750) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
}

// treeSum sums up a tree: a digest over every entry's path, type and mode
// bits, owner, size, modification time (files), symlink target and
// content, and how many files and bytes it holds.
type treeSum struct {
	Digest string
	Files  int
	Bytes  int64
}

func hashTree(dir string) (treeSum, error) {
	var sum treeSum
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		fmt.Fprintf(h, "%q %v %d:%d", rel, fi.Mode(), st.Uid, st.Gid)
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, " -> %q", target)
		case fi.Mode().IsRegular():
			content := sha256.New()
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(content, f)
			f.Close()
			if err != nil {
				return err
			}
			fmt.Fprintf(h, " %d %d %x", fi.Size(), fi.ModTime().UnixNano(), content.Sum(nil))
			sum.Files++
			sum.Bytes += fi.Size()
		}
		fmt.Fprintln(h)
		return nil
	})
	sum.Digest = fmt.Sprintf("%x", h.Sum(nil))
	return sum, err
}

func mustHashTree(t *testing.T, dir string) treeSum {
	t.Helper()
	sum, err := hashTree(dir)
	if err != nil {
		t.Fatalf("hash %s: %v", dir, err)
	}
	return sum
}

// stagedBytes is how much data a staging copy holds: blocks written, not
// sizes (the receiver sizes a file before its chunks arrive).
func stagedBytes(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Sys().(*syscall.Stat_t).Blocks * 512
			}
		}
		return nil
	})
	return n
}

// waitStaged waits until host's staging copy of vol holds at least n
// bytes, looking often: a transfer takes about a second.
func waitStaged(t *testing.T, host, vol string, n int64, mv *backgroundMove) {
	t.Helper()
	staging := filepath.Join(volumeDir(host, vol), "staging")
	deadline := time.Now().Add(time.Minute)
	for stagedBytes(staging) < n {
		select {
		case <-mv.done:
			t.Fatalf("the move ended before %d bytes reached %s, nothing to interrupt: %v", n, host, mv.err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes of %s not staged on %s within a minute", n, vol, host)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// backgroundMove is a volume move running while the test breaks things.
type backgroundMove struct {
	done chan struct{}
	err  error
}

func (c *cli) startMove(vol, host string) *backgroundMove {
	mv := &backgroundMove{done: make(chan struct{})}
	go func() {
		defer close(mv.done)
		_, mv.err = c.moveVolume(vol, host)
	}()
	return mv
}

// wait returns the move's error, failing the test if it has not ended
// within timeout.
func (mv *backgroundMove) wait(t *testing.T, timeout time.Duration) error {
	t.Helper()
	select {
	case <-mv.done:
		return mv.err
	case <-time.After(timeout):
		t.Fatalf("the move did not end within %s", timeout)
		return nil
	}
}

// wantFailed checks that a move failed with one line that says what failed
// and names the target.
func wantFailed(t *testing.T, err error, what, target string) {
	t.Helper()
	if err == nil {
		t.Fatal("the move succeeded, want a failure")
	}
	msg := err.Error()
	last := msg[strings.LastIndex(msg, "\n")+1:]
	t.Logf("failed as it should: %s", last)
	if !strings.Contains(last, "clusterctl: "+what) || !strings.Contains(last, target) {
		t.Errorf("failed move: want a last line saying %q and naming %s, got %q", what, target, msg)
	}
}

// wantSourceIntact checks a volume after a failed move: still attached to
// its owner under the same generation, not marked as moving, its data
// unchanged, mountable by a container there (which reads the tree's
// marker through kvdb).
func wantSourceIntact(t *testing.T, c *cli, d *client.Client, owner labHost, vol string, generation uint64, sum treeSum, port string) {
	t.Helper()
	wantVolume(t, c, vol, owner.Name, generation)
	if got := mustHashTree(t, inHost(t, owner.Name, dataDir(owner.Name, vol))); got != sum {
		t.Fatalf("%s on %s after the failed move: %+v, want %+v", vol, owner.Name, got, sum)
	}
	kv := "kv-after-failure-" + vol
	mustRunWithVolume(t, d, kv, vol, port)
	var marker string
	eventually(t, 20*time.Second, "kvdb serves the marker", func() error {
		var err error
		marker, err = httpGet(kvURL(owner.Addr, port, "marker"))
		return err
	})
	if !strings.HasPrefix(marker, "marker of tree") {
		t.Errorf("marker through kvdb on %s: %q", owner.Name, marker)
	}
	removeContainer(t, d, kv)
	waitUnused(t, c, vol)
}

// leaderOtherThan makes sure host's manager does not lead: if it does, its
// manager is crashed until another one leads, then started again.
func leaderOtherThan(t *testing.T, c *cli, managers *api.Client, host string) {
	t.Helper()
	st, err := managers.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Leader != host {
		return
	}
	c.must("lab", "kill", host, "server")
	eventually(t, 30*time.Second, "a new leader", func() error {
		st, err := managers.Status(context.Background())
		if err != nil || st.Leader == "" || st.Leader == host {
			return fmt.Errorf("leader %q (%v)", st.Leader, err)
		}
		return nil
	})
	c.must("lab", "revive", host, "server")
}

// moveVolume runs `volume move VOL HOST [ARGS] -o json`.
func (c *cli) moveVolume(vol, host string, args ...string) (api.VolumeReport, error) {
	var rep api.VolumeReport
	out, err := c.run(append([]string{"volume", "move", vol, host, "-o", "json"}, args...)...)
	if err != nil {
		return rep, err
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		return rep, fmt.Errorf("volume move -o json: %w: %q", err, out)
	}
	return rep, nil
}

// runResult runs clusterctl and returns what it printed and its exit code.
func (c *cli) runResult(args ...string) (stdout, stderr string, code int) {
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "CLUSTERCTL_CONTEXT="+c.context)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		c.t.Fatal(err)
	}
	return out.String(), errOut.String(), code
}

// wantRefused runs clusterctl and checks that it fails, printing nothing
// but one line that says want.
func wantRefused(t *testing.T, c *cli, want string, args ...string) {
	t.Helper()
	stdout, stderr, code := c.runResult(args...)
	if code == 0 || !strings.Contains(stderr, want) || strings.Count(strings.TrimSpace(stderr), "\n") > 0 || stdout != "" {
		t.Errorf("%v: exit %d, stdout %q, stderr %q; want a failure and one line with %q", args, code, stdout, stderr, want)
	}
}

// volumeStates returns `volume ls -o json` by name.
func (c *cli) volumeStates() (map[string]api.Volume, error) {
	out, err := c.run("volume", "ls", "-o", "json")
	if err != nil {
		return nil, err
	}
	var resp api.VolumesResponse
	if err := json.Unmarshal([]byte(out), &resp); err != nil {
		return nil, fmt.Errorf("volume ls -o json: %w", err)
	}
	m := map[string]api.Volume{}
	for _, v := range resp.Volumes {
		m[v.Name] = v
	}
	return m, nil
}

// sameVolumes compares who holds each volume, under which generation,
// whether it is moving and who uses it.
func sameVolumes(a, b map[string]api.Volume) bool {
	if len(a) != len(b) {
		return false
	}
	for name, v := range a {
		w, ok := b[name]
		if !ok || v.Owner != w.Owner || v.Generation != w.Generation || v.MovingTo != w.MovingTo || !slices.Equal(v.UsedBy, w.UsedBy) {
			return false
		}
	}
	return true
}

// wantVolume checks a volume's owner and generation, and that no move is
// under way.
func wantVolume(t *testing.T, c *cli, vol, owner string, generation uint64) {
	t.Helper()
	vols, err := c.volumeStates()
	if err != nil {
		t.Fatal(err)
	}
	if v := vols[vol]; v.Owner != owner || v.Generation != generation || v.MovingTo != "" {
		t.Fatalf("volume %s: %+v, want owner %s, generation %d, not moving", vol, v, owner, generation)
	}
}

// waitUsedBy waits until the cluster sees user (host/container) as the
// volume's only user.
func waitUsedBy(t *testing.T, c *cli, vol, user string) {
	t.Helper()
	eventually(t, 20*time.Second, vol+" used by "+user, func() error {
		vols, err := c.volumeStates()
		if err != nil {
			return err
		}
		if got := vols[vol].UsedBy; !slices.Equal(got, []string{user}) {
			return fmt.Errorf("used by %v", got)
		}
		return nil
	})
}

// waitUnused waits until the cluster sees no container using the volume.
func waitUnused(t *testing.T, c *cli, vol string) {
	t.Helper()
	eventually(t, 20*time.Second, vol+" unused", func() error {
		vols, err := c.volumeStates()
		if err != nil {
			return err
		}
		if got := vols[vol].UsedBy; len(got) > 0 {
			return fmt.Errorf("used by %v", got)
		}
		return nil
	})
}

// createWithVolume creates (not starts) kvdb with a cluster volume at
// /data, its port published on hostPort.
func createWithVolume(d *client.Client, name, vol, hostPort string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	port := nat.Port("7000/tcp")
	created, err := d.ContainerCreate(ctx,
		&container.Config{Image: "sample/kvdb:latest", ExposedPorts: nat.PortSet{port: {}}},
		&container.HostConfig{
			PortBindings: nat.PortMap{port: {{HostPort: hostPort}}},
			Binds:        []string{vol + ":/data"},
			VolumeDriver: "clustervol",
		}, nil, nil, name)
	return created.ID, err
}

func mustRunWithVolume(t *testing.T, d *client.Client, name, vol, hostPort string) {
	t.Helper()
	if err := runWithVolume(d, name, vol, hostPort); err != nil {
		t.Fatalf("run %s with %s: %v", name, vol, err)
	}
}

// removeContainer removes a container if it exists.
func removeContainer(t *testing.T, d *client.Client, name string) {
	t.Helper()
	err := d.ContainerRemove(context.Background(), name, container.RemoveOptions{Force: true})
	if err != nil && !strings.Contains(err.Error(), "No such container") {
		t.Fatalf("remove %s: %v", name, err)
	}
}

func kvURL(addr, port, key string) string { return "http://" + addr + ":" + port + "/kv/" + key }

// wantValue checks a kvdb value, giving a starting kvdb a few seconds.
func wantValue(t *testing.T, url, want string) {
	t.Helper()
	eventually(t, 20*time.Second, "GET "+url, func() error {
		got, err := httpGet(url)
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("got %q, want %q", got, want)
		}
		return nil
	})
}
