//go:build e2e

package e2e

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// tmuxSession drives a program in a detached tmux terminal.
type tmuxSession struct {
	t    *testing.T
	name string
}

// startTmux runs command in a new tmux session of the given size.
func startTmux(t *testing.T, name string, width, height int, command string) *tmuxSession {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Fatalf("tmux is needed to drive the dashboard (apt-get install tmux): %v", err)
	}
	_ = exec.Command("tmux", "kill-session", "-t", name).Run()
	out, err := exec.Command("tmux", "new-session", "-d", "-s", name, "-x", fmt.Sprint(width), "-y", fmt.Sprint(height), command).CombinedOutput()
	if err != nil {
		t.Fatalf("tmux new-session: %v: %s", err, out)
	}
	s := &tmuxSession{t: t, name: name}
	t.Cleanup(func() { _ = exec.Command("tmux", "kill-session", "-t", name).Run() })
	return s
}

// screen is what the terminal shows now.
func (s *tmuxSession) screen() string {
	out, err := exec.Command("tmux", "capture-pane", "-p", "-t", s.name).CombinedOutput()
	if err != nil {
		return ""
	}
	return string(out)
}

// keys types keys (tmux key names: Enter, Down, ...).
func (s *tmuxSession) keys(keys ...string) {
	s.t.Helper()
	if out, err := exec.Command("tmux", append([]string{"send-keys", "-t", s.name}, keys...)...).CombinedOutput(); err != nil {
		s.t.Fatalf("tmux send-keys %v: %v: %s", keys, err, out)
	}
}

// waitScreen waits until the screen satisfies ok, and returns it.
func (s *tmuxSession) waitScreen(what string, ok func(string) bool) string {
	s.t.Helper()
	var last string
	eventually(s.t, 30*time.Second, what, func() error {
		last = s.screen()
		if ok(last) {
			return nil
		}
		return fmt.Errorf("screen:\n%s", last)
	})
	return last
}

// column says which host's column of the grid a task's cell is in.
func column(screen, row, task string) string {
	lines := strings.Split(screen, "\n")
	header := ""
	for _, l := range lines {
		if strings.HasPrefix(l, "SERVICE") {
			header = l
		}
		if !strings.HasPrefix(l, row+" ") || header == "" {
			continue
		}
		at := strings.Index(l, task+" ")
		if at < 0 {
			return ""
		}
		best, bestAt := "", -1
		for _, f := range strings.Fields(header)[1:] {
			name := strings.TrimSuffix(strings.Fields(f)[0], "*")
			if i := strings.Index(header, f); i <= at && i > bestAt && strings.HasPrefix(name, "host") {
				best, bestAt = name, i
			}
		}
		return best
	}
	return ""
}

// TestDashboard drives `clusterctl dashboard` in tmux against the lab: it
// shows the hosts and the tasks by host; a move started with m (the
// target picked from the list) completes, and the grid shows the task in
// its new host's column.
func TestDashboard(t *testing.T) {
	c := labCLI(t)
	c.must("lab", "up", "--hosts", "3", "--images", images)
	c.must("up", "-d", "-f", writeCompose(t, moveApp("shop", "copy", 8080)))
	f := &moveFixture{t: t, c: c, app: "shop", port: 8080}
	f.hit(60 * time.Second)
	db := f.task("db.1")

	s := startTmux(t, "clusterctl-dashboard-e2e", 100, 30, fmt.Sprintf("CLUSTERCTL_CONTEXT=%s %s dashboard", c.context, binary))
	screen := s.waitScreen("the grid with db.1 on "+db.Host, func(sc string) bool {
		return strings.Contains(sc, "host1") && strings.Contains(sc, "host3") && column(sc, "shop/db", "db.1") == db.Host
	})
	if !strings.Contains(screen, "db.1 "+db.IP) {
		t.Errorf("the grid does not show db.1's address %s:\n%s", db.IP, screen)
	}
	s.keys("m")
	to := other(c, "host1", db.Host)
	s.waitScreen("the target list", func(sc string) bool {
		return strings.Contains(sc, "> "+to) && strings.Contains(sc, "host1: constraint")
	})
	s.keys("Enter")
	screen = s.waitScreen("db.1 in "+to+"'s column", func(sc string) bool { return column(sc, "shop/db", "db.1") == to })
	f.onlyOn("db.1", to, db.IP)
	f.hit(10 * time.Second)
	t.Logf("dashboard after the move:\n%s", screen)
	s.keys("5")
	s.waitScreen("the move listed done", func(sc string) bool {
		return strings.Contains(sc, fmt.Sprintf("shop/db.1 %s → %s  done", db.Host, to))
	})

	// The leader's manager dies: the dashboard follows the new leader and
	// says so.
	leader := leaderOf(t, c.client())
	c.must("lab", "kill", leader, "server")
	s.waitScreen("the new leader named", func(sc string) bool {
		return strings.Contains(sc, "leader is now host") && strings.Contains(sc, "(was "+leader+")")
	})
	c.must("lab", "revive", leader, "server")
	s.keys("q")
	eventually(t, 10*time.Second, "the dashboard quits on q", func() error {
		if out, err := exec.Command("tmux", "has-session", "-t", s.name).CombinedOutput(); err == nil {
			return fmt.Errorf("still running: %s", out)
		}
		return nil
	})
}
