package client

import (
	"errors"
	"log/slog"
	"slices"
	"testing"
	"time"
)

func TestWatchIdleTimeoutFollowsTheAdvertisedInterval(t *testing.T) {
	tests := []struct {
		header string
		want   time.Duration
	}{
		{"5", 15 * time.Second},
		{"0.5", 1500 * time.Millisecond},
		{"0.02", minWatchIdle}, // a test server's 20 ms: the floor
		{"", legacyWatchIdle},  // an older server says nothing
		{"soon", legacyWatchIdle},
		{"0", legacyWatchIdle},
		{"-5", legacyWatchIdle},
		{"NaN", legacyWatchIdle},
		{"+Inf", legacyWatchIdle},
		{"1e300", WatchIdleIntervals * 24 * time.Hour}, // capped, no overflow
	}
	for _, tt := range tests {
		if got := watchIdleTimeout(tt.header); got != tt.want {
			t.Errorf("watchIdleTimeout(%q) = %s, want %s", tt.header, got, tt.want)
		}
	}
}

// Endpoints that just failed go last, so a request after a host died does
// not wait on it again; an endpoint that answers is preferred again.
func TestEndpointOrderPutsRecentFailuresLast(t *testing.T) {
	a, b, c := "https://a:6443", "https://b:6443", "https://c:6443"
	long := time.Now().Add(-2 * failedEndpointCooldown)
	f := "https://f:6443"
	tests := []struct {
		name     string
		current  int
		failed   map[string]time.Time
		fallback []string
		want     []string
	}{
		{"no failures: from the one in use", 1, nil, nil, []string{b, c, a}},
		{"a recent failure goes last", 0, map[string]time.Time{a: time.Now()}, nil, []string{b, c, a}},
		{"older failures first among the failed", 0, map[string]time.Time{a: time.Now(), b: time.Now().Add(-time.Second)}, nil, []string{c, b, a}},
		{"a failure past the cooldown is forgiven", 0, map[string]time.Time{a: long}, nil, []string{a, b, c}},
		{"all failed: still tried, oldest first", 2, map[string]time.Time{a: time.Now().Add(-3 * time.Second), b: time.Now().Add(-2 * time.Second), c: time.Now()}, nil, []string{a, b, c}},
		{"fallbacks after the list", 1, nil, []string{f, a}, []string{b, c, a, f}},
		{"fallbacks before failed endpoints", 0, map[string]time.Time{a: time.Now(), b: time.Now(), c: time.Now()}, []string{f}, []string{f, a, b, c}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cl := &Client{endpoints: []string{a, b, c}, current: tt.current, failed: map[string]time.Time{}, fallback: tt.fallback}
			for ep, at := range tt.failed {
				cl.failed[ep] = at
			}
			if got := cl.order(); !slices.Equal(got, tt.want) {
				t.Errorf("order() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestEndpointFailureMovesOnAndAnswerComesBack(t *testing.T) {
	a, b := "https://a:6443", "https://b:6443"
	cl := &Client{endpoints: []string{a, b}, failed: map[string]time.Time{}, log: slog.New(slog.DiscardHandler), failWake: make(chan struct{})}
	cl.endpointFailed(a, errors.New("connection lost"))
	if got := cl.Endpoints(); got[0] != b {
		t.Fatalf("after %s failed the client still uses it first: %v", a, got)
	}
	if got := cl.order(); !slices.Equal(got, []string{b, a}) {
		t.Fatalf("order after a failure = %v", got)
	}
	cl.endpointAnswered(a)
	if got := cl.order(); !slices.Equal(got, []string{a, b}) {
		t.Fatalf("an endpoint that answered must be preferred again: %v", got)
	}
	// A failed endpoint the control plane no longer publishes is forgotten.
	cl.endpointFailed(a, errors.New("connection lost"))
	if err := cl.SetEndpoints([]string{b}); err != nil {
		t.Fatal(err)
	}
	if len(cl.failed) != 0 {
		t.Fatalf("failures of removed endpoints are kept: %v", cl.failed)
	}
}
