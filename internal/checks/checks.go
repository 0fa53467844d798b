// Package checks holds assertions the tests of several packages share.
package checks

import (
	"strings"
	"testing"
)

// OneLine fails the test unless err reads as one non-empty line: every
// refusal reaches the user as one clear line.
func OneLine(t testing.TB, what string, err error) {
	t.Helper()
	if msg := err.Error(); msg == "" || strings.Contains(msg, "\n") {
		t.Errorf("%s: the error is not one line: %q", what, msg)
	}
}
