package cli_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/clusterctl/clusterctl/api"
	"github.com/clusterctl/clusterctl/contextfile"
	"github.com/clusterctl/clusterctl/internal/testcreds"
	"github.com/clusterctl/clusterctl/pki"
	"github.com/clusterctl/clusterctl/transport"
)

// fakeAPI is a manager that answers the app endpoints from canned data,
// recording what it was asked.
type fakeAPI struct {
	t       *testing.T
	addr    string // host:port, served over TLS as a manager
	context string // a context file with the operator's credentials

	mu       sync.Mutex
	apps     []string
	tasks    [][]api.TaskStatus // successive answers to GET /v1/tasks; the last repeats
	polls    int
	deploys  []api.Deploy
	plan     api.PlanResult
	refuse   string // non-empty: answer PUT and scale with 409 and this message
	scales   []api.Scale
	downs    int
	logs     map[string]string // task ID -> its output
	requests []string
}

func newFakeAPI(t *testing.T) *fakeAPI {
	f := &fakeAPI{t: t, logs: map[string]string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/apps", f.listApps)
	mux.HandleFunc("GET /v1/apps/{name}", f.getApp)
	mux.HandleFunc("PUT /v1/apps/{name}", f.deploy)
	mux.HandleFunc("DELETE /v1/apps/{name}", f.down)
	mux.HandleFunc("POST /v1/apps/{name}/scale", f.scale)
	mux.HandleFunc("GET /v1/tasks", f.listTasks)
	mux.HandleFunc("GET /v1/tasks/{id}/logs", f.taskLogs)
	url := testcreds.Serve(t, testcreds.New(t, pki.RoleManager, "m1"), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.requests = append(f.requests, r.Method+" "+r.URL.Path)
		f.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	f.addr = strings.TrimPrefix(url, transport.Scheme+"://")
	f.context = filepath.Join(t.TempDir(), "context.json")
	if err := contextfile.Save(f.context, &contextfile.Context{Name: "test", Servers: []string{f.addr}, TLS: testcreds.Dir(t, pki.RoleClient, "operator")}); err != nil {
		t.Fatal(err)
	}
	return f
}

// run executes clusterctl against this fake.
func (f *fakeAPI) run(args ...string) (string, string, error) {
	f.t.Helper()
	return run(f.t, append([]string{"--context", f.context}, args...)...)
}

func (f *fakeAPI) requested() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.requests)
}

func reply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func (f *fakeAPI) hasApp(name string) bool { return slices.Contains(f.apps, name) }

func (f *fakeAPI) listApps(w http.ResponseWriter, _ *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	resp := api.AppsResponse{Apps: []api.AppSummary{}}
	for _, a := range f.apps {
		resp.Apps = append(resp.Apps, api.AppSummary{Name: a})
	}
	reply(w, http.StatusOK, resp)
}

func (f *fakeAPI) getApp(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	name := r.PathValue("name")
	if !f.hasApp(name) {
		reply(w, http.StatusNotFound, api.Error{Error: fmt.Sprintf("no app named %q", name)})
		return
	}
	reply(w, http.StatusOK, api.AppSummary{Name: name})
}

