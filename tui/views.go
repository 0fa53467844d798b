package tui

import (
	"fmt"
	"slices"
	"strings"

	"github.com/charmbracelet/lipgloss"
	units "github.com/docker/go-units"

	"github.com/clusterctl/clusterctl/api"
	"github.com/clusterctl/clusterctl/store"
)

// Styles: few, and readable without color.
var (
	titleStyle    = lipgloss.NewStyle().Bold(true)
	tabStyle      = lipgloss.NewStyle().Padding(0, 1)
	activeTab     = tabStyle.Reverse(true).Bold(true)
	headerStyle   = lipgloss.NewStyle().Bold(true).Underline(true)
	selectedStyle = lipgloss.NewStyle().Reverse(true)
	dimStyle      = lipgloss.NewStyle().Faint(true)
	goodStyle     = lipgloss.NewStyle().Foreground(lipgloss.Color("2"))
	warnStyle     = lipgloss.NewStyle().Foreground(lipgloss.Color("3"))
	badStyle      = lipgloss.NewStyle().Foreground(lipgloss.Color("1"))
	boxStyle      = lipgloss.NewStyle().Border(lipgloss.RoundedBorder()).Padding(0, 1)
)

// View renders the whole screen: tabs, the page (or a dialog), status and
// keys, in exactly the terminal's height.
func (m Model) View() string {
	body := ""
	switch m.mode {
	case modeHelp:
		body = m.help.FullHelpView(m.keys.FullHelp())
	case modePick:
		body = m.pickView()
	case modeConfirm:
		body = boxStyle.Render(fmt.Sprintf("Drain %s? Every task on it moves elsewhere, and it takes no new tasks until clusterctl activate %s.\n\nenter/y: drain   esc/n: cancel", m.drain, m.drain))
	default:
		body = m.page()
	}
	foot := m.footer()
	lines := m.height - 1 - lipgloss.Height(foot)
	return lipgloss.JoinVertical(lipgloss.Left, m.tabs(), fit(body, lines, m.width), foot)
}

// tabs is the first line: the views, the leader and the filter.
func (m Model) tabs() string {
	var parts []string
	for v := range viewCount {
		name := fmt.Sprintf("%d %s", v+1, viewNames[v])
		if v == m.view {
			parts = append(parts, activeTab.Render(name))
		} else {
			parts = append(parts, tabStyle.Render(name))
		}
	}
	right := fmt.Sprintf(" leader %s · project %s", dash(m.leader), orAll(m.project))
	return truncate(strings.Join(parts, "")+dimStyle.Render(right), m.width)
}

// footer is the status line and the short help.
func (m Model) footer() string {
	return lipgloss.JoinVertical(lipgloss.Left, truncate(m.status, m.width), truncate(m.help.ShortHelpView(m.keys.ShortHelp()), m.width))
}

// page renders the current view.
func (m Model) page() string {
	if !m.loaded {
		return "reading the cluster..."
	}
	switch m.view {
	case viewHosts:
		return m.hostsView()
	case viewVolumes:
		return m.volumesView()
	case viewNetworks:
		return m.networksView()
	case viewMoves:
		return m.movesView(false)
	case viewEvents:
		return m.eventsView()
	}
	return m.gridView()
}

// gridView is services down, hosts across, each task in its host's
// column with its address and state: the 2015 demo's picture. Moves in
// progress follow.
func (m Model) gridView() string {
	hosts := m.snap.Hosts
	tasks := m.visibleTasks()
	if len(tasks) == 0 {
		return "no tasks" + filterNote(m.project) + ": clusterctl up -f compose.yml deploys an app"
	}
	first := 8
	for _, t := range tasks {
		first = max(first, min(20, len(t.App)+len(t.Service)+3))
	}
	col := max(12, (m.width-first)/max(1, len(hosts)))
	var b strings.Builder
	b.WriteString(pad("SERVICE", first))
	for _, h := range hosts {
		b.WriteString(pad(hostLabel(h, m.leader), col))
	}
	b.WriteString("\n")
	sel, _ := m.selectedTask()
	for _, group := range byService(tasks) {
		// One line per task a host has of the service: tasks of one
		// service on different hosts share a line.
		perHost := map[string][]api.TaskStatus{}
		lines := 1
		for _, t := range group {
			perHost[t.Host] = append(perHost[t.Host], t)
			lines = max(lines, len(perHost[t.Host]))
		}
		for line := range lines {
			label := ""
			if line == 0 {
				label = group[0].App + "/" + group[0].Service
			}
			b.WriteString(pad(label, first))
			for _, h := range hosts {
				cell := ""
				var t api.TaskStatus
				if here := perHost[h.Name]; line < len(here) {
					t = here[line]
					cell = fmt.Sprintf("%s %s %s", t.Task, dash(t.IP), stateMark(t, m.movingTo(t)))
				}
				cell = pad(cell, col)
				if cell != "" && t.ID != "" && t.ID == sel.ID {
					cell = selectedStyle.Render(cell)
				}
				b.WriteString(cell)
			}
			b.WriteString("\n")
		}
	}
	if moves := m.movesView(true); moves != "" {
		b.WriteString("\n" + moves)
	}
	return b.String()
}

