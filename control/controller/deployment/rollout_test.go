package deployment

import (
	"testing"

	"github.com/berth-io/berth/control/api"
)

func ios(s string) *api.IntOrString {
	var v api.IntOrString
	if err := v.UnmarshalJSON([]byte(`"` + s + `"`)); err != nil {
		panic(err)
	}
	return &v
}

func TestResolveBoundsRoundsSurgeUpAndUnavailableDown(t *testing.T) {
	tests := []struct {
		name               string
		replicas           int32
		surge, unavailable string
		wantS, wantU       int32
	}{
		{"25% of 10 is 3 surge and 2 unavailable", 10, "25%", "25%", 3, 2},
		{"25% of 1 is 1 surge and 0 unavailable", 1, "25%", "25%", 1, 0},
		{"numbers are taken as they are", 5, "2", "1", 2, 1},
		{"both zero makes unavailable one", 3, "0", "0%", 0, 1},
		{"unavailable never exceeds replicas", 2, "0", "5", 0, 2},
		{"100% surge of 3 is 3", 3, "100%", "0", 3, 0},
		{"33% of 10 is 4 surge and 3 unavailable", 10, "33%", "33%", 4, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, u, err := ResolveBounds(tt.replicas, ios(tt.surge), ios(tt.unavailable))
			if err != nil {
				t.Fatal(err)
			}
			if s != tt.wantS || u != tt.wantU {
				t.Fatalf("got surge %d unavailable %d, want %d %d", s, u, tt.wantS, tt.wantU)
			}
		})
	}
	if _, _, err := ResolveBounds(3, ios("lots"), ios("1")); err == nil {
		t.Fatal("a surge that is neither a number nor a percentage must be refused")
	}
}

func TestPlanStep(t *testing.T) {
	tests := []struct {
		name string
		c    Counts
		want Plan
	}{
		{"a new deployment creates replicas up to the surge bound",
			Counts{Replicas: 3, MaxSurge: 1, MaxUnavailable: 0},
			Plan{CreateNew: 3}},
		{"a rollout with surge 1 and unavailable 0 adds one new pod first",
			Counts{Replicas: 3, MaxSurge: 1, MaxUnavailable: 0, OldTotal: 3, OldAvailable: 3},
			Plan{CreateNew: 1}},
		{"old pods wait until new ones are available",
			Counts{Replicas: 3, MaxSurge: 1, MaxUnavailable: 0, NewTotal: 1, OldTotal: 3, OldAvailable: 3},
			Plan{}},
		{"an available new pod lets one old pod go",
			Counts{Replicas: 3, MaxSurge: 1, MaxUnavailable: 0, NewTotal: 1, NewAvailable: 1, OldTotal: 3, OldAvailable: 3},
			Plan{DeleteOldAvailable: 1}},
		{"terminating pods still count against the surge",
			Counts{Replicas: 3, MaxSurge: 1, MaxUnavailable: 0, NewTotal: 1, NewAvailable: 1, OldTotal: 2, OldAvailable: 2, Terminating: 1},
			Plan{}},
		{"maxUnavailable lets old pods go before new ones are ready",
			Counts{Replicas: 4, MaxSurge: 0, MaxUnavailable: 1, OldTotal: 4, OldAvailable: 4},
			Plan{DeleteOldAvailable: 1}},
		{"unavailable old pods go at once",
			Counts{Replicas: 3, MaxSurge: 1, MaxUnavailable: 0, OldTotal: 3, OldAvailable: 1},
			Plan{CreateNew: 1, DeleteOldUnavailable: 2}},
		{"scaling down removes excess new pods",
			Counts{Replicas: 2, MaxSurge: 1, MaxUnavailable: 0, NewTotal: 4, NewAvailable: 4},
			Plan{DeleteNew: 2}},
		{"a finished rollout does nothing",
			Counts{Replicas: 3, MaxSurge: 1, MaxUnavailable: 1, NewTotal: 3, NewAvailable: 3},
			Plan{}},
		{"never-ready new pods stop the rollout at the bounds",
			Counts{Replicas: 3, MaxSurge: 1, MaxUnavailable: 1, NewTotal: 2, OldTotal: 2, OldAvailable: 2},
			Plan{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := PlanStep(tt.c); got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestRollingUpdateNeverExceedsSurgeOrUnavailability simulates whole
// rollouts step by step, with new pods becoming available and terminating
// pods disappearing in every order the simulation allows, and checks the
// bounds after every step.
func TestRollingUpdateNeverExceedsSurgeOrUnavailability(t *testing.T) {
	for replicas := int32(1); replicas <= 6; replicas++ {
		for surge := int32(0); surge <= 3; surge++ {
			for unavail := int32(0); unavail <= 3; unavail++ {
				s, u, _ := ResolveBounds(replicas, &api.IntOrString{IntVal: surge}, &api.IntOrString{IntVal: unavail})
				c := Counts{Replicas: replicas, MaxSurge: s, MaxUnavailable: u, OldTotal: replicas, OldAvailable: replicas}
				for step := 0; ; step++ {
					if step > 100 {
						t.Fatalf("replicas %d surge %d unavailable %d: no convergence, stuck at %+v", replicas, s, u, c)
					}
					c = c.After(PlanStep(c))
					total := c.NewTotal + c.OldTotal + c.Terminating
					if total > replicas+s {
						t.Fatalf("replicas %d surge %d: %d pods exist, above %d", replicas, s, total, replicas+s)
					}
					if avail := c.NewAvailable + c.OldAvailable; avail < replicas-u {
						t.Fatalf("replicas %d unavailable %d: %d available, below %d", replicas, u, avail, replicas-u)
					}
					if c.NewAvailable == replicas && c.OldTotal == 0 && c.Terminating == 0 {
						break
					}
					// The world moves: alternate which change lands first.
					if step%2 == 0 && c.Terminating > 0 {
						c.Terminating--
					} else if c.NewAvailable < c.NewTotal {
						c.NewAvailable++
					} else if c.Terminating > 0 {
						c.Terminating--
					}
				}
			}
		}
	}
}