func (f *fakeAPI) deploy(w http.ResponseWriter, r *http.Request) {
	var d api.Deploy
	if err := json.NewDecoder(r.Body).Decode(&d); err != nil {
		reply(w, http.StatusBadRequest, api.Error{Error: err.Error()})
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deploys = append(f.deploys, d)
	if f.refuse != "" && !d.DryRun {
		reply(w, http.StatusConflict, api.Error{Error: f.refuse})
		return
	}
	if !d.DryRun && !f.hasApp(d.App.Name) {
		f.apps = append(f.apps, d.App.Name)
	}
	reply(w, http.StatusOK, f.plan)
}

// down removes the app: its tasks vanish one poll later, the app the poll after.
func (f *fakeAPI) down(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	name := r.PathValue("name")
	if !f.hasApp(name) {
		reply(w, http.StatusNotFound, api.Error{Error: fmt.Sprintf("no app named %q", name)})
		return
	}
	f.downs++
	f.tasks, f.polls = [][]api.TaskStatus{f.tasks[len(f.tasks)-1], nil}, 0
	f.apps = slices.DeleteFunc(f.apps, func(a string) bool { return a == name })
	w.WriteHeader(http.StatusOK)
}

func (f *fakeAPI) scale(w http.ResponseWriter, r *http.Request) {
	var s api.Scale
	if err := json.NewDecoder(r.Body).Decode(&s); err != nil {
		reply(w, http.StatusBadRequest, api.Error{Error: err.Error()})
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.scales = append(f.scales, s)
	if f.refuse != "" {
		reply(w, http.StatusConflict, api.Error{Error: f.refuse})
		return
	}
	reply(w, http.StatusOK, api.PlanResult{App: r.PathValue("name")})
}

// listTasks answers with the next canned list, filtered by app.
func (f *fakeAPI) listTasks(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var all []api.TaskStatus
	if len(f.tasks) > 0 {
		all = f.tasks[min(f.polls, len(f.tasks)-1)]
		f.polls++
	}
	app := r.URL.Query().Get("app")
	resp := api.TasksResponse{Tasks: []api.TaskStatus{}}
	for _, t := range all {
		if app == "" || t.App == app {
			resp.Tasks = append(resp.Tasks, t)
		}
	}
	reply(w, http.StatusOK, resp)
}

// taskLogs writes a task's output in small pieces, cutting lines, so
// that unbuffered prefixing would show.
func (f *fakeAPI) taskLogs(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	out, ok := f.logs[r.PathValue("id")]
	f.mu.Unlock()
	if !ok {
		reply(w, http.StatusNotFound, api.Error{Error: "no such task"})
		return
	}
	flusher := w.(http.Flusher)
	for len(out) > 0 {
		n := min(3, len(out))
		_, _ = w.Write([]byte(out[:n]))
		flusher.Flush()
		out = out[n:]
	}
}

// task is a running, up-to-date task of app hello.
func task(name, host string) api.TaskStatus {
	service, _, _ := strings.Cut(name, ".")
	return api.TaskStatus{
		App: "hello", Service: service, Task: name, ID: "id-" + name, Host: host,
		State: "running", Desired: "running", IP: "10.0.0.2", UpToDate: true,
	}
}

// with returns t changed by fn, to write task states in one line.
func with(t api.TaskStatus, fn func(*api.TaskStatus)) api.TaskStatus {
	fn(&t)
	return t
}

// writeCompose writes a two-service Compose file: db with a healthcheck,
// web waiting for it.
func writeCompose(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "compose.yml")
	yml := `name: hello
services:
  db:
    image: sample/kvdb:latest
    healthcheck:
      test: ["CMD", "/kvdb", "-check"]
  web:
    image: sample/web:latest
    ports: ["8080:8080"]
    depends_on:
      db: {condition: service_healthy}
`
	if err := os.WriteFile(path, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestPsJSONShape(t *testing.T) {
	f := newFakeAPI(t)
	f.apps = []string{"hello"}
	f.tasks = [][]api.TaskStatus{{
		with(task("web.1", "host2"), func(t *api.TaskStatus) { t.Ports = []string{"8080:8080/tcp"} }),
		task("db.1", "host1"), // no ports: null on the wire
		with(task("web.2", "host3"), func(t *api.TaskStatus) { t.State, t.Desired = "shutdown", "shutdown" }),
	}}
	stdout, _, err := f.run("ps", "-p", "hello", "-o", "json")
	if err != nil {
		t.Fatalf("ps -o json: %v", err)
	}
	var raw map[string][]map[string]json.RawMessage
	if err := json.Unmarshal([]byte(stdout), &raw); err != nil {
		t.Fatalf("output is not {\"tasks\": [...]}: %v\n%s", err, stdout)
	}
	if len(raw) != 1 || raw["tasks"] == nil {
		t.Fatalf("output has keys %v, want just \"tasks\"", reflect.ValueOf(raw).MapKeys())
	}
	tasks := raw["tasks"]
	if len(tasks) != 2 {
		t.Fatalf("got %d tasks, want 2 (the removed one hidden without -a):\n%s", len(tasks), stdout)
	}
	for _, key := range []string{"service", "task", "host", "state", "ip", "ports"} {
		for i, task := range tasks {
			if _, ok := task[key]; !ok {
				t.Errorf("task %d has no %q key: %v", i, key, task)
			}
		}
	}
	// Sorted by service, then slot: db.1 first.
	wantTasks := []struct{ task, ports string }{{`"db.1"`, `[]`}, {`"web.1"`, `["8080:8080/tcp"]`}}
	for i, want := range wantTasks {
		if got := string(tasks[i]["task"]); got != want.task {
			t.Errorf("task %d is %s, want %s", i, got, want.task)
		}
		var ports bytes.Buffer
		if err := json.Compact(&ports, tasks[i]["ports"]); err != nil || ports.String() != want.ports {
			t.Errorf("task %d ports = %s (%v), want %s", i, tasks[i]["ports"], err, want.ports)
		}
	}

	stdout, _, err = f.run("ps", "-p", "hello", "-a", "-o", "json")
	if err != nil {
		t.Fatalf("ps -a -o json: %v", err)
	}
	if n := strings.Count(stdout, `"task":`); n != 3 {
		t.Errorf("ps -a shows %d tasks, want 3:\n%s", n, stdout)
	}
}

func TestPsEmptyJSONIsAList(t *testing.T) {
	f := newFakeAPI(t)
	stdout, _, err := f.run("ps", "-o", "json")
	if err != nil {
		t.Fatalf("ps -o json: %v", err)
	}
	if got := strings.Join(strings.Fields(stdout), ""); got != `{"tasks":[]}` {
		t.Errorf("ps -o json with no tasks printed %q, want {\"tasks\": []}", stdout)
	}
}

func TestPsTable(t *testing.T) {
	f := newFakeAPI(t)
	f.tasks = [][]api.TaskStatus{{
		with(task("db.1", "host1"), func(t *api.TaskStatus) { t.Health = "healthy" }),
		with(task("web.1", ""), func(t *api.TaskStatus) { t.State, t.IP, t.Message = "pending", "", "waiting for db" }),
	}}
	stdout, _, err := f.run("ps")
	if err != nil {
		t.Fatalf("ps: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	want := []string{
		"APP TASK HOST STATE IP PORTS CONTAINER MESSAGE",
		"hello db.1 host1 running (healthy) 10.0.0.2 - hello-db-1 -",
		"hello web.1 - pending - - hello-web-1 waiting for db",
	}
	if len(lines) != len(want) {
		t.Fatalf("ps printed %d lines, want %d:\n%s", len(lines), len(want), stdout)
	}
	for i := range want {
		if got := strings.Join(strings.Fields(lines[i]), " "); got != want[i] {
			t.Errorf("line %d = %q, want %q", i, got, want[i])
		}
	}
	// With -p, the APP column goes.
	stdout, _, err = f.run("ps", "-p", "hello")
	if err != nil {
		t.Fatalf("ps -p hello: %v", err)
	}
	if !strings.HasPrefix(stdout, "TASK") {
		t.Errorf("ps -p hello header is not TASK first:\n%s", stdout)
	}
}

func TestScaleArgumentErrors(t *testing.T) {
	f := newFakeAPI(t)
	f.apps = []string{"hello"}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"web=x"}, `scale: "web=x": want SERVICE=REPLICAS with REPLICAS a number >= 0`},
		{[]string{"web"}, `scale: "web": want SERVICE=REPLICAS with REPLICAS a number >= 0`},
		{[]string{"=3"}, `scale: "=3": want SERVICE=REPLICAS with REPLICAS a number >= 0`},
		{[]string{"web=-1"}, `scale: "web=-1": want SERVICE=REPLICAS with REPLICAS a number >= 0`},
		{[]string{"web=+2"}, `scale: "web=+2": want SERVICE=REPLICAS with REPLICAS a number >= 0`},
		{[]string{"web="}, `scale: "web=": want SERVICE=REPLICAS with REPLICAS a number >= 0`},
		{[]string{"web=2", "db=1x"}, `scale: "db=1x": want SERVICE=REPLICAS with REPLICAS a number >= 0`},
		{[]string{"web=2", "web=3"}, `scale: "web=3": service web is given twice`},
		{nil, `scale: want SERVICE=REPLICAS with REPLICAS a number >= 0, e.g. clusterctl scale web=3`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			stdout, _, err := f.run(append([]string{"scale", "-p", "hello"}, tt.args...)...)
			if err == nil || err.Error() != tt.want {
				t.Errorf("scale %v: error %v, want %q", tt.args, err, tt.want)
			}
			if stdout != "" {
				t.Errorf("scale %v printed %q", tt.args, stdout)
			}
		})
	}
	if reqs := f.requested(); len(reqs) != 0 {
		t.Errorf("bad arguments reached the managers: %v", reqs)
	}
}

