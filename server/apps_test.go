package server_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/clusterctl/clusterctl/api"
	specmock "github.com/clusterctl/clusterctl/spec/mock"
)

// TestAppRequests checks the app endpoints' answers on a real manager:
// invalid input is a 400 with its reason, an app that cannot be placed (no
// hosts) is a 409 with every failure and changes nothing, a dry run answers
// 200 with the failures, unknown apps are 404s.
func TestAppRequests(t *testing.T) {
	m, _ := runSingle(t, "a")
	c := m.client()
	ctx := ctxT(t, 20*time.Second)

	app := specmock.App()
	app.Services[0].Image = ""
	_, err := c.Deploy(ctx, api.Deploy{App: app})
	assertStatus(t, err, http.StatusBadRequest, "image")

	app = specmock.App()
	plan, err := c.Deploy(ctx, api.Deploy{App: app, DryRun: true})
	if err != nil || len(plan.Failures) != 3 || !strings.Contains(plan.Failures[0], "no host fits: no hosts") {
		t.Fatalf("dry run without hosts: %+v %v", plan, err)
	}
	_, err = c.Deploy(ctx, api.Deploy{App: app})
	assertStatus(t, err, http.StatusConflict, "db.1: no host fits")
	apps, err := c.Apps(ctx)
	if err != nil || len(apps.Apps) != 0 {
		t.Errorf("a refused deploy left apps: %+v %v", apps, err)
	}

	_, err = c.App(ctx, "nosuch")
	assertStatus(t, err, http.StatusNotFound, `no app named "nosuch"`)
	err = c.Down(ctx, "nosuch", false)
	assertStatus(t, err, http.StatusNotFound, `no app named "nosuch"`)
	_, err = c.Scale(ctx, "nosuch", api.Scale{Service: "web", Replicas: 2})
	assertStatus(t, err, http.StatusNotFound, `no app named "nosuch"`)
	_, err = c.Tasks(ctx, "nosuch")
	assertStatus(t, err, http.StatusNotFound, `no app named "nosuch"`)
}

// assertStatus checks that err is an API answer with that code and text.
func assertStatus(t *testing.T, err error, code int, text string) {
	t.Helper()
	se, ok := err.(*api.StatusError)
	if !ok {
		t.Fatalf("want a %d error with %q, got %v", code, text, err)
	}
	if se.Code != code || !strings.Contains(se.Message, text) {
		t.Errorf("got %d %q, want %d with %q", se.Code, se.Message, code, text)
	}
}
