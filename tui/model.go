// Package tui is `clusterctl dashboard`: a bubbletea view of the cluster
// (hosts, tasks by host, volumes, networks, moves, events) fed by the
// store's event stream, from which tasks can be moved and hosts drained.
//
// The root Model holds the state (which view, which dialog, the last
// snapshot); rendering is in views.go, keys in keys.go, and every bit of
// I/O is a tea.Cmd over a Source (source.go), so Update and View are pure
// and tested without a cluster.
package tui

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/help"
	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/progress"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/clusterctl/clusterctl/api"
	"github.com/clusterctl/clusterctl/store"
)

// view is one of the dashboard's pages.
type view int

const (
	viewGrid view = iota // services and tasks by host: the 2015 demo's picture
	viewHosts
	viewVolumes
	viewNetworks
	viewMoves
	viewEvents
	viewCount
)

var viewNames = [viewCount]string{"Tasks", "Hosts", "Volumes", "Networks", "Moves", "Events"}

// mode is what the keys act on: the view, or a dialog over it.
type mode int

const (
	modeNormal  mode = iota
	modePick         // choosing the target host of a move
	modeConfirm      // confirming a drain
	modeHelp
)

// Timings of the dashboard's I/O.
const (
	callTimeout = 15 * time.Second // one snapshot or action
	retryWatch  = time.Second      // after the event stream broke
	refreshIdle = 5 * time.Second  // a reload even without events
	logLines    = 200              // events kept for the log view
	reloadGap   = 200 * time.Millisecond
)

// Model is the dashboard's state.
type Model struct {
	ctx    context.Context
	src    Source
	keys   keyMap
	help   help.Model
	bar    progress.Model
	events chan tea.Msg // the watcher's messages

	width, height int
	view          view
	mode          mode
	snap          Snapshot
	loaded        bool
	loading       bool // a snapshot is being read
	dirty         bool // something changed while it was
	project       string
	taskSel       int
	hostSel       int

	pickTask api.TaskStatus
	fits     []Fit
	fitSel   int
	drain    string

	status string   // the last thing worth saying, one line
	log    []string // events, newest last
	leader string
}

// New returns the dashboard over a source; ctx ends its background work.
func New(ctx context.Context, src Source) Model {
	return Model{ctx: ctx, src: src, keys: newKeyMap(), help: help.New(),
		bar: progress.New(progress.WithDefaultGradient(), progress.WithoutPercentage()), events: make(chan tea.Msg, 64),
		width: 80, height: 24, status: "connecting..."}
}

// Messages from the dashboard's commands.
type (
	snapshotMsg struct {
		snap Snapshot
		err  error
	}
	eventMsg    struct{ ev store.Event }
	watchErrMsg struct{ err error }
	fitsMsg     struct {
		task api.TaskStatus
		fits []Fit
		err  error
	}
	actionMsg struct {
		what string
		err  error
	}
	refreshMsg struct{} // the idle reload
	reloadMsg  struct{} // a reload put off after the last one
)

// Init reads the cluster and starts following its events.
func (m Model) Init() tea.Cmd {
	return tea.Batch(m.load(), m.watch(0), m.nextEvent(), refreshLater())
}

// load reads a snapshot.
func (m Model) load() tea.Cmd {
	src, ctx := m.src, m.ctx
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		snap, err := src.Snapshot(ctx)
		return snapshotMsg{snap: snap, err: err}
	}
}

// watch follows the event stream from index in the background, handing
// each event (and each break of the stream) to the events channel, and
// reconnecting (the API client picks another manager) after a break.
func (m Model) watch(index uint64) tea.Cmd {
	src, ctx, ch := m.src, m.ctx, m.events
	return func() tea.Msg {
		go func() {
			for ctx.Err() == nil {
				err := src.Watch(ctx, index, func(ev store.Event) error {
					index = ev.Index
					select {
					case ch <- eventMsg{ev}:
					case <-ctx.Done():
					}
					return ctx.Err()
				})
				if ctx.Err() != nil {
					return
				}
				select {
				case ch <- watchErrMsg{err}:
				case <-ctx.Done():
				}
				time.Sleep(retryWatch)
			}
		}()
		return nil
	}
}

// nextEvent waits for the watcher's next message.
func (m Model) nextEvent() tea.Cmd {
	ch, ctx := m.events, m.ctx
	return func() tea.Msg {
		select {
		case msg := <-ch:
			return msg
		case <-ctx.Done():
			return nil
		}
	}
}

func refreshLater() tea.Cmd {
	return tea.Tick(refreshIdle, func(time.Time) tea.Msg { return refreshMsg{} })
}

