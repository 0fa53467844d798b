// Command labtime measures how long `clusterctl lab up` and `lab down` take,
// against a one-host lab measured in the same run as the baseline, and
// prints a Markdown table for docs/BENCHMARKS.md. It needs root and the
// binary and images that `make build images` writes (make bench does).
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/clusterctl/clusterctl/bench/internal/benchcli"
)

func main() {
	bin := flag.String("bin", "bin/clusterctl", "clusterctl binary")
	runs := flag.Int("runs", 3, "repetitions of each measurement (the median is reported)")
	hosts := flag.Int("hosts", 3, "hosts in the measured lab")
	flag.Parse()
	if err := run(*bin, *runs, *hosts); err != nil {
		fmt.Fprintln(os.Stderr, "labtime: "+err.Error())
		os.Exit(1)
	}
}

// sample is the median up and down times of one lab size.
type sample struct{ up, down time.Duration }

func run(bin string, runs, hosts int) error {
	cli := benchcli.New(bin, "labtime")
	measure := func(n int) (sample, error) {
		var ups, downs []time.Duration
		for range runs {
			up, err := cli.Timed("lab", "up", "--hosts", fmt.Sprint(n))
			if err != nil {
				return sample{}, err
			}
			down, err := cli.Timed("lab", "down")
			if err != nil {
				return sample{}, err
			}
			ups, downs = append(ups, up), append(downs, down)
		}
		return sample{up: benchcli.Percentile(ups, 50), down: benchcli.Percentile(downs, 50)}, nil
	}
	// Start from a clean machine; an earlier lab would distort the first run.
	if _, err := cli.Timed("lab", "down"); err != nil {
		return err
	}
	base, err := measure(1)
	if err != nil {
		return err
	}
	lab, err := measure(hosts)
	if err != nil {
		return err
	}
	fmt.Printf("| measurement | median of %d | baseline (1-host lab) | ratio |\n|---|---|---|---|\n", runs)
	fmt.Printf("| lab up --hosts %d | %.2fs | %.2fs | %.2fx |\n", hosts, lab.up.Seconds(), base.up.Seconds(), ratio(lab.up, base.up))
	fmt.Printf("| lab down (%d hosts) | %.2fs | %.2fs | %.2fx |\n", hosts, lab.down.Seconds(), base.down.Seconds(), ratio(lab.down, base.down))
	target := 15 * time.Second
	verdict := "met"
	if lab.up >= target {
		verdict = "MISSED"
	}
	fmt.Printf("\ntarget: lab up --hosts %d under %s: %s (%.2fs)\n", hosts, target, verdict, lab.up.Seconds())
	return nil
}

func ratio(a, b time.Duration) float64 { return a.Seconds() / b.Seconds() }
