// Package runtime is the node agent's narrow view of a container runtime:
// pull or import an image, create, start, stop and remove a container, ask
// for its state, run a command inside it, and hear when it exits.
//
// The node agent (nodeagent/agent) codes against the Runtime interface only.
// Package nodeagent/runtime/containerd implements it on containerd (the
// runtime every node image carries); package nodeagent/runtime/fake
// implements it in memory for the agent's unit tests.
//
// The life of a container follows containerd's: a container is metadata (an
// image, a spec, labels), and a task is its live process. CreateContainer
// makes the metadata and the root filesystem; StartContainer starts the
// process; when the process exits the container stays, in StatusExited with
// its exit code, until RemoveContainer deletes it. The agent restarts a
// container by removing it and creating a new one with RestartCount one
// higher, so that every ID names one run (StartContainer on an exited
// container runs it again, but its state then describes only the last run).
//
// Containers outlive the agent. An agent that restarts must not restart its
// containers: it calls ListContainers, recognises its pods' containers by
// their Meta, and keeps running them; the Runtime it created re-attaches to
// every running task, so Events reports their exits as before.
//
// This package must never import the control plane's client, log anything,
// or touch a container it did not create (every implementation confines
// itself to its own namespace).
package runtime

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/distribution/reference"
)

// Runtime runs the containers of the pods bound to one node. Every method
// that does I/O takes a context and bounds itself with a timeout of its own
// as well; implementations are safe for concurrent use.
type Runtime interface {
	// PullImage fetches ref from its registry. References are normalised
	// as Docker does ("nginx:1.25" is "docker.io/library/nginx:1.25"), and
	// Image.Ref is the normalised form; GetImage and CreateContainer accept
	// either. PullImage fetches (unless every blob is already
	// present), unpacks it for containers, and returns its digest. Errors
	// match ErrImagePull, and ErrImageNotFound too when the registry does not
	// know the reference; ReasonOf gives the cause for the pod's status.
	PullImage(ctx context.Context, ref string, opts PullOptions) (Image, error)
	// GetImage returns an image already on the node, or an error matching
	// ErrImageNotFound, so the agent pulls only what is missing.
	GetImage(ctx context.Context, ref string) (Image, error)
	// ImportArchive loads every image of an OCI image layout tarball (as
	// node images preload them) and unpacks it; images are named by the
	// archive's ref-name annotations.
	ImportArchive(ctx context.Context, path string) ([]Image, error)

	// CreateContainer makes a container from an image already on the node
	// (ErrImageNotFound otherwise) and returns its ID. Nothing runs yet.
	CreateContainer(ctx context.Context, spec ContainerSpec) (string, error)
	// StartContainer starts a created container's process and returns once
	// it runs. Starting a running container does nothing; starting an
	// exited one runs its process anew. A command that does not exist fails here with an error
	// matching ErrContainerCreate and reason ReasonExecutableNotFound.
	StartContainer(ctx context.Context, id string) error
	// StopContainer sends the container's stop signal (SIGTERM unless the
	// image names another), waits up to grace for the process to exit, then
	// sends SIGKILL and waits for the exit. Stopping a container that does
	// not run is not an error.
	StopContainer(ctx context.Context, id string, grace time.Duration) error
	// RemoveContainer kills the container's process if it still runs, then
	// deletes its task, the container and its root filesystem snapshot. Log
	// files stay. Removing a container that does not exist is not an error,
	// so the agent's clean-up can be repeated.
	RemoveContainer(ctx context.Context, id string) error
	// ContainerStatus reports the state of one container, or an error
	// matching ErrNotFound.
	ContainerStatus(ctx context.Context, id string) (State, error)
	// ListContainers reports every container of this runtime's namespace
	// with its Meta and state, so an agent that restarted adopts what runs.
	ListContainers(ctx context.Context) ([]ContainerInfo, error)
	// Exec runs cmd inside a running container (as exec probes do), waits
	// up to timeout, and returns its exit code and combined output (at most
	// MaxExecOutput bytes). A command that outlives timeout is killed and
	// the error matches ErrExecTimeout.
	Exec(ctx context.Context, id string, cmd []string, timeout time.Duration) (exitCode int, output []byte, err error)

	// Events delivers one ExitEvent each time a started container's process
	// exits, including containers adopted after a restart and exits the
	// agent caused itself (StopContainer, RemoveContainer), so the agent can
	// restart with back-off without polling. A process that exited while no
	// Runtime was open is not reported here: ListContainers shows it Exited. Events are never dropped while
	// the runtime is open; the channel is closed by Close. Every call returns
	// the same channel: it has one reader, the agent's sync loop.
	Events() <-chan ExitEvent
	// Version reports the runtime's name and version, for the Node status.
	Version(ctx context.Context) (Version, error)
	// Close stops watching tasks, closes Events and releases the
	// connection. Containers keep running. Close may be called twice.
	Close() error
}

