package runtime

import (
	"errors"
	"fmt"
)

// The kinds of failure the agent branches on. Every error a Runtime returns
// for one of these cases is an *Error that matches its kind with errors.Is,
// and carries a Reason for the pod's status.
var (
	// ErrImagePull: the image could not be pulled (ReasonOf says whether it
	// does not exist, access was refused or the registry was unreachable).
	ErrImagePull = errors.New("image pull failed")
	// ErrImageNotFound: the image is neither on the node nor, when pulling,
	// in the registry.
	ErrImageNotFound = errors.New("image not found")
	// ErrContainerCreate: the container could not be created or its process
	// could not be started (a missing executable, a bad working directory).
	ErrContainerCreate = errors.New("container create failed")
	// ErrResources: a limit the node cannot give, such as a memory limit too
	// small to start any process or a cgroup controller the kernel lacks.
	ErrResources = errors.New("resources unavailable")
	// ErrNotFound: no container with that ID exists in this runtime.
	ErrNotFound = errors.New("container not found")
	// ErrExecTimeout: an Exec command outlived its timeout and was killed.
	ErrExecTimeout = errors.New("exec timed out")
	// ErrClosed: the runtime was closed.
	ErrClosed = errors.New("runtime closed")
)

// Reason is a CamelCase word for a pod's container status (Waiting.Reason),
// saying why an operation failed in terms a person can act on.
type Reason string

// The reasons a Runtime reports.
const (
	// ReasonImagePull: pulling failed for a reason not named below.
	ReasonImagePull Reason = "ErrImagePull"
	// ReasonInvalidImageName: the image reference cannot be parsed.
	ReasonInvalidImageName Reason = "InvalidImageName"
	// ReasonImageNotFound: the registry, or the node, does not have the image.
	ReasonImageNotFound Reason = "ImageNotFound"
	// ReasonRegistryUnauthorized: the registry refused the credentials (or
	// their absence).
	ReasonRegistryUnauthorized Reason = "RegistryUnauthorized"
	// ReasonRegistryUnavailable: the registry could not be reached.
	ReasonRegistryUnavailable Reason = "RegistryUnavailable"
	// ReasonExecutableNotFound: the container's command does not exist in
	// its image.
	ReasonExecutableNotFound Reason = "ExecutableNotFound"
	// ReasonCreateContainer: creating or starting the container failed for
	// a reason not named above.
	ReasonCreateContainer Reason = "CreateContainerError"
	// ReasonResources: the node cannot give the container's limits.
	ReasonResources Reason = "ResourcesUnavailable"
	// ReasonNotFound: the container does not exist.
	ReasonNotFound Reason = "ContainerNotFound"
	// ReasonExecTimeout: an exec command timed out.
	ReasonExecTimeout Reason = "ExecTimeout"
)

// Error is a runtime failure the agent can report on a pod.
type Error struct {
	// Op is what was attempted, e.g. "pull image" or "start container".
	Op string
	// Subject is the image reference or container ID it concerned.
	Subject string
	// Kind is the sentinel the error matches (ErrImagePull, ...).
	Kind error
	// Reason is the word for the pod's status.
	Reason Reason
	// Err is the underlying cause, from the registry or the runtime.
	Err error
}

// Error reads "op subject: kind: cause".
func (e *Error) Error() string {
	msg := e.Op
	if e.Subject != "" {
		msg += " " + e.Subject
	}
	if e.Kind != nil {
		msg += ": " + e.Kind.Error()
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap lets errors.Is match the kind as well as the cause.
func (e *Error) Unwrap() []error {
	var errs []error
	if e.Kind != nil {
		errs = append(errs, e.Kind)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// Errorf builds an *Error of kind with reason; the cause is formatted like
// fmt.Errorf (so %w wraps).
func Errorf(op, subject string, kind error, reason Reason, format string, args ...any) *Error {
	return &Error{Op: op, Subject: subject, Kind: kind, Reason: reason, Err: fmt.Errorf(format, args...)}
}

// ReasonOf returns the Reason of the first *Error in err's chain, or "" when
// err carries none.
func ReasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}
