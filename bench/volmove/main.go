// Command volmove measures cluster volume moves on a 2-host lab against a
// plain tar stream of the same data between the same hosts, in the same
// run, and prints Markdown tables for docs/BENCHMARKS.md:
//
//   - copy backend, 1 GiB of random files: the full copy's throughput (the
//     pre-copy's rounds) against the tar stream's; the final sync after 1%
//     of the volume changed (the step a move's downtime is made of); a
//     whole `volume move`.
//   - block backend, 1 GiB and 10 GiB images: detach plus attach.
//
// Every move is checked: the tree's checksum on the target equals the
// source's. It needs root and the binary and images that `make build
// images` writes (make bench does).
//
// The tar stream runs this same program inside the lab hosts
// (`volmove tar-send` on one, `volmove tar-recv` on the other, through
// `clusterctl lab exec`), over the hosts' own addresses.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/clusterctl/clusterctl/agent/volume/transfer"
	"github.com/clusterctl/clusterctl/api"
	"github.com/clusterctl/clusterctl/bench/internal/benchcli"
	"github.com/clusterctl/clusterctl/bench/internal/benchtar"
)

// Lab paths, as the lab lays them out (lab/layout.go).
const (
	labHosts = "/var/lib/clusterctl/lab/hosts"
)

// Targets of issue 5.
const (
	finalSyncTarget  = 500 * time.Millisecond
	throughputTarget = 0.70
	blockTarget      = time.Second
)

func main() {
	benchtar.ServeIfAsked("volmove")
	bin := flag.String("bin", "bin/clusterctl", "clusterctl binary")
	images := flag.String("images", "bin/images", "sample images directory")
	runs := flag.Int("runs", 3, "repetitions of each measurement (the median is reported)")
	sizeMiB := flag.Int("size", 1024, "copy volume size in MiB")
	flag.Parse()
	b := &bench{cli: benchcli.New(*bin, "volmove"), runs: *runs, size: int64(*sizeMiB) << 20}
	b.cli.Finish("volmove", b.run(*images))
}

type bench struct {
	cli   benchcli.CLI
	runs  int
	size  int64
	hosts map[string]benchcli.LabHost
}

func (b *bench) run(images string) error {
	if _, err := b.cli.Run("lab", "down"); err != nil {
		return err
	}
	if _, err := b.cli.Run("lab", "up", "--hosts", "2", "--images", images); err != nil {
		return err
	}
	var err error
	if b.hosts, err = b.cli.LabHosts(); err != nil {
		return err
	}
	cp, err := b.copyBackend()
	if err != nil {
		return err
	}
	blk, err := b.blockBackend()
	if err != nil {
		return err
	}
	b.print(cp, blk)
	return nil
}

// copyResult is the copy backend's medians.
type copyResult struct {
	tar, tarSync            time.Duration // the baseline: tar stream; and with a sync of the receiver's disk
	fullCopy, flush         time.Duration // the pre-copy's rounds, and its flush
	finalSync, finalSyncCLI time.Duration // the final sync as the report has it, and the command's wall time
	finalBytes              int64
	move                    time.Duration // a whole volume move
}

// copyBackend measures the copy backend, alternating between host1 and
// host2: each repetition pre-copies the volume to the other host (which
// holds no staging copy, so the first round copies everything), changes
// 1% of it, syncs it there, and checks the checksums.
func (b *bench) copyBackend() (copyResult, error) {
	const vol = "bench-copy"
	if _, err := b.cli.Run("volume", "attach", vol, "host1"); err != nil {
		if _, err := b.cli.Run("volume", "create", vol); err != nil {
			return copyResult{}, err
		}
		if _, err := b.cli.Run("volume", "attach", vol, "host1"); err != nil {
			return copyResult{}, err
		}
	}
	if err := benchtar.Fill(volumeDir("host1", vol), b.size); err != nil {
		return copyResult{}, err
	}
	var tars, tarSyncs, fulls, flushes, finals, finalCLIs, moves []time.Duration
	var finalBytes int64
	hosts := []string{"host1", "host2"}
	// The baseline and the pre-copy take turns, each starting with the
	// machine's disk flushed, so that neither pays for the other's
	// writeback.
	for i := range b.runs {
		from, to := hosts[i%2], hosts[(i+1)%2]
		if err := warmUp(b.size); err != nil {
			return copyResult{}, err
		}
		t, ts, err := b.tarStream(from, to, volumeDir(from, vol))
		if err != nil {
			return copyResult{}, err
		}
		tars, tarSyncs = append(tars, t), append(tarSyncs, ts)
		if err := warmUp(b.size); err != nil {
			return copyResult{}, err
		}
		pre, err := b.op("precopy", vol, to)
		if err != nil {
			return copyResult{}, err
		}
		if err := changeTree(volumeDir(from, vol), b.size/100, i); err != nil {
			return copyResult{}, err
		}
		start := time.Now()
		fin, err := b.op("sync", vol, to)
		if err != nil {
			return copyResult{}, err
		}
		finalCLIs = append(finalCLIs, time.Since(start))
		if err := sameTree(volumeDir(from, vol), volumeDir(to, vol)); err != nil {
			return copyResult{}, err
		}
		fulls = append(fulls, ms(pre.PreCopyMS-pre.FlushMS))
		flushes = append(flushes, ms(pre.FlushMS))
		finals = append(finals, ms(fin.FinalSyncMS))
		finalBytes = fin.FinalSyncBytes
	}
	// Whole moves: the host the volume is not on holds a stale copy (a
	// sync keeps the old owner's), which the move replaces.
	owner := hosts[b.runs%2]
	for range b.runs {
		to := hosts[0]
		if owner == to {
			to = hosts[1]
		}
		src, err := transfer.TreeChecksum(volumeDir(owner, vol))
		if err != nil {
			return copyResult{}, err
		}
		if err := warmUp(b.size); err != nil {
			return copyResult{}, err
		}
		rep, err := b.op("move", vol, to)
		if err != nil {
			return copyResult{}, err
		}
		dst, err := transfer.TreeChecksum(volumeDir(to, vol))
		if err != nil || dst != src {
			return copyResult{}, fmt.Errorf("after the move to %s: checksum %s, want %s (%v)", to, dst, src, err)
		}
		moves = append(moves, ms(rep.TotalMS))
		owner = to
	}
	return copyResult{
		tar: median(tars), tarSync: median(tarSyncs), fullCopy: median(fulls), flush: median(flushes),
		finalSync: median(finals), finalSyncCLI: median(finalCLIs), finalBytes: finalBytes, move: median(moves),
	}, nil
}