// Update handles a message.
func (m Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		m.help.Width = msg.Width
		return m, nil
	case tea.KeyMsg:
		return m.key(msg)
	case snapshotMsg:
		return m.gotSnapshot(msg)
	case eventMsg:
		m.addLog(describe(msg.ev))
		m.dirty = true
		return m, tea.Batch(m.nextEvent(), m.loadIfIdle())
	case watchErrMsg:
		m.status = "lost the event stream (" + short(msg.err) + "): reconnecting"
		return m, m.nextEvent()
	case refreshMsg:
		m.dirty = true
		return m, tea.Batch(m.loadIfIdle(), refreshLater())
	case reloadMsg:
		return m, m.loadIfIdle()
	case fitsMsg:
		if m.mode == modePick && msg.task.ID == m.pickTask.ID {
			m.fits, m.fitSel = msg.fits, firstFit(msg.fits)
			if msg.err != nil {
				m.mode, m.status = modeNormal, "cannot list targets: "+short(msg.err)
			}
		}
		return m, nil
	case actionMsg:
		if msg.err != nil {
			m.status = msg.what + " failed: " + short(msg.err)
		} else {
			m.status = msg.what
		}
		m.addLog(m.status)
		m.dirty = true
		return m, m.loadIfIdle()
	}
	return m, nil
}

// loadIfIdle reads a snapshot if one is due (dirty) and none is being
// read: bursts of events make one read, not one each.
func (m *Model) loadIfIdle() tea.Cmd {
	if m.loading || !m.dirty {
		return nil
	}
	m.loading, m.dirty = true, false
	return m.load()
}

// gotSnapshot takes a new snapshot, saying when the leader changed.
func (m Model) gotSnapshot(msg snapshotMsg) (tea.Model, tea.Cmd) {
	m.loading = false
	if msg.err != nil {
		m.status = "cannot read the cluster (" + short(msg.err) + "): retrying"
		return m, nil
	}
	if m.loaded && msg.snap.Leader != m.leader {
		m.status = fmt.Sprintf("leader is now %s (was %s)", dash(msg.snap.Leader), dash(m.leader))
		m.addLog(m.status)
	} else if !m.loaded || strings.HasPrefix(m.status, "lost") || strings.HasPrefix(m.status, "cannot read") || m.status == "connecting..." {
		m.status = "connected, leader " + dash(msg.snap.Leader)
	}
	m.snap, m.loaded, m.leader = msg.snap, true, msg.snap.Leader
	m.clampSelection()
	var cmd tea.Cmd
	if m.dirty {
		cmd = tea.Tick(reloadGap, func(time.Time) tea.Msg { return reloadMsg{} })
	}
	return m, cmd
}

// key handles a key press in the current mode.
func (m Model) key(msg tea.KeyMsg) (tea.Model, tea.Cmd) {
	if key.Matches(msg, m.keys.Quit) && m.mode != modePick {
		return m, tea.Quit
	}
	switch m.mode {
	case modeHelp:
		m.mode = modeNormal
		return m, nil
	case modePick:
		return m.pickKey(msg)
	case modeConfirm:
		return m.confirmKey(msg)
	}
	switch {
	case key.Matches(msg, m.keys.Help):
		m.mode = modeHelp
	case key.Matches(msg, m.keys.Next):
		m.view = (m.view + 1) % viewCount
	case key.Matches(msg, m.keys.Prev):
		m.view = (m.view + viewCount - 1) % viewCount
	case key.Matches(msg, m.keys.Grid, m.keys.Hosts, m.keys.Vols, m.keys.Nets, m.keys.Moves, m.keys.Event):
		m.view = view(msg.String()[0] - '1')
	case key.Matches(msg, m.keys.Up):
		m.moveSelection(-1)
	case key.Matches(msg, m.keys.Down):
		m.moveSelection(1)
	case key.Matches(msg, m.keys.Project):
		m.nextProject()
	case key.Matches(msg, m.keys.Move):
		return m.startPick()
	case key.Matches(msg, m.keys.Drain):
		return m.startDrain()
	}
	return m, nil
}

// startPick opens the target picker for the selected task.
func (m Model) startPick() (tea.Model, tea.Cmd) {
	t, ok := m.selectedTask()
	if !ok || m.view != viewGrid {
		m.status = "select a task first (view 1, ↑/↓)"
		return m, nil
	}
	m.mode, m.pickTask, m.fits, m.fitSel = modePick, t, nil, 0
	src, ctx := m.src, m.ctx
	return m, func() tea.Msg {
		ctx, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		fits, err := src.Fits(ctx, t)
		return fitsMsg{task: t, fits: fits, err: err}
	}
}

// pickKey moves within the picker, starts the move, or cancels.
func (m Model) pickKey(msg tea.KeyMsg) (tea.Model, tea.Cmd) {
	switch {
	case key.Matches(msg, m.keys.Cancel), msg.String() == "q":
		m.mode = modeNormal
	case key.Matches(msg, m.keys.Up):
		m.fitSel = stepFit(m.fits, m.fitSel, -1)
	case key.Matches(msg, m.keys.Down):
		m.fitSel = stepFit(m.fits, m.fitSel, 1)
	case key.Matches(msg, m.keys.Confirm):
		if m.fitSel < 0 || m.fitSel >= len(m.fits) || m.fits[m.fitSel].Reason != "" {
			return m, nil
		}
		t, to := m.pickTask, m.fits[m.fitSel].Host
		m.mode, m.status = modeNormal, fmt.Sprintf("moving %s/%s to %s...", t.App, t.Task, to)
		src, ctx := m.src, m.ctx
		return m, func() tea.Msg {
			ctx, cancel := context.WithTimeout(ctx, callTimeout)
			defer cancel()
			err := src.Move(ctx, t, to)
			return actionMsg{what: fmt.Sprintf("move of %s/%s to %s started", t.App, t.Task, to), err: err}
		}
	}
	return m, nil
}