func TestScaleRefused(t *testing.T) {
	f := newFakeAPI(t)
	f.apps = []string{"hello"}
	f.refuse = "web.4: no host fits: 3 hosts: port 8080/tcp in use"
	_, _, err := f.run("scale", "web=4") // the only app: no -p needed
	want := "scale: web.4: no host fits: 3 hosts: port 8080/tcp in use"
	if err == nil || err.Error() != want {
		t.Fatalf("refused scale: error %v, want %q", err, want)
	}
	if len(f.scales) != 1 || f.scales[0] != (api.Scale{Service: "web", Replicas: 4}) {
		t.Errorf("scale requests = %+v, want one web=4", f.scales)
	}
}

func TestScaleWaits(t *testing.T) {
	f := newFakeAPI(t)
	f.apps = []string{"hello"}
	f.tasks = [][]api.TaskStatus{
		{task("web.1", "host1"), with(task("web.2", "host2"), func(t *api.TaskStatus) { t.State = "created" })},
		{task("web.1", "host1"), task("web.2", "host2"), task("db.1", "host3")},
	}
	stdout, _, err := f.run("scale", "-p", "hello", "web=2")
	if err != nil {
		t.Fatalf("scale web=2: %v", err)
	}
	want := " ✔ Container hello-web-1  Started  host1\n" +
		" ✔ Container hello-web-2  Created  host2\n" +
		" ✔ Container hello-web-2  Started  host2\n" +
		"hello: web runs 2 tasks\n"
	if stdout != want {
		t.Errorf("scale printed\n%s\nwant\n%s", stdout, want)
	}
}

