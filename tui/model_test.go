package tui

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/exp/teatest"

	"github.com/clusterctl/clusterctl/api"
	"github.com/clusterctl/clusterctl/store"
)

// fakeSource is a cluster in memory: a snapshot, the fits it answers and
// the actions it was asked for.
type fakeSource struct {
	mu      sync.Mutex
	snap    Snapshot
	fits    []Fit
	moved   []string // "app/task->host"
	drained []string
	events  chan store.Event
}

func newFake() *fakeSource {
	return &fakeSource{snap: sampleSnapshot(), events: make(chan store.Event, 8),
		fits: []Fit{{Host: "host1", Reason: "constraint node.hostname != host1 not met"}, {Host: "host3"}}}
}

func (f *fakeSource) Snapshot(context.Context) (Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.snap, nil
}

func (f *fakeSource) Watch(ctx context.Context, _ uint64, fn func(store.Event) error) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev := <-f.events:
			if err := fn(ev); err != nil {
				return err
			}
		}
	}
}

func (f *fakeSource) Fits(context.Context, api.TaskStatus) ([]Fit, error) { return f.fits, nil }

func (f *fakeSource) Move(_ context.Context, t api.TaskStatus, to string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.moved = append(f.moved, t.App+"/"+t.Task+"->"+to)
	for i := range f.snap.Tasks {
		if f.snap.Tasks[i].ID == t.ID {
			f.snap.Tasks[i].Host = to
		}
	}
	return nil
}

func (f *fakeSource) Drain(_ context.Context, host string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.drained = append(f.drained, host)
	return nil
}

// sampleSnapshot is the demo's picture: web on host1, db on host2.
func sampleSnapshot() Snapshot {
	return Snapshot{
		Leader: "host1",
		Hosts: []store.Host{
			{Name: "host1", Addr: "10.99.0.11", State: store.HostUp, CPUs: 2, MemoryBytes: 1 << 30, Usage: &store.HostUsage{CPUCores: 0.25, MemoryBytes: 256 << 20}},
			{Name: "host2", Addr: "10.99.0.12", State: store.HostUp, CPUs: 2, MemoryBytes: 1 << 30},
			{Name: "host3", Addr: "10.99.0.13", State: store.HostDown, CPUs: 2, MemoryBytes: 1 << 30},
		},
		Tasks: []api.TaskStatus{
			{App: "shop", Service: "db", Task: "db.1", Slot: 1, ID: "shop.db.1.x", Host: "host2", State: "running", Desired: "running", Health: "healthy", IP: "10.200.0.2"},
			{App: "shop", Service: "web", Task: "web.1", Slot: 1, ID: "shop.web.1.y", Host: "host1", State: "running", Desired: "running", IP: "10.200.0.3"},
			{App: "blog", Service: "app", Task: "app.1", Slot: 1, ID: "blog.app.1.z", Host: "host1", State: "pending", Desired: "running"},
		},
		Volumes:  []api.Volume{{Name: "shop_data", Backend: "copy", Owner: "host2", Generation: 3}},
		Networks: []api.Network{{Name: "shop_back", Subnet: "10.200.0.0/24", VNI: 4096, Leases: []api.Lease{{Addr: "10.200.0.2", Task: "shop.db.1.x", Host: "host2"}}}},
		Moves: []api.Move{{Move: store.Move{ID: "m1", TaskID: "shop.db.1.x", App: "shop", Service: "db", Slot: 1, From: "host2", To: "host3",
			Step: "precopy", State: store.MoveRunning, Bytes: 100 << 20, BytesSent: 50 << 20, Rate: 10 << 20}}},
	}
}

// loaded is a model that has read the sample snapshot.
func loaded(t *testing.T, src Source) Model {
	t.Helper()
	m := New(context.Background(), src)
	snap, _ := src.Snapshot(context.Background())
	next, _ := m.Update(snapshotMsg{snap: snap})
	return next.(Model)
}

// press sends keys and returns the model and the last command.
func press(m Model, keys ...string) (Model, tea.Cmd) {
	var cmd tea.Cmd
	for _, k := range keys {
		var msg tea.KeyMsg
		switch k {
		case "enter":
			msg = tea.KeyMsg{Type: tea.KeyEnter}
		case "esc":
			msg = tea.KeyMsg{Type: tea.KeyEsc}
		case "down":
			msg = tea.KeyMsg{Type: tea.KeyDown}
		case "tab":
			msg = tea.KeyMsg{Type: tea.KeyTab}
		default:
			msg = tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(k)}
		}
		next, c := m.Update(msg)
		m, cmd = next.(Model), c
	}
	return m, cmd
}

