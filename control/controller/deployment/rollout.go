package deployment

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/berth-io/berth/control/api"
)

// ResolveBounds turns a strategy's maxSurge (percentages rounded up) and
// maxUnavailable (rounded down) into pod counts for replicas. When both
// come out as 0 the rollout could never move, so maxUnavailable becomes 1,
// as in Kubernetes.
func ResolveBounds(replicas int32, surge, unavailable *api.IntOrString) (maxSurge, maxUnavailable int32, err error) {
	maxSurge, err = scaled(surge, replicas, true)
	if err != nil {
		return 0, 0, fmt.Errorf("maxSurge: %w", err)
	}
	maxUnavailable, err = scaled(unavailable, replicas, false)
	if err != nil {
		return 0, 0, fmt.Errorf("maxUnavailable: %w", err)
	}
	if maxUnavailable > replicas {
		maxUnavailable = replicas
	}
	if maxSurge == 0 && maxUnavailable == 0 {
		maxUnavailable = 1
	}
	return maxSurge, maxUnavailable, nil
}

func scaled(v *api.IntOrString, total int32, roundUp bool) (int32, error) {
	if v == nil {
		return 0, nil
	}
	if !v.IsString {
		if v.IntVal < 0 {
			return 0, fmt.Errorf("must not be negative, got %d", v.IntVal)
		}
		return v.IntVal, nil
	}
	s, ok := strings.CutSuffix(v.StrVal, "%")
	if !ok {
		return 0, fmt.Errorf("must be a number or a percentage, got %q", v.StrVal)
	}
	pct, err := strconv.Atoi(s)
	if err != nil || pct < 0 {
		return 0, fmt.Errorf("must be a number or a percentage, got %q", v.StrVal)
	}
	f := float64(pct) * float64(total) / 100
	if roundUp {
		return int32(math.Ceil(f)), nil
	}
	return int32(math.Floor(f)), nil
}

// Counts is the state of a deployment's pods that a rollout step needs.
type Counts struct {
	// Replicas is the desired number of pods.
	Replicas int32
	// MaxSurge and MaxUnavailable are the resolved bounds.
	MaxSurge, MaxUnavailable int32
	// NewTotal and NewAvailable count non-terminating pods of the desired
	// revision, and those of them available.
	NewTotal, NewAvailable int32
	// OldTotal and OldAvailable count non-terminating pods of every other
	// revision, and those available.
	OldTotal, OldAvailable int32
	// Terminating counts pods being deleted: they still occupy their
	// place under the surge bound until they are gone.
	Terminating int32
}

// Plan is one rollout step: how many pods to create and delete.
type Plan struct {
	// CreateNew pods of the desired revision.
	CreateNew int32
	// DeleteNew excess pods of the desired revision (replicas went down).
	DeleteNew int32
	// DeleteOldUnavailable old pods that are not available (removing
	// them costs no availability).
	DeleteOldUnavailable int32
	// DeleteOldAvailable old pods that are available, within the
	// unavailability budget.
	DeleteOldAvailable int32
}

// Actions is the number of pods the plan touches.
func (p Plan) Actions() int32 {
	return p.CreateNew + p.DeleteNew + p.DeleteOldUnavailable + p.DeleteOldAvailable
}

// PlanStep decides one step of a rolling update. It never lets the pods
// (terminating ones included) exceed replicas + maxSurge, never takes
// available pods below replicas − maxUnavailable, and scales old revisions
// down only as far as new pods have become available.
func PlanStep(c Counts) Plan {
	var p Plan
	total := c.NewTotal + c.OldTotal + c.Terminating
	maxTotal := c.Replicas + c.MaxSurge
	minAvailable := c.Replicas - c.MaxUnavailable

	if want := c.Replicas - c.NewTotal; want > 0 {
		p.CreateNew = max(min(want, maxTotal-total), 0)
	}
	if c.NewTotal > c.Replicas {
		p.DeleteNew = c.NewTotal - c.Replicas
	}
	// Old pods that serve nobody can go at once.
	p.DeleteOldUnavailable = c.OldTotal - c.OldAvailable
	// Available old pods go as far as availability allows: new available
	// pods make room for old ones to leave.
	available := c.NewAvailable + c.OldAvailable
	if c.NewTotal > c.Replicas {
		// Excess new pods leave first; count only the ones that stay.
		available = min(c.NewAvailable, c.Replicas) + c.OldAvailable
	}
	p.DeleteOldAvailable = max(min(available-minAvailable, c.OldAvailable), 0)
	return p
}

// After returns the counts once the plan's deletions have begun (the
// deleted pods terminating) and its new pods exist, unavailable: what the
// next observation will see before any pod changes state.
func (c Counts) After(p Plan) Counts {
	n := c
	n.NewTotal += p.CreateNew - p.DeleteNew
	deletedNewAvailable := max(p.DeleteNew-(c.NewTotal-c.NewAvailable), 0)
	n.NewAvailable -= deletedNewAvailable
	n.OldTotal -= p.DeleteOldUnavailable + p.DeleteOldAvailable
	n.OldAvailable -= p.DeleteOldAvailable
	n.Terminating += p.DeleteNew + p.DeleteOldUnavailable + p.DeleteOldAvailable
	return n
}