func TestScaleNeedsAppAmongSeveral(t *testing.T) {
	f := newFakeAPI(t)
	f.apps = []string{"shop", "hello"}
	_, _, err := f.run("scale", "web=2")
	want := "scale: 2 apps (hello, shop): pass -p NAME"
	if err == nil || err.Error() != want {
		t.Errorf("scale without -p among two apps: error %v, want %q", err, want)
	}
}

func TestPlan(t *testing.T) {
	file := writeCompose(t)
	f := newFakeAPI(t)
	f.plan = api.PlanResult{
		App: "hello",
		Tasks: []api.PlannedTask{
			{Task: "db.1", Service: "db", Slot: 1, Host: "host1", Action: api.ActionCreate, Why: "spread"},
			{Task: "web.1", Service: "web", Slot: 1, Action: api.ActionCreate},
		},
		Problems: []string{"image sample/web:latest missing on host2"},
	}
	stdout, _, err := f.run("plan", "-f", file)
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	want := []string{
		"TASK SERVICE HOST ACTION WHY",
		"db.1 db host1 create spread",
		"web.1 web - create -",
		"",
		"problems:",
		"image sample/web:latest missing on host2",
	}
	if got := fieldLines(stdout); !reflect.DeepEqual(got, want) {
		t.Errorf("plan printed\n%q\nwant\n%q", got, want)
	}
	if len(f.deploys) != 1 || !f.deploys[0].DryRun || f.deploys[0].App.Name != "hello" {
		t.Fatalf("plan sent %+v, want one dry run of hello", f.deploys)
	}

	// A task that cannot be placed makes plan fail, after listing it.
	f.plan.Failures = []string{"web.1: no host fits: 3 hosts: port 8080/tcp in use"}
	stdout, _, err = f.run("plan", "-f", file)
	if err == nil || err.Error() != "plan: 1 task cannot be placed" {
		t.Errorf("plan with a failure: error %v, want 'plan: 1 task cannot be placed'", err)
	}
	if !strings.Contains(stdout, "cannot be placed:\n  web.1: no host fits: 3 hosts: port 8080/tcp in use\n") {
		t.Errorf("plan does not list the failure:\n%s", stdout)
	}

	// -o json prints the PlanResult, and still fails.
	stdout, _, err = f.run("plan", "-f", file, "-o", "json")
	if err == nil {
		t.Error("plan -o json with a failure succeeded")
	}
	var got api.PlanResult
	if jerr := json.Unmarshal([]byte(stdout), &got); jerr != nil || !reflect.DeepEqual(got, f.plan) {
		t.Errorf("plan -o json = %+v (%v), want %+v", got, jerr, f.plan)
	}
}

