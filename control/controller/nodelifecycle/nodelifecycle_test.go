package nodelifecycle

import (
	"testing"
	"time"
)

func TestJudge(t *testing.T) {
	t0 := time.Unix(5000, 0)
	grace, eviction := 40*time.Second, 60*time.Second
	tests := []struct {
		name     string
		now      time.Duration // after the heartbeat was seen
		silentAt time.Duration // -1: not yet found silent
		want     Verdict
	}{
		{"a fresh heartbeat is healthy", 10 * time.Second, -1, Healthy},
		{"exactly at the grace period is still healthy", 40 * time.Second, -1, Healthy},
		{"past the grace period is silent", 41 * time.Second, -1, Silent},
		{"silent for less than the eviction timeout is not lost", 90 * time.Second, 41 * time.Second, Silent},
		{"silent past the eviction timeout is lost", 102 * time.Second, 41 * time.Second, Lost},
		{"silence counts from when it was found, not from the heartbeat", 102 * time.Second, 95 * time.Second, Silent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var silentAt time.Time
			if tt.silentAt >= 0 {
				silentAt = t0.Add(tt.silentAt)
			}
			if got := Judge(t0.Add(tt.now), t0, silentAt, grace, eviction); got != tt.want {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}