// MaxExecOutput bounds the output Exec keeps: probes need a reason, not a
// transcript.
const MaxExecOutput = 16 << 10

// PullOptions says how to reach registries.
type PullOptions struct {
	// PlainHTTP lists registry hosts ("host" or "host:port") spoken to over
	// plain HTTP instead of HTTPS, such as a test registry on loopback.
	PlainHTTP []string
	// Credentials are the username and password for each registry host
	// that needs them ("docker.io" covers Docker Hub). They are sent to that
	// host only, and never logged.
	Credentials map[string]Credential
}

// Credential is a username and password for one registry.
type Credential struct {
	// Username for the registry.
	Username string
	// Password or token for the registry; secret.
	Password string
}

// Image is an image on the node.
type Image struct {
	// Ref is the name the image is known by, e.g. "registry:5000/team/web:v2".
	Ref string
	// Digest is the content digest of the image's manifest or index
	// ("sha256:..."), reported as the container's ImageID.
	Digest string
}

// Meta ties a container to its pod. Runtimes store it with the container,
// so an agent that restarted can tell which pod each container belongs to.
type Meta struct {
	// PodNamespace is the pod's namespace.
	PodNamespace string
	// PodName is the pod's name.
	PodName string
	// PodUID is the pod's UID: pods with the same name are told apart by it.
	PodUID string
	// ContainerName is the container's name within the pod.
	ContainerName string
	// RestartCount is how many times the agent restarted this container of
	// the pod before creating this one.
	RestartCount int32
}

// ContainerSpec is everything needed to create one container.
type ContainerSpec struct {
	// Meta identifies the container's pod and place in it.
	Meta Meta
	// Image is the reference of an image already on the node (pulled or
	// imported).
	Image string
	// Command replaces the image's entrypoint when set (and then the image's
	// cmd is ignored, as in Kubernetes).
	Command []string
	// Args replaces the image's cmd when set.
	Args []string
	// Env adds to or overrides the image's environment, "NAME=value".
	Env []string
	// WorkingDir replaces the image's working directory when set.
	WorkingDir string
	// Resources are the limits the kernel enforces.
	Resources Resources
	// NetNSPath is the pod's network namespace (e.g. /var/run/netns/<id>),
	// created by the pod network; the container joins it. Empty gives the
	// container a private network namespace with loopback only.
	NetNSPath string
	// Hostname is the container's hostname (the pod's name).
	Hostname string
	// ResolvConfPath is bind-mounted read-only over /etc/resolv.conf when set.
	ResolvConfPath string
	// HostsPath is bind-mounted read-only over /etc/hosts when set.
	HostsPath string
	// LogPath is the file that receives the process's stdout and stderr.
	// The runtime rotates it by size (LogPath.1 is the newest old part).
	// Empty discards the output.
	LogPath string
	// Labels are extra labels to store with the container.
	Labels map[string]string
}