// blockResult is a block volume's median detach plus attach per size.
type blockResult struct {
	sizeGiB        int
	detach, attach time.Duration
	total          time.Duration
}

// blockBackend moves block volumes of 1 and 10 GiB back and forth, with a
// file written on them checked on every arrival.
func (b *bench) blockBackend() ([]blockResult, error) {
	var out []blockResult
	for _, gib := range []int{1, 10} {
		vol := fmt.Sprintf("bench-block-%dg", gib)
		if _, err := b.cli.Run("volume", "create", vol, "--opt", "backend=block", "--opt", fmt.Sprintf("size=%dGiB", gib)); err != nil {
			return nil, err
		}
		if _, err := b.cli.Run("volume", "attach", vol, "host1"); err != nil {
			return nil, err
		}
		inside, err := b.hostPath("host1", volumeDir("host1", vol))
		if err != nil {
			return nil, err
		}
		if err := benchtar.Fill(inside, 64<<20); err != nil {
			return nil, err
		}
		want, err := transfer.TreeChecksum(inside)
		if err != nil {
			return nil, err
		}
		var detaches, attaches, totals []time.Duration
		hosts := []string{"host2", "host1"}
		for i := range b.runs {
			to := hosts[i%2]
			rep, err := b.op("move", vol, to)
			if err != nil {
				return nil, err
			}
			if err := b.checkInside(to, volumeDir(to, vol), want); err != nil {
				return nil, err
			}
			detaches, attaches = append(detaches, ms(rep.FinalSyncMS)), append(attaches, ms(rep.AttachMS))
			totals = append(totals, ms(rep.FinalSyncMS+rep.AttachMS))
		}
		out = append(out, blockResult{sizeGiB: gib, detach: median(detaches), attach: median(attaches), total: median(totals)})
	}
	return out, nil
}

// op runs a long volume operation and returns its report.
func (b *bench) op(op, vol, host string) (api.VolumeReport, error) {
	out, err := b.cli.RunStdout("volume", op, vol, host, "-o", "json")
	if err != nil {
		return api.VolumeReport{}, err
	}
	var rep api.VolumeReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		return rep, fmt.Errorf("volume %s -o json: %w", op, err)
	}
	return rep, nil
}

