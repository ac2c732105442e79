package main

import (
	"context"
	"io"
	"strings"
	"testing"
)

// Bad flags are refused with an error naming the flag, before anything
// runs (a negative -n or -conns used to panic in make).
func TestRunRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"ctr-seq", "-n", "-1"},
		{"ctr-burst", "-n", "-5"},
		{"http-load", "-conns", "0"},
		{"http-load", "-conns", "-2"},
		{"http-load", "-duration", "0s"},
		{"http-load", "-mode", "keep-alive"},
	} {
		err := run(context.Background(), args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), args[1]) {
			t.Errorf("run %q: err = %v, want one naming %s", args, err, args[1])
		}
	}
	for _, args := range [][]string{
		{"ctr-clean", "-namespace", "ns"},
		{"ctr-clean", "-address", "/run/x.sock"},
		{"ctr-seq", "-address", "/run/x.sock", "-namespace", "ns"},
		{"http-load"},
	} {
		err := run(context.Background(), args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "needs -") {
			t.Errorf("run %q: err = %v, want one naming the missing flag", args, err)
		}
	}
	if err := run(context.Background(), nil, io.Discard); err == nil {
		t.Error("run with no command: no error")
	}
	if err := run(context.Background(), []string{"nope"}, io.Discard); err == nil {
		t.Error("run of an unknown command: no error")
	}
}