func TestPlanInvalidFile(t *testing.T) {
	f := newFakeAPI(t)
	_, _, err := f.run("plan", "-f", filepath.Join(t.TempDir(), "missing.yml"))
	if err == nil || !strings.HasPrefix(err.Error(), "plan: ") {
		t.Errorf("plan of a missing file: error %v, want a plan: error", err)
	}
	if reqs := f.requested(); len(reqs) != 0 {
		t.Errorf("an invalid file reached the managers: %v", reqs)
	}
}

// fieldLines normalises a table's spacing: one space between fields.
func fieldLines(s string) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSuffix(s, "\n"), "\n") {
		out = append(out, strings.Join(strings.Fields(l), " "))
	}
	return out
}

func TestUpRefused(t *testing.T) {
	file := writeCompose(t)
	f := newFakeAPI(t)
	f.refuse = "web.1: no host fits: 3 hosts: port 8080/tcp in use\ndb.1: no host fits: 3 hosts: not enough memory"
	stdout, stderr, err := f.run("up", "-f", file, "-d")
	if err == nil || err.Error() != "up: the managers refused the plan; nothing was created" {
		t.Fatalf("refused up: error %v", err)
	}
	if !strings.Contains(stderr, f.refuse+"\n") {
		t.Errorf("up did not print the refusal as given; stderr:\n%s", stderr)
	}
	if stdout != "" {
		t.Errorf("refused up printed %q", stdout)
	}
	if len(f.deploys) != 1 || f.deploys[0].DryRun || f.deploys[0].Compose == "" {
		t.Errorf("up sent %+v, want one deploy with the merged Compose file", f.deploys)
	}
	for _, r := range f.requested() {
		if strings.HasPrefix(r, "GET /v1/tasks") {
			t.Errorf("up followed tasks after a refusal: %v", f.requested())
		}
	}
}

