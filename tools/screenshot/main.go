// Command screenshot takes docs/dashboard.png, the README's picture of
// `clusterctl dashboard` during a move: it brings up a 3-host lab with the
// demo app (its database given some data), runs the dashboard in a tmux
// terminal, starts a move of db from the dashboard (m, then enter), holds
// the move before its final sync (the cluster variable migrate.HoldVar) so
// that the picture shows it under way, captures the terminal with its
// colors and draws it with the Go Mono font. Then it lets the move finish
// and removes the lab. It needs root, tmux, and what `make build images`
// writes.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"image/png"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/clusterctl/clusterctl/contextfile"
	"github.com/clusterctl/clusterctl/migrate"
)

const (
	session = "clusterctl-screenshot"
	cols    = 110
	rows    = 30
)

func main() {
	bin := flag.String("bin", "bin/clusterctl", "clusterctl binary")
	images := flag.String("images", "bin/images", "sample images directory")
	out := flag.String("o", "docs/dashboard.png", "the PNG to write")
	flag.Parse()
	err := run(*bin, *images, *out)
	_ = exec.Command("tmux", "kill-session", "-t", session).Run()
	_, _ = cli(*bin, "lab", "down")
	if err != nil {
		fmt.Fprintln(os.Stderr, "screenshot: "+err.Error())
		os.Exit(1)
	}
}

func run(bin, images, out string) error {
	bin, err := filepath.Abs(bin)
	if err != nil {
		return err
	}
	steps := [][]string{{"lab", "down"}, {"lab", "up", "--hosts", "3", "--images", images}, {"up", "-d", "-f", "samples/dockercon/compose.yml"}}
	for _, s := range steps {
		if _, err := cli(bin, s...); err != nil {
			return err
		}
	}
	if err := fillDB(bin, 512<<20); err != nil {
		return err
	}
	if _, err := exec.Command("tmux", "new-session", "-d", "-s", session, "-x", strconv.Itoa(cols), "-y", strconv.Itoa(rows), bin+" dashboard").CombinedOutput(); err != nil {
		return fmt.Errorf("tmux: %w", err)
	}
	if _, err := waitScreen("the grid", func(s string) bool { return strings.Contains(s, "dockercon/db") && strings.Contains(s, "db.1 10.200") }); err != nil {
		return err
	}
	if err := hold(migrate.StepSync); err != nil {
		return err
	}
	// db is the first task of the grid: m opens the target list, enter
	// takes the first host that fits.
	if err := keys("m"); err != nil {
		return err
	}
	if _, err := waitScreen("the target list", func(s string) bool { return strings.Contains(s, "> host") }); err != nil {
		return err
	}
	if err := keys("Enter"); err != nil {
		return err
	}
	if _, err := waitScreen("the move held before its final sync", func(s string) bool { return strings.Contains(s, "[sync]") }); err != nil {
		return err
	}
	time.Sleep(500 * time.Millisecond) // let the last redraw land
	shot, err := exec.Command("tmux", "capture-pane", "-e", "-p", "-t", session).Output()
	if err != nil {
		return fmt.Errorf("capture: %w", err)
	}
	if err := writePNG(string(shot), out); err != nil {
		return err
	}
	if err := hold("none"); err != nil {
		return err
	}
	_, err = waitScreen("the move done", func(s string) bool { return !strings.Contains(s, "[sync]") && !strings.Contains(s, "→host") })
	return err
}

// fillDB writes size bytes of random files into db's volume on its host.
func fillDB(bin string, size int64) error {
	raw, err := cli(bin, "ps", "-p", "dockercon", "-o", "json")
	if err != nil {
		return err
	}
	var ps struct{ Tasks []struct{ Task, Host string } }
	if err := json.Unmarshal([]byte(raw), &ps); err != nil {
		return err
	}
	host := ""
	for _, t := range ps.Tasks {
		if t.Task == "db.1" {
			host = t.Host
		}
	}
	dir := filepath.Join("/var/lib/clusterctl/lab/hosts", host, "agent/volumes/dockercon_data/data/blobs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	buf := make([]byte, 4<<20)
	rng := rand.NewChaCha8([32]byte{7})
	for i := range int(size / int64(len(buf))) {
		_, _ = rng.Read(buf)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("blob%03d", i)), buf, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// writePNG draws the captured terminal.
func writePNG(text, out string) error {
	fc, err := newFaces(14)
	if err != nil {
		return err
	}
	img := render(parseANSI(text), cols, rows, fc)
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// hold holds moves before step ("none" lets them go).
func hold(step string) error {
	ctxFile, err := contextfile.Load(contextfile.Path(""))
	if err != nil {
		return err
	}
	client, err := ctxFile.Client()
	if err != nil {
		return err
	}
	_, err = client.SetVar(context.Background(), migrate.HoldVar, step)
	return err
}

// cli runs a clusterctl command.
func cli(bin string, args ...string) (string, error) {
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("clusterctl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

func keys(k ...string) error {
	return exec.Command("tmux", append([]string{"send-keys", "-t", session}, k...)...).Run()
}

// waitScreen polls the terminal until ok.
func waitScreen(what string, ok func(string) bool) (string, error) {
	deadline := time.Now().Add(30 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		b, _ := exec.Command("tmux", "capture-pane", "-p", "-t", session).Output()
		if last = string(b); ok(last) {
			return last, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return last, fmt.Errorf("no %s on the screen within 30s:\n%s", what, last)
}