func TestGridShowsTasksByHostWithTheirAddresses(t *testing.T) {
	m := loaded(t, newFake())
	out := m.View()
	for _, want := range []string{"host1*", "host3 (down)", "shop/db", "db.1 10.200.0.2", "web.1 10.200.0.3", "blog/app", "→host3", "[precopy]", "50MiB of 100MiB"} {
		if !strings.Contains(out, want) {
			t.Errorf("grid lacks %q:\n%s", want, out)
		}
	}
	if lines := strings.Count(out, "\n") + 1; lines != 24 {
		t.Errorf("the view has %d lines, want the terminal's 24", lines)
	}
}

func TestViewFitsTheTerminalAndResizes(t *testing.T) {
	m := loaded(t, newFake())
	for _, size := range []tea.WindowSizeMsg{{Width: 80, Height: 24}, {Width: 120, Height: 40}, {Width: 60, Height: 15}} {
		next, _ := m.Update(size)
		m = next.(Model)
		for v := range viewCount {
			m.view = v
			out := m.View()
			if lines := strings.Count(out, "\n") + 1; lines != size.Height {
				t.Errorf("%dx%d view %s: %d lines", size.Width, size.Height, viewNames[v], lines)
			}
			for _, l := range strings.Split(out, "\n") {
				if w := lipgloss.Width(l); w > size.Width {
					t.Errorf("%dx%d view %s: a line %d wide: %q", size.Width, size.Height, viewNames[v], w, l)
				}
			}
		}
	}
}

func TestViewsShowEachKind(t *testing.T) {
	m := loaded(t, newFake())
	for v, want := range map[view][]string{
		viewHosts:    {"host1", "up, leader", "10.99.0.12", "down", "0.25 of 2", "256MiB of 1GiB"},
		viewVolumes:  {"shop_data", "copy", "host2"},
		viewNetworks: {"shop_back", "10.200.0.0/24", "4096", "10.200.0.2 shop.db.1@host2"},
		viewMoves:    {"shop/db.1 host2 → host3", "running", "[precopy]"},
	} {
		m.view = v
		out := m.View()
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("view %s lacks %q:\n%s", viewNames[v], w, out)
			}
		}
	}
}

func TestMoveKeyPicksATargetAndMoves(t *testing.T) {
	src := newFake()
	m := loaded(t, src)
	m, cmd := press(m, "m") // db.1 is first (blog/app, then shop/db, shop/web)
	if m.mode != modePick || m.pickTask.Task != "app.1" {
		t.Fatalf("after m: mode %v on %q", m.mode, m.pickTask.Task)
	}
	m, _ = press(m, "esc", "down", "m")
	if m.pickTask.Task != "db.1" {
		t.Fatalf("picked %q, want db.1", m.pickTask.Task)
	}
	next, _ := m.Update(cmd())
	m = next.(Model)
	next, _ = m.Update(fitsMsg{task: m.pickTask, fits: src.fits})
	m = next.(Model)
	out := m.View()
	if !strings.Contains(out, "host1: constraint node.hostname != host1 not met") || !strings.Contains(out, "> host3") {
		t.Errorf("picker:\n%s", out)
	}
	m, cmd = press(m, "enter")
	if m.mode != modeNormal || cmd == nil {
		t.Fatalf("enter did not start the move: mode %v", m.mode)
	}
	next, _ = m.Update(cmd())
	m = next.(Model)
	if len(src.moved) != 1 || src.moved[0] != "shop/db.1->host3" {
		t.Errorf("moves asked: %v", src.moved)
	}
	if !strings.Contains(m.status, "move of shop/db.1 to host3 started") {
		t.Errorf("status %q", m.status)
	}
}

func TestPickerSkipsHostsThatDoNotFit(t *testing.T) {
	fits := []Fit{{Host: "a", Reason: "full"}, {Host: "b"}, {Host: "c", Reason: "down"}, {Host: "d"}}
	if got := firstFit(fits); got != 1 {
		t.Errorf("firstFit = %d", got)
	}
	if got := stepFit(fits, 1, 1); got != 3 {
		t.Errorf("down from b = %d, want d", got)
	}
	if got := stepFit(fits, 3, 1); got != 3 {
		t.Errorf("down from the last = %d", got)
	}
	if got := stepFit(fits, 1, -1); got != 1 {
		t.Errorf("up from the first fit = %d", got)
	}
}