// byService groups tasks (sorted by app and task) by service, in order.
func byService(tasks []api.TaskStatus) [][]api.TaskStatus {
	var out [][]api.TaskStatus
	for _, t := range tasks {
		if n := len(out); n > 0 && out[n-1][0].App == t.App && out[n-1][0].Service == t.Service {
			out[n-1] = append(out[n-1], t)
			continue
		}
		out = append(out, []api.TaskStatus{t})
	}
	return out
}

// hostLabel is a host's column header: name, leader star, state.
func hostLabel(h store.Host, leader string) string {
	label := h.Name
	if h.Name == leader {
		label += "*"
	}
	if h.State != store.HostUp {
		label += " (" + string(h.State) + ")"
	} else if h.Draining {
		label += " (draining)"
	}
	return label
}

// stateMark is a task's state in a grid cell.
func stateMark(t api.TaskStatus, movingTo string) string {
	switch {
	case movingTo != "":
		return warnStyle.Render("→" + movingTo)
	case t.State == store.TaskRunning && (t.Health == "" || t.Health == "healthy"):
		return goodStyle.Render("●")
	case t.State == store.TaskRunning:
		return warnStyle.Render("◐ " + t.Health)
	case t.State == store.TaskLost || t.State == store.TaskExited:
		return badStyle.Render("✗ " + t.State)
	}
	return warnStyle.Render("○ " + t.State)
}

// movingTo is where an active move takes a task, "" if none.
func (m Model) movingTo(t api.TaskStatus) string {
	for _, mv := range m.snap.Moves {
		if mv.TaskID == t.ID && mv.Active() {
			return mv.To
		}
	}
	return ""
}

// hostsView lists the hosts with the cursor.
func (m Model) hostsView() string {
	rows := [][]string{{"HOST", "STATE", "ADDRESS", "TASKS", "CPU", "MEMORY", "CONTAINERS"}}
	for _, h := range m.snap.Hosts {
		state := string(h.State)
		if h.Draining {
			state += ", draining"
		}
		if h.Name == m.leader {
			state += ", leader"
		}
		tasks := 0
		for _, t := range m.snap.Tasks {
			if t.Host == h.Name && t.Desired == store.TaskRunning {
				tasks++
			}
		}
		running := 0
		for _, c := range h.Containers {
			if c.State == "running" {
				running++
			}
		}
		cpu, mem := fmt.Sprintf("- of %d", h.CPUs), "- of "+units.BytesSize(float64(h.MemoryBytes))
		if u := h.Usage; u != nil && h.State == store.HostUp {
			cpu = fmt.Sprintf("%.2f of %d", u.CPUCores, h.CPUs)
			mem = units.BytesSize(float64(u.MemoryBytes)) + " of " + units.BytesSize(float64(h.MemoryBytes))
		}
		rows = append(rows, []string{h.Name, state, h.Addr, fmt.Sprint(tasks), cpu, mem, fmt.Sprintf("%d of %d running", running, len(h.Containers))})
	}
	return table(rows, m.hostSel+1, m.width)
}

// volumesView lists the cluster volumes.
func (m Model) volumesView() string {
	rows := [][]string{{"VOLUME", "BACKEND", "OWNER", "SIZE", "GENERATION", "USED BY"}}
	for _, v := range m.snap.Volumes {
		owner := dash(v.Owner)
		if v.MovingTo != "" {
			owner += " → " + v.MovingTo
		}
		size := "-"
		if v.SizeBytes > 0 {
			size = units.BytesSize(float64(v.SizeBytes))
		}
		rows = append(rows, []string{v.Name, v.Backend, owner, size, fmt.Sprint(v.Generation), strings.Join(v.UsedBy, ", ")})
	}
	if len(rows) == 1 {
		return "no cluster volumes"
	}
	return table(rows, -1, m.width)
}

// networksView lists the cluster networks and their leases.
func (m Model) networksView() string {
	rows := [][]string{{"NETWORK", "SUBNET", "VNI", "ADDRESSES (task @ host)"}}
	for _, n := range m.snap.Networks {
		var leases []string
		for _, l := range n.Leases {
			leases = append(leases, fmt.Sprintf("%s %s@%s", l.Addr, shortTask(l.Task), dash(l.Host)))
		}
		rows = append(rows, []string{n.Name, n.Subnet, fmt.Sprint(n.VNI), strings.Join(leases, ", ")})
	}
	if len(rows) == 1 {
		return "no cluster networks"
	}
	return table(rows, -1, m.width)
}

