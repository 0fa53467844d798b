package tui

import "github.com/charmbracelet/bubbles/key"

// keyMap holds every key the dashboard answers, in one place, for the help
// view and for Update.
type keyMap struct {
	Next, Prev         key.Binding // views
	Up, Down           key.Binding // selection
	Move, Drain        key.Binding // actions
	Project            key.Binding // filter
	Confirm, Cancel    key.Binding // dialogs
	Help, Quit         key.Binding
	Grid, Hosts, Vols  key.Binding // jump to a view
	Nets, Moves, Event key.Binding
}

func newKeyMap() keyMap {
	return keyMap{
		Next:    key.NewBinding(key.WithKeys("tab", "right", "l"), key.WithHelp("tab/→", "next view")),
		Prev:    key.NewBinding(key.WithKeys("shift+tab", "left", "h"), key.WithHelp("shift+tab/←", "previous view")),
		Up:      key.NewBinding(key.WithKeys("up", "k"), key.WithHelp("↑/k", "up")),
		Down:    key.NewBinding(key.WithKeys("down", "j"), key.WithHelp("↓/j", "down")),
		Move:    key.NewBinding(key.WithKeys("m"), key.WithHelp("m", "move the task")),
		Drain:   key.NewBinding(key.WithKeys("d"), key.WithHelp("d", "drain the host")),
		Project: key.NewBinding(key.WithKeys("p"), key.WithHelp("p", "filter by project")),
		Confirm: key.NewBinding(key.WithKeys("enter", "y"), key.WithHelp("enter", "confirm")),
		Cancel:  key.NewBinding(key.WithKeys("esc", "n"), key.WithHelp("esc", "cancel")),
		Help:    key.NewBinding(key.WithKeys("?"), key.WithHelp("?", "help")),
		Quit:    key.NewBinding(key.WithKeys("q", "ctrl+c"), key.WithHelp("q", "quit")),
		Grid:    key.NewBinding(key.WithKeys("1"), key.WithHelp("1", "tasks by host")),
		Hosts:   key.NewBinding(key.WithKeys("2"), key.WithHelp("2", "hosts")),
		Vols:    key.NewBinding(key.WithKeys("3"), key.WithHelp("3", "volumes")),
		Nets:    key.NewBinding(key.WithKeys("4"), key.WithHelp("4", "networks")),
		Moves:   key.NewBinding(key.WithKeys("5"), key.WithHelp("5", "moves")),
		Event:   key.NewBinding(key.WithKeys("6"), key.WithHelp("6", "events")),
	}
}

// ShortHelp is the bottom line's keys.
func (k keyMap) ShortHelp() []key.Binding {
	return []key.Binding{k.Next, k.Up, k.Move, k.Drain, k.Project, k.Help, k.Quit}
}

// FullHelp is the help view's columns.
func (k keyMap) FullHelp() [][]key.Binding {
	return [][]key.Binding{
		{k.Grid, k.Hosts, k.Vols, k.Nets, k.Moves, k.Event},
		{k.Next, k.Prev, k.Up, k.Down},
		{k.Move, k.Drain, k.Project, k.Confirm, k.Cancel, k.Help, k.Quit},
	}
}