func TestDrainAsksFirst(t *testing.T) {
	src := newFake()
	m := loaded(t, src)
	m, _ = press(m, "2", "down", "d")
	if m.mode != modeConfirm || m.drain != "host2" || !strings.Contains(m.View(), "Drain host2?") {
		t.Fatalf("mode %v drain %q", m.mode, m.drain)
	}
	m, cmd := press(m, "n")
	if cmd != nil || len(src.drained) != 0 || !strings.Contains(m.status, "cancelled") {
		t.Fatalf("n drained: %v, status %q", src.drained, m.status)
	}
	m, _ = press(m, "d")
	_, cmd = press(m, "y")
	cmd()
	if len(src.drained) != 1 || src.drained[0] != "host2" {
		t.Errorf("drained %v", src.drained)
	}
}

func TestProjectFilterCycles(t *testing.T) {
	m := loaded(t, newFake())
	m, _ = press(m, "p")
	if m.project != "blog" || strings.Contains(m.View(), "shop/db") {
		t.Errorf("project %q:\n%s", m.project, m.View())
	}
	m, _ = press(m, "p", "p")
	if m.project != "" || !strings.Contains(m.View(), "shop/db") {
		t.Errorf("after a full cycle, project %q", m.project)
	}
}

func TestLeaderChangeAndLostStreamAreSaid(t *testing.T) {
	m := loaded(t, newFake())
	next, _ := m.Update(watchErrMsg{err: errors.New("connection refused")})
	m = next.(Model)
	if !strings.Contains(m.status, "reconnecting") {
		t.Errorf("status %q", m.status)
	}
	snap := sampleSnapshot()
	snap.Leader = "host2"
	next, _ = m.Update(snapshotMsg{snap: snap})
	m = next.(Model)
	if m.status != "leader is now host2 (was host1)" || !strings.Contains(m.View(), "leader host2") {
		t.Errorf("status %q", m.status)
	}
}

func TestEventsAreLoggedAndReload(t *testing.T) {
	m := loaded(t, newFake())
	next, cmd := m.Update(eventMsg{ev: store.Event{Type: "task.put", Key: "shop.db.1.x"}})
	m = next.(Model)
	if cmd == nil || !m.loading {
		t.Error("an event did not start a reload")
	}
	// A burst while the read runs makes one more read, later.
	next, _ = m.Update(eventMsg{ev: store.Event{Type: "host.heartbeat", Key: "host2"}})
	m = next.(Model)
	if !m.dirty {
		t.Error("an event during a read was forgotten")
	}
	m.view = viewEvents
	if out := m.View(); !strings.Contains(out, "task.put shop.db.1.x") || !strings.Contains(out, "host.heartbeat host2") {
		t.Errorf("events view:\n%s", out)
	}
}

// TestDashboardSmoke runs the real program loop on a fake cluster: it
// shows the grid, follows an event to a new snapshot, and quits.
func TestDashboardSmoke(t *testing.T) {
	src := newFake()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tm := teatest.NewTestModel(t, New(ctx, src), teatest.WithInitialTermSize(80, 24))
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool { return strings.Contains(string(b), "db.1 10.200.0.2") },
		teatest.WithDuration(5*time.Second))
	src.mu.Lock()
	src.snap.Tasks[0].Host = "host1"
	src.mu.Unlock()
	src.events <- store.Event{Index: 9, Type: "task.put", Key: "shop.db.1.x"}
	tm.Send(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("5")})
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool { return strings.Contains(string(b), "shop/db.1 host2") },
		teatest.WithDuration(5*time.Second))
	tm.Send(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("q")})
	final := tm.FinalModel(t, teatest.WithFinalTimeout(5*time.Second)).(Model)
	if got := final.snap.Tasks[0].Host; got != "host1" {
		t.Errorf("after the event the dashboard still has db.1 on %s", got)
	}
}

func TestTasksOfAServiceOnDifferentHostsShareALine(t *testing.T) {
	src := newFake()
	src.snap.Tasks = append(src.snap.Tasks, api.TaskStatus{App: "shop", Service: "web", Task: "web.2", Slot: 2, ID: "shop.web.2.w", Host: "host2", State: "running", Desired: "running", IP: "10.200.0.4"},
		api.TaskStatus{App: "shop", Service: "web", Task: "web.3", Slot: 3, ID: "shop.web.3.v", Host: "host2", State: "running", Desired: "running", IP: "10.200.0.5"})
	m := loaded(t, src)
	var shared, second bool
	for _, line := range strings.Split(m.View(), "\n") {
		if strings.Contains(line, "shop/web") && strings.Contains(line, "web.1 10.200.0.3") && strings.Contains(line, "web.2 10.200.0.4") {
			shared = true
		}
		if !strings.Contains(line, "shop/") && strings.Contains(line, "web.3 10.200.0.5") {
			second = true
		}
	}
	if !shared || !second {
		t.Errorf("want web.1 and web.2 on the service's line, web.3 on the next:\n%s", m.View())
	}
}