// startDrain asks to confirm the drain of the selected host (hosts view)
// or of the selected task's host (tasks view).
func (m Model) startDrain() (tea.Model, tea.Cmd) {
	host := ""
	switch m.view {
	case viewHosts:
		if m.hostSel < len(m.snap.Hosts) {
			host = m.snap.Hosts[m.hostSel].Name
		}
	case viewGrid:
		if t, ok := m.selectedTask(); ok {
			host = t.Host
		}
	}
	if host == "" {
		m.status = "select a host (view 2) or a task first"
		return m, nil
	}
	m.mode, m.drain = modeConfirm, host
	return m, nil
}

// confirmKey drains on yes, goes back on anything else.
func (m Model) confirmKey(msg tea.KeyMsg) (tea.Model, tea.Cmd) {
	m.mode = modeNormal
	if !key.Matches(msg, m.keys.Confirm) {
		m.status = "drain of " + m.drain + " cancelled"
		return m, nil
	}
	host := m.drain
	m.status = "draining " + host + "..."
	src, ctx := m.src, m.ctx
	return m, func() tea.Msg {
		ctx, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		return actionMsg{what: "drain of " + host + " started", err: src.Drain(ctx, host)}
	}
}

// visibleTasks are the tasks of the grid, in its order: by app, service
// and slot, only the project filtered on, only those desired running.
func (m Model) visibleTasks() []api.TaskStatus {
	var out []api.TaskStatus
	for _, t := range m.snap.Tasks {
		if (m.project == "" || t.App == m.project) && t.Desired == store.TaskRunning {
			out = append(out, t)
		}
	}
	slices.SortFunc(out, func(a, b api.TaskStatus) int {
		if c := strings.Compare(a.App, b.App); c != 0 {
			return c
		}
		return strings.Compare(a.Task, b.Task)
	})
	return out
}

// selectedTask is the task under the cursor.
func (m Model) selectedTask() (api.TaskStatus, bool) {
	tasks := m.visibleTasks()
	if m.taskSel < 0 || m.taskSel >= len(tasks) {
		return api.TaskStatus{}, false
	}
	return tasks[m.taskSel], true
}

// moveSelection moves the cursor of the current view.
func (m *Model) moveSelection(by int) {
	switch m.view {
	case viewGrid:
		m.taskSel += by
	case viewHosts:
		m.hostSel += by
	}
	m.clampSelection()
}

func (m *Model) clampSelection() {
	m.taskSel = clamp(m.taskSel, len(m.visibleTasks()))
	m.hostSel = clamp(m.hostSel, len(m.snap.Hosts))
}

func clamp(i, n int) int { return max(0, min(i, n-1)) }

// nextProject cycles the filter: every app, then all.
func (m *Model) nextProject() {
	apps := m.snap.apps()
	i := slices.Index(apps, m.project)
	switch {
	case len(apps) == 0:
		m.project = ""
	case m.project == "":
		m.project = apps[0]
	case i+1 < len(apps):
		m.project = apps[i+1]
	default:
		m.project = ""
	}
	m.taskSel = 0
	m.status = "project: " + orAll(m.project)
}

// addLog appends a line to the event log, dropping the oldest.
func (m *Model) addLog(line string) {
	m.log = append(m.log, time.Now().Format("15:04:05")+" "+line)
	if len(m.log) > logLines {
		m.log = m.log[len(m.log)-logLines:]
	}
}

// firstFit is the first host that fits, -1 if none.
func firstFit(fits []Fit) int {
	for i, f := range fits {
		if f.Reason == "" {
			return i
		}
	}
	return -1
}

// stepFit moves to the next fitting host in a direction, staying put at
// the end.
func stepFit(fits []Fit, from, by int) int {
	for i := from + by; i >= 0 && i < len(fits); i += by {
		if fits[i].Reason == "" {
			return i
		}
	}
	return from
}

// describe is one line of the event log.
func describe(ev store.Event) string { return ev.Type + " " + ev.Key }

func short(err error) string {
	msg := err.Error()
	if len(msg) > 120 {
		msg = msg[:117] + "..."
	}
	return msg
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func orAll(project string) string {
	if project == "" {
		return "all"
	}
	return project
}

// Run shows the dashboard on the terminal until the user quits.
func Run(ctx context.Context, src Source) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	_, err := tea.NewProgram(New(ctx, src), tea.WithAltScreen(), tea.WithContext(ctx)).Run()
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("dashboard: %w", err)
	}
	return nil
}