func TestUpProgress(t *testing.T) {
	file := writeCompose(t)
	f := newFakeAPI(t)
	f.plan = api.PlanResult{App: "hello", Tasks: []api.PlannedTask{
		{Task: "db.1", Service: "db", Slot: 1, Host: "host1", Action: api.ActionCreate},
		{Task: "web.1", Service: "web", Slot: 1, Host: "host2", Action: api.ActionCreate},
	}}
	waiting := func(t *api.TaskStatus) { t.State, t.Message = "pending", "waiting for db to be healthy" }
	f.tasks = [][]api.TaskStatus{
		{with(task("db.1", "host1"), func(t *api.TaskStatus) { t.State = "pending" }), with(task("web.1", "host2"), waiting)},
		{with(task("db.1", "host1"), func(t *api.TaskStatus) { t.Health = "starting" }), with(task("web.1", "host2"), waiting)},
		{with(task("db.1", "host1"), func(t *api.TaskStatus) { t.Health = "starting" }), with(task("web.1", "host2"), waiting)},
		{with(task("db.1", "host1"), func(t *api.TaskStatus) { t.Health = "healthy" }), task("web.1", "host2")},
	}
	stdout, _, err := f.run("up", "-f", file, "-d")
	if err != nil {
		t.Fatalf("up -d: %v", err)
	}
	progress, summary, _ := strings.Cut(stdout, "\n\n")
	want := "   Container hello-db-1  Waiting\n" +
		"   Container hello-web-1  Waiting  (waiting for db to be healthy)\n" +
		" ✔ Container hello-db-1  Started  host1\n" +
		" ✔ Container hello-db-1  Healthy  host1\n" +
		" ✔ Container hello-web-1  Started  host2"
	if progress != want {
		t.Errorf("up printed\n%s\nwant\n%s", progress, want)
	}
	if !strings.HasPrefix(summary, "hello is up: 2 tasks running\nTASK") {
		t.Errorf("up -d summary:\n%s", summary)
	}
}

func TestUpTimeout(t *testing.T) {
	file := writeCompose(t)
	f := newFakeAPI(t)
	f.tasks = [][]api.TaskStatus{{
		with(task("db.1", "host1"), func(t *api.TaskStatus) { t.Health = "starting" }),
		with(task("web.1", ""), func(t *api.TaskStatus) { t.State, t.Message = "pending", "waiting for db" }),
	}}
	stdout, stderr, err := f.run("up", "-f", file, "-d", "--timeout", "600ms")
	want := "up: timed out after 600ms: 0 of 2 tasks running"
	if err == nil || err.Error() != want {
		t.Fatalf("up: error %v, want %q", err, want)
	}
	if !strings.Contains(stderr, want+"\n") {
		t.Errorf("stderr lacks %q:\n%s", want, stderr)
	}
	if !strings.Contains(stdout, "\nTASK") || !strings.Contains(stdout, "web.1") {
		t.Errorf("up did not print what runs where:\n%s", stdout)
	}
}

func TestUpStuckTask(t *testing.T) {
	file := writeCompose(t)
	f := newFakeAPI(t)
	f.tasks = [][]api.TaskStatus{{
		task("db.1", "host1"),
		with(task("web.1", ""), func(t *api.TaskStatus) { t.State, t.Message = "pending", "no host fits: 3 hosts: port 8080/tcp in use" }),
	}}
	stdout, _, err := f.run("up", "-f", file, "-d")
	want := "up: web.1 cannot start: no host fits: 3 hosts: port 8080/tcp in use"
	if err == nil || err.Error() != want {
		t.Fatalf("up: error %v, want %q", err, want)
	}
	if !strings.Contains(stdout, " ✘ Container hello-web-1  Error  (no host fits") {
		t.Errorf("up did not show the failing task:\n%s", stdout)
	}
}

func TestDownUnknownApp(t *testing.T) {
	f := newFakeAPI(t)
	f.apps = []string{"hello"}
	_, _, err := f.run("down", "-p", "x")
	if err == nil || err.Error() != `down: no app named "x"` {
		t.Errorf("down -p x: error %v, want down: no app named \"x\"", err)
	}
}

func TestDown(t *testing.T) {
	f := newFakeAPI(t)
	f.apps = []string{"hello"}
	f.tasks = [][]api.TaskStatus{{task("web.1", "host1"), task("db.1", "host2")}}
	stdout, _, err := f.run("down")
	if err != nil {
		t.Fatalf("down: %v", err)
	}
	want := " ✔ Container hello-db-1  Removed\n" +
		" ✔ Container hello-web-1  Removed\n" +
		"down: hello removed\n"
	if stdout != want {
		t.Errorf("down printed\n%s\nwant\n%s", stdout, want)
	}
	if f.downs != 1 {
		t.Errorf("down sent %d DELETEs, want 1", f.downs)
	}
}