// movesView lists moves, the running ones with a progress bar; only the
// running ones if activeOnly (under the grid).
func (m Model) movesView(activeOnly bool) string {
	var b strings.Builder
	for _, mv := range m.snap.Moves {
		if activeOnly && !mv.Active() || m.project != "" && mv.App != m.project {
			continue
		}
		line := fmt.Sprintf("%s/%s.%d %s → %s  %s", mv.App, mv.Service, mv.Slot, mv.From, mv.To, mv.State)
		if mv.Active() {
			line += "  " + m.stepsLine(mv)
		} else if mv.State == store.MoveDone {
			line += fmt.Sprintf("  downtime %s", ms(mv.DowntimeMS))
		}
		if mv.Error != "" {
			line += "  " + badStyle.Render(mv.Error)
		}
		b.WriteString(truncate(line, m.width) + "\n")
		if mv.Active() && mv.Bytes > 0 {
			m.bar.Width = max(10, min(40, m.width-30))
			frac := min(1, float64(mv.BytesSent)/float64(mv.Bytes))
			b.WriteString("  " + m.bar.ViewAs(frac) + fmt.Sprintf(" %s of %s, %s/s\n",
				units.BytesSize(float64(mv.BytesSent)), units.BytesSize(float64(mv.Bytes)), units.BytesSize(mv.Rate)))
		}
	}
	if b.Len() == 0 && !activeOnly {
		return "no moves yet: select a task in view 1 and press m"
	}
	return strings.TrimRight(b.String(), "\n")
}

// stepsLine shows a move's steps, done ones plain, the current one bold.
func (m Model) stepsLine(mv api.Move) string {
	steps := []string{"precopy", "stop", "sync", "release", "start", "verify", "cleanup"}
	cur := slices.Index(steps, mv.Step)
	var parts []string
	for i, s := range steps {
		switch {
		case i < cur:
			parts = append(parts, dimStyle.Render(s))
		case i == cur:
			parts = append(parts, titleStyle.Render("["+s+"]"))
		default:
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, " ")
}

// eventsView is the newest events that fit.
func (m Model) eventsView() string {
	if len(m.log) == 0 {
		return "no events yet"
	}
	n := max(1, m.height-4)
	return strings.Join(m.log[max(0, len(m.log)-n):], "\n")
}

// pickView lists the hosts a move could go to, those that cannot take
// the task with why.
func (m Model) pickView() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Move %s/%s (on %s, %s) to:\n\n", m.pickTask.App, m.pickTask.Task, m.pickTask.Host, dash(m.pickTask.IP))
	if m.fits == nil {
		b.WriteString("checking which hosts fit...")
		return boxStyle.Render(b.String())
	}
	for i, f := range m.fits {
		line := "  " + f.Host
		if f.Reason != "" {
			line = dimStyle.Render(line + ": " + f.Reason)
		} else if i == m.fitSel {
			line = selectedStyle.Render("> " + f.Host)
		}
		b.WriteString(truncate(line, m.width-6) + "\n")
	}
	if firstFit(m.fits) < 0 {
		b.WriteString("\nno host can take it")
	}
	b.WriteString("\nenter: move   esc: cancel")
	return boxStyle.Render(b.String())
}

// table renders rows with aligned columns, the first as the header and
// row sel (counting the header as 0) selected.
func table(rows [][]string, sel, width int) string {
	widths := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, c := range r {
			widths[i] = max(widths[i], lipgloss.Width(c))
		}
	}
	var b strings.Builder
	for i, r := range rows {
		var line strings.Builder
		for j, c := range r {
			line.WriteString(pad(c, widths[j]+2))
		}
		text := truncate(strings.TrimRight(line.String(), " "), width)
		switch {
		case i == 0:
			text = headerStyle.Render(text)
		case i == sel:
			text = selectedStyle.Render(text)
		}
		b.WriteString(text + "\n")
	}
	return strings.TrimRight(b.String(), "\n")
}

// fit cuts or pads s to exactly n lines, each at most width wide.
func fit(s string, n, width int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[:max(0, n)]
	}
	for i, l := range lines {
		lines[i] = truncate(l, width)
	}
	for len(lines) < n {
		lines = append(lines, "")
	}
	return strings.Join(lines, "\n")
}

// truncate cuts a line to width cells (styles included).
func truncate(s string, width int) string {
	return lipgloss.NewStyle().MaxWidth(width).Render(s)
}

// pad cuts or pads s to n cells.
func pad(s string, n int) string {
	if lipgloss.Width(s) >= n {
		return truncate(s, n-1) + " "
	}
	return s + strings.Repeat(" ", n-lipgloss.Width(s))
}

// shortTask is a task ID without its unique suffix.
func shortTask(id string) string {
	if i := strings.LastIndexByte(id, '.'); i > 0 {
		return id[:i]
	}
	return id
}

func filterNote(project string) string {
	if project == "" {
		return ""
	}
	return " in project " + project
}

func ms(v int64) string { return fmt.Sprintf("%.1fs", float64(v)/1000) }