// Resources are a container's kernel-enforced limits; zero means none.
type Resources struct {
	// CPUMillis is the CPU limit in thousandths of a CPU, enforced as a CFS
	// quota per 100 ms period.
	CPUMillis int64
	// CPURequestMillis is the CPU request, turned into a relative weight
	// (cpu.shares: 1024 per CPU), so a busy node shares CPU by request.
	CPURequestMillis int64
	// MemoryBytes is the memory limit; the kernel kills the container when
	// it needs more (reported as OOMKilled).
	MemoryBytes int64
}

// Status is where a container is in its life.
type Status string

// The container statuses.
const (
	// StatusCreated: the container exists but its process never started.
	StatusCreated Status = "Created"
	// StatusRunning: the process runs.
	StatusRunning Status = "Running"
	// StatusExited: the process exited; ExitCode says how.
	StatusExited Status = "Exited"
	// StatusUnknown: the runtime cannot tell (its shim is gone, say).
	StatusUnknown Status = "Unknown"
)

// State is what a container is doing.
type State struct {
	// Status is where the container is in its life.
	Status Status
	// PID is the process ID on the node while it runs.
	PID uint32
	// ExitCode is the process's exit status once exited; 128+N when signal
	// N killed it.
	ExitCode int32
	// StartedAt is when the process started; zero before.
	StartedAt time.Time
	// FinishedAt is when the process exited; zero before.
	FinishedAt time.Time
	// OOMKilled is true when the kernel killed the process for exceeding
	// its memory limit (as far as the runtime can tell).
	OOMKilled bool
}

// ContainerInfo describes one container for ListContainers.
type ContainerInfo struct {
	// ID is the runtime's container ID.
	ID string
	// Meta ties the container to its pod.
	Meta Meta
	// Image is the reference the container was created from.
	Image string
	// ImageDigest is the digest of that image at creation.
	ImageDigest string
	// LogPath is where its output goes; empty when discarded.
	LogPath string
	// Labels are the extra labels given at creation.
	Labels map[string]string
	// CreatedAt is when the container was created.
	CreatedAt time.Time
	// State is its current state.
	State State
}

// ExitEvent reports that a container's process exited.
type ExitEvent struct {
	// ID is the container's ID.
	ID string
	// Meta ties the container to its pod.
	Meta Meta
	// ExitCode is the exit status; 128+N when signal N killed it.
	ExitCode int32
	// ExitedAt is when the process exited.
	ExitedAt time.Time
	// OOMKilled is true when the kernel killed it for exceeding its memory
	// limit.
	OOMKilled bool
}

// Version names the runtime behind the interface.
type Version struct {
	// Name of the runtime, e.g. "containerd".
	Name string
	// Version of the runtime's daemon, e.g. "v2.4.2" or "1.6.20~ds1".
	Version string
	// Revision is the daemon's source revision, when it reports one.
	Revision string
}

// RunContainer creates and starts one container and returns its ID once the
// process runs: the unit a benchmark times against `ctr run`. When start
// fails it removes the container again, so nothing is left behind.
func RunContainer(ctx context.Context, rt Runtime, spec ContainerSpec) (string, error) {
	id, err := rt.CreateContainer(ctx, spec)
	if err != nil {
		return "", err
	}
	if err := rt.StartContainer(ctx, id); err != nil {
		if rerr := rt.RemoveContainer(context.WithoutCancel(ctx), id); rerr != nil {
			return "", errors.Join(err, rerr)
		}
		return "", err
	}
	return id, nil
}

// NormalizeImageRef returns ref in the fully qualified form runtimes name
// images by, as Docker normalises it: "nginx" is
// "docker.io/library/nginx:latest", "team/web:v2" is
// "docker.io/team/web:v2", and a reference with a registry host stays as
// it is. Compare image references only in this form.
func NormalizeImageRef(ref string) (string, error) {
	named, err := reference.ParseDockerRef(ref)
	if err != nil {
		return "", fmt.Errorf("image reference %q: %w", ref, err)
	}
	return named.String(), nil
}