func TestLogs(t *testing.T) {
	f := newFakeAPI(t)
	f.apps = []string{"hello"}
	f.tasks = [][]api.TaskStatus{{task("web.1", "host1"), task("web.2", "host2"), task("db.1", "host3")}}
	f.logs["id-web.1"] = "one from web.1\ntwo from web.1\n"
	f.logs["id-web.2"] = "one from web.2\nno newline at the end"
	f.logs["id-db.1"] = "db says hello\n"
	stdout, _, err := f.run("logs", "web")
	if err != nil {
		t.Fatalf("logs web: %v", err)
	}
	got := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	sort.Strings(got)
	want := []string{
		"web.1 | one from web.1",
		"web.1 | two from web.1",
		"web.2 | no newline at the end",
		"web.2 | one from web.2",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("logs web printed\n%q\nwant (in some order)\n%q", got, want)
	}

	stdout, _, err = f.run("logs", "web.2")
	if err != nil || stdout != "web.2 | one from web.2\nweb.2 | no newline at the end\n" {
		t.Errorf("logs web.2 = %q, %v", stdout, err)
	}

	_, _, err = f.run("logs", "x")
	if err == nil || err.Error() != `logs: app hello has no service "x"` {
		t.Errorf("logs x: error %v", err)
	}
	_, _, err = f.run("logs", "web.9")
	if err == nil || err.Error() != `logs: app hello has no task "web.9"` {
		t.Errorf("logs web.9: error %v", err)
	}
}

func TestUpRollingUpdate(t *testing.T) {
	file := writeCompose(t)
	f := newFakeAPI(t)
	f.apps = []string{"hello"}
	healthy := with(task("db.1", "host1"), func(t *api.TaskStatus) { t.Health = "healthy" })
	f.tasks = [][]api.TaskStatus{
		{healthy, with(task("web.1", "host2"), func(t *api.TaskStatus) { t.UpToDate = false })},
		{healthy, with(task("web.1", "host2"), func(t *api.TaskStatus) { t.UpToDate = false })},
		{healthy, with(task("web.1", "host3"), func(t *api.TaskStatus) { t.State = "created" })},
		{healthy, task("web.1", "host3")},
	}
	stdout, _, err := f.run("up", "-f", file, "-d")
	if err != nil {
		t.Fatalf("up -d: %v", err)
	}
	progress, _, _ := strings.Cut(stdout, "\n\n")
	want := " ✔ Container hello-db-1  Healthy  host1\n" +
		"   Container hello-web-1  Updating  host2\n" +
		" ✔ Container hello-web-1  Created  host3\n" +
		" ✔ Container hello-web-1  Started  host3"
	if progress != want {
		t.Errorf("up printed\n%s\nwant\n%s", progress, want)
	}
}

// Without -d, up follows the logs, then says the app keeps running (the
// fake's logs end at once, as they would after Ctrl-C).
func TestUpAttaches(t *testing.T) {
	file := writeCompose(t)
	f := newFakeAPI(t)
	f.tasks = [][]api.TaskStatus{{
		with(task("db.1", "host1"), func(t *api.TaskStatus) { t.Health = "healthy" }),
		task("web.1", "host2"),
	}}
	f.logs["id-db.1"] = "ready\n"
	f.logs["id-web.1"] = "listening on :8080\n"
	stdout, _, err := f.run("up", "-f", file)
	if err != nil {
		t.Fatalf("up: %v", err)
	}
	for _, want := range []string{"db.1 | ready\n", "web.1 | listening on :8080\n", "hello keeps running; stop it with: clusterctl down -p hello\n"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("up output lacks %q:\n%s", want, stdout)
		}
	}
}
