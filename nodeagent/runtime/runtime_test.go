package runtime_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/berth-io/berth/nodeagent/runtime"
)

func TestErrorsMatchTheirKindAndCauseAndReadAsASentence(t *testing.T) {
	cause := errors.New("connection refused")
	err := fmt.Errorf("sync pod: %w", &runtime.Error{
		Op: "pull image", Subject: "r:5000/web:v1", Kind: runtime.ErrImagePull,
		Reason: runtime.ReasonRegistryUnavailable, Err: cause,
	})
	if !errors.Is(err, runtime.ErrImagePull) || !errors.Is(err, cause) {
		t.Errorf("%v does not match both its kind and its cause", err)
	}
	if errors.Is(err, runtime.ErrImageNotFound) {
		t.Errorf("%v matches ErrImageNotFound", err)
	}
	if got := runtime.ReasonOf(err); got != runtime.ReasonRegistryUnavailable {
		t.Errorf("reason %q", got)
	}
	want := "sync pod: pull image r:5000/web:v1: image pull failed: connection refused"
	if err.Error() != want {
		t.Errorf("message %q, want %q", err.Error(), want)
	}
	if got := runtime.ReasonOf(errors.New("plain")); got != "" {
		t.Errorf("reason of a plain error %q, want none", got)
	}
}