// warmUp puts every measured transfer in the same state: the machine's
// disk flushed (no measurement waits for an earlier one's writeback), and
// size bytes of page cache just written and freed. On this VM memory left
// free for a few seconds goes back to the hypervisor, and the first write
// to it costs several times more (a 1 GiB write: 0.19 s warm, 1.8 s cold),
// which would otherwise decide which side of a comparison wins.
func warmUp(size int64) error {
	scratch := filepath.Join(labHosts, "warm-up")
	f, err := os.Create(scratch)
	if err != nil {
		return err
	}
	defer os.Remove(scratch)
	buf := make([]byte, 1<<20)
	for range size >> 20 {
		if _, err := f.Write(buf); err != nil {
			f.Close()
			return fmt.Errorf("warm up: %w", err)
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Remove(scratch); err != nil {
		return err
	}
	unix.Sync()
	return nil
}

// volumeDir is where a host's agent keeps a volume's data (or mounts its
// image), as the host sees it.
// tarStream times the baseline from host from to host to, into a scratch
// directory on to's disk.
func (b *bench) tarStream(from, to, src string) (stream, synced time.Duration, err error) {
	dst := filepath.Join(labHosts, to, "tar-baseline")
	defer os.RemoveAll(dst)
	if err := os.RemoveAll(dst); err != nil {
		return 0, 0, err
	}
	return benchtar.Stream(b.cli, from, b.hosts[to], src, dst)
}

func volumeDir(host, vol string) string {
	return filepath.Join(labHosts, host, "agent/volumes", vol, "data")
}

// checkInside compares the checksum of a tree in a host's mount namespace.
func (b *bench) checkInside(host, dir, want string) error {
	inside, err := b.hostPath(host, dir)
	if err != nil {
		return err
	}
	got, err := transfer.TreeChecksum(inside)
	if err != nil || got != want {
		return fmt.Errorf("on %s: checksum of %s is %s, want %s (%v)", host, dir, got, want, err)
	}
	return nil
}

func sameTree(a, b string) error {
	x, err := transfer.TreeChecksum(a)
	if err != nil {
		return err
	}
	y, err := transfer.TreeChecksum(b)
	if err != nil || x != y {
		return fmt.Errorf("%s and %s differ: %s vs %s (%v)", a, b, x, y, err)
	}
	return nil
}

func (b *bench) print(cp copyResult, blk []blockResult) {
	gib := float64(b.size) / (1 << 30)
	rate := func(d time.Duration) float64 { return float64(b.size) / (1 << 20) / d.Seconds() }
	fmt.Printf("copy backend, %.1f GiB in %d files of 4 MiB (median of %d; baseline: a plain tar stream of the same tree between the same two hosts, taking turns with the pre-copy, each after the same warm-up: disk flushed, page cache of the same size just freed)\n\n", gib, b.size/benchtar.TreeFile, b.runs)
	fmt.Println("| measurement | time | MiB/s | baseline | ratio |")
	fmt.Println("|---|---|---|---|---|")
	fmt.Printf("| tar stream (baseline) | %s | %.0f | %s | 1.00x |\n", sec(cp.tar), rate(cp.tar), sec(cp.tar))
	fmt.Printf("| tar stream + sync of the receiver's disk | %s | %.0f | %s | %.2fx |\n", sec(cp.tarSync), rate(cp.tarSync), sec(cp.tar), ratio(cp.tarSync, cp.tar))
	fmt.Printf("| full copy (pre-copy rounds) | %s | %.0f | %s | throughput %.2fx |\n", sec(cp.fullCopy), rate(cp.fullCopy), sec(cp.tar), ratio(cp.tar, cp.fullCopy))
	fmt.Printf("| flush after the pre-copy | %s | | | |\n", sec(cp.flush))
	fmt.Printf("| final sync, 1%% changed (%.1f MiB sent) | %s | | %s | %.3fx |\n", float64(cp.finalBytes)/(1<<20), sec(cp.finalSync), sec(cp.tar), ratio(cp.finalSync, cp.tar))
	fmt.Printf("| final sync, whole command | %s | | %s | %.3fx |\n", sec(cp.finalSyncCLI), sec(cp.tar), ratio(cp.finalSyncCLI, cp.tar))
	fmt.Printf("| volume move (whole) | %s | %.0f | %s | %.2fx |\n", sec(cp.move), rate(cp.move), sec(cp.tar), ratio(cp.move, cp.tar))
	fmt.Printf("\nblock backend: detach + attach of a volume no container uses (median of %d; baseline: the tar stream of %.1f GiB above)\n\n", b.runs, gib)
	fmt.Println("| size | detach + handover | attach | total | baseline | ratio |")
	fmt.Println("|---|---|---|---|---|---|")
	for _, r := range blk {
		fmt.Printf("| %d GiB | %s | %s | %s | %s | %.3fx |\n", r.sizeGiB, sec(r.detach), sec(r.attach), sec(r.total), sec(cp.tar), ratio(r.total, cp.tar))
	}
	fmt.Println()
	benchcli.PrintTarget("final sync under 0.5 s", cp.finalSync < finalSyncTarget, sec(cp.finalSync))
	benchcli.PrintTarget("full-copy throughput at least 70% of the tar stream's", ratio(cp.tar, cp.fullCopy) >= throughputTarget, fmt.Sprintf("%.2fx", ratio(cp.tar, cp.fullCopy)))
	for _, r := range blk {
		benchcli.PrintTarget(fmt.Sprintf("block detach + attach under 1 s at %d GiB", r.sizeGiB), r.total < blockTarget, sec(r.total))
	}
}

func ms(n int64) time.Duration               { return time.Duration(n) * time.Millisecond }
func sec(d time.Duration) string             { return fmt.Sprintf("%.3fs", d.Seconds()) }
func ratio(a, b time.Duration) float64       { return a.Seconds() / b.Seconds() }
func median(d []time.Duration) time.Duration { return benchcli.Percentile(d, 50) }
