package agent

import (
	"time"

	"github.com/berth-io/berth/control/api"
)

// restartBackoff is the restart arithmetic of one container: the k-th
// crash in a row waits initial·2^(k-1), capped at max; a run of at least
// reset forgets earlier crashes.
type restartBackoff struct {
	initial, max, reset time.Duration
}

// delay is the wait before restarting after the crashes-th crash in a row
// (crashes ≥ 1).
func (b restartBackoff) delay(crashes int) time.Duration {
	if crashes < 1 {
		return 0
	}
	d := b.initial
	for i := 1; i < crashes; i++ {
		d *= 2
		if d >= b.max {
			return b.max
		}
	}
	return min(d, b.max)
}

// crashesAfter returns the crash count after a container that ran for ran
// exited, given the count before it started.
func (b restartBackoff) crashesAfter(before int, ran time.Duration) int {
	if ran >= b.reset {
		return 1
	}
	return before + 1
}

// shouldRestart applies a pod's restart policy to a container that exited
// with code.
func shouldRestart(policy api.RestartPolicy, exitCode int32) bool {
	switch policy {
	case api.RestartNever:
		return false
	case api.RestartOnFailure:
		return exitCode != 0
	default:
		return true
	}
}
