package kv

import (
	"fmt"
	"os"
	"testing"
)

// setUp is what TestMain prepares; tests fail if it did not run.
var setUp bool

func TestMain(m *testing.M) {
	setUp = true
	code := m.Run()
	if code != 0 {
		fmt.Fprintln(os.Stderr, "kv tests failed")
	}
	os.Exit(code)
}
