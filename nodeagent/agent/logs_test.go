package agent

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// lockedBuffer is a bytes.Buffer a follower writes while the test reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func appendTo(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

func TestLogsAreReadAcrossRotatedParts(t *testing.T) {
	tests := []struct {
		name  string
		parts map[string]string // suffix ("" for the live file) -> content
		tail  int64
		want  string
	}{
		{"everything, oldest part first", map[string]string{".2": "1\n", ".1": "2\n3\n", "": "4\n"}, 0, "1\n2\n3\n4\n"},
		{"the last lines span parts", map[string]string{".1": "1\n2\n", "": "3\n4\n"}, 3, "2\n3\n4\n"},
		{"more lines asked than there are", map[string]string{"": "1\n"}, 10, "1\n"},
		{"no log yet", map[string]string{}, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log := filepath.Join(t.TempDir(), "c.log")
			for suffix, content := range tt.parts {
				appendTo(t, log+suffix, content)
			}
			var out lockedBuffer
			if err := writeLog(t.Context(), &out, func() {}, log, tt.tail, false, func() bool { return true }); err != nil {
				t.Fatal(err)
			}
			if got := out.String(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// A follower reads every line exactly once while the runtime rotates the
// log under it (renames it to LOG.1 and starts a new LOG), even when the
// old file got more output just before the rename.
func TestFollowingALogSurvivesRotation(t *testing.T) {
	for _, tail := range []int64{0, 1} {
		log := filepath.Join(t.TempDir(), "c.log")
		appendTo(t, log, "a\n")
		var out lockedBuffer
		var alive atomic.Bool
		alive.Store(true)
		done := make(chan error, 1)
		go func() {
			done <- writeLog(context.Background(), &out, func() {}, log, tail, true, alive.Load)
		}()
		waitUntil := func(want string) {
			t.Helper()
			deadline := time.Now().Add(10 * time.Second)
			for out.String() != want {
				if time.Now().After(deadline) {
					t.Fatalf("tail %d: follower has %q, want %q", tail, out.String(), want)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
		waitUntil("a\n")
		appendTo(t, log, "b\n")
		if err := os.Rename(log, log+".1"); err != nil {
			t.Fatal(err)
		}
		appendTo(t, log, "c\n")
		waitUntil("a\nb\nc\n")
		if err := os.Rename(log, log+".1"); err != nil {
			t.Fatal(err)
		}
		appendTo(t, log, "d\n")
		waitUntil("a\nb\nc\nd\n")
		alive.Store(false)
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the follower did not stop after the container ended")
		}
		if got := out.String(); strings.Count(got, "\n") != 4 {
			t.Errorf("tail %d: got %q", tail, got)
		}
	}
}
