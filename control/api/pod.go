package api

import "time"

// Pod is one or more containers that run together on one node and share a
// network address. A pod's spec never changes once created (except for the
// binding to a node, which the scheduler sets once): a change means a new pod.
type Pod struct {
	TypeMeta `json:",inline"`
	// Metadata is the pod's metadata.
	Metadata ObjectMeta `json:"metadata"`
	// Spec is what should run.
	Spec PodSpec `json:"spec"`
	// Status is what runs, as its node reports it.
	Status PodStatus `json:"status,omitempty"`
}

// PodSpec describes the containers of a pod and how they are run.
type PodSpec struct {
	// Containers run in the pod; at least one.
	Containers []Container `json:"containers"`
	// RestartPolicy says when a container that exited is started again.
	RestartPolicy RestartPolicy `json:"restartPolicy,omitempty"`
	// NodeSelector limits the nodes the pod may run on to those carrying
	// all these labels.
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`
	// NodeName is the node the pod is bound to; the scheduler sets it once.
	NodeName string `json:"nodeName,omitempty"`
	// TerminationGracePeriodSeconds is the time between SIGTERM and SIGKILL
	// when the pod stops. Default 30.
	TerminationGracePeriodSeconds *int64 `json:"terminationGracePeriodSeconds,omitempty"`
}

// RestartPolicy is when a pod's exited containers are restarted.
type RestartPolicy string

// The restart policies.
const (
	RestartAlways    RestartPolicy = "Always"
	RestartOnFailure RestartPolicy = "OnFailure"
	RestartNever     RestartPolicy = "Never"
)

// RestartPolicies lists the allowed restart policies, for validation and docs.
var RestartPolicies = []RestartPolicy{RestartAlways, RestartOnFailure, RestartNever}

// Container is one process tree of a pod, run from an OCI image.
type Container struct {
	// Name is unique within the pod and follows DNS label rules.
	Name string `json:"name"`
	// Image is an OCI image reference, for example
	// registry.example:5000/team/web:v2.
	Image string `json:"image"`
	// Command replaces the image's entrypoint when set.
	Command []string `json:"command,omitempty"`
	// Args replaces the image's cmd when set.
	Args []string `json:"args,omitempty"`
	// Env adds environment variables.
	Env []EnvVar `json:"env,omitempty"`
	// Ports the container listens on; services target them by number or name.
	Ports []ContainerPort `json:"ports,omitempty"`
	// Resources are the container's CPU and memory requests and limits.
	Resources ResourceRequirements `json:"resources,omitempty"`
	// ReadinessProbe decides whether the pod receives service traffic.
	ReadinessProbe *Probe `json:"readinessProbe,omitempty"`
	// LivenessProbe restarts the container when it fails.
	LivenessProbe *Probe `json:"livenessProbe,omitempty"`
}

// EnvVar is one environment variable of a container.
type EnvVar struct {
	// Name of the variable.
	Name string `json:"name"`
	// Value of the variable.
	Value string `json:"value"`
}

// ContainerPort is a port a container listens on.
type ContainerPort struct {
	// Name lets services refer to the port by name; optional.
	Name string `json:"name,omitempty"`
	// ContainerPort is the port number inside the pod, 1-65535.
	ContainerPort int32 `json:"containerPort"`
	// Protocol is TCP (default) or UDP.
	Protocol Protocol `json:"protocol,omitempty"`
}

// Protocol is a transport protocol.
type Protocol string

// The transport protocols.
const (
	ProtocolTCP Protocol = "TCP"
	ProtocolUDP Protocol = "UDP"
)

// Protocols lists the allowed protocols.
var Protocols = []Protocol{ProtocolTCP, ProtocolUDP}

// ResourceName names a resource a container can request.
type ResourceName string

// The resources the scheduler accounts for.
const (
	ResourceCPU    ResourceName = "cpu"
	ResourceMemory ResourceName = "memory"
	ResourcePods   ResourceName = "pods"
)

// ResourceList maps resources to quantities, for example
// {"cpu": "500m", "memory": "128Mi"}.
type ResourceList map[ResourceName]Quantity

// ResourceRequirements are what a container asks the scheduler for
// (Requests) and the most it may use (Limits).
type ResourceRequirements struct {
	// Requests are reserved on the node by the scheduler.
	Requests ResourceList `json:"requests,omitempty"`
	// Limits are enforced through cgroups.
	Limits ResourceList `json:"limits,omitempty"`
}

// Probe checks a container. Exactly one of HTTPGet, TCPSocket and Exec is set.
type Probe struct {
	// HTTPGet succeeds on a 2xx or 3xx answer.
	HTTPGet *HTTPGetAction `json:"httpGet,omitempty"`
	// TCPSocket succeeds when a connection opens.
	TCPSocket *TCPSocketAction `json:"tcpSocket,omitempty"`
	// Exec succeeds when the command exits 0 inside the container.
	Exec *ExecAction `json:"exec,omitempty"`
	// InitialDelaySeconds waits before the first check. Default 0.
	InitialDelaySeconds int32 `json:"initialDelaySeconds,omitempty"`
	// PeriodSeconds between checks. Default 10.
	PeriodSeconds int32 `json:"periodSeconds,omitempty"`
	// TimeoutSeconds per check. Default 1.
	TimeoutSeconds int32 `json:"timeoutSeconds,omitempty"`
	// SuccessThreshold is how many successes in a row make the probe pass.
	// Default 1.
	SuccessThreshold int32 `json:"successThreshold,omitempty"`
	// FailureThreshold is how many failures in a row make the probe fail.
	// Default 3.
	FailureThreshold int32 `json:"failureThreshold,omitempty"`
}

// HTTPGetAction is an HTTP GET against the pod.
type HTTPGetAction struct {
	// Path to request, default "/".
	Path string `json:"path,omitempty"`
	// Port number or name of a container port.
	Port IntOrString `json:"port"`
	// Scheme is HTTP (default) or HTTPS.
	Scheme string `json:"scheme,omitempty"`
}

// TCPSocketAction opens a TCP connection to the pod.
type TCPSocketAction struct {
	// Port number or name of a container port.
	Port IntOrString `json:"port"`
}

// ExecAction runs a command inside the container.
type ExecAction struct {
	// Command and its arguments; no shell is involved.
	Command []string `json:"command"`
}

// PodPhase is where a pod is in its life.
type PodPhase string

// The pod phases.
const (
	PodPending   PodPhase = "Pending"
	PodRunning   PodPhase = "Running"
	PodSucceeded PodPhase = "Succeeded"
	PodFailed    PodPhase = "Failed"
	PodUnknown   PodPhase = "Unknown"
)

// Pod condition types.
const (
	// PodScheduled is true once the pod is bound to a node.
	PodScheduled = "PodScheduled"
	// PodReady is true when every container is running and passes its
	// readiness probe: only ready pods receive service traffic.
	PodReady = "Ready"
)

// PodStatus is what the pod's node reports.
type PodStatus struct {
	// Phase is the pod's place in its life.
	Phase PodPhase `json:"phase,omitempty"`
	// Conditions include PodScheduled and Ready.
	Conditions []Condition `json:"conditions,omitempty"`
	// PodIP is the pod's address on the pod network.
	PodIP string `json:"podIP,omitempty"`
	// HostIP is the address of the pod's node.
	HostIP string `json:"hostIP,omitempty"`
	// StartTime is when the node accepted the pod.
	StartTime *time.Time `json:"startTime,omitempty"`
	// ContainerStatuses has one entry per container.
	ContainerStatuses []ContainerStatus `json:"containerStatuses,omitempty"`
	// Reason and Message explain a Pending or Failed phase.
	Reason string `json:"reason,omitempty"`
	// Message explains the phase to a person.
	Message string `json:"message,omitempty"`
	// ObservedGeneration is the generation the agent acted on.
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}

// ContainerStatus is the state of one container of a pod.
type ContainerStatus struct {
	// Name of the container.
	Name string `json:"name"`
	// Image the container runs.
	Image string `json:"image,omitempty"`
	// ImageID is the resolved image digest.
	ImageID string `json:"imageID,omitempty"`
	// ContainerID in the runtime.
	ContainerID string `json:"containerID,omitempty"`
	// Ready is true when the readiness probe passes (or there is none and
	// the container runs).
	Ready bool `json:"ready"`
	// RestartCount counts restarts.
	RestartCount int32 `json:"restartCount"`
	// State is the current state.
	State ContainerState `json:"state,omitempty"`
	// LastState is the previous state, for example the last termination.
	LastState ContainerState `json:"lastState,omitempty"`
}

// ContainerState is one of waiting, running or terminated.
type ContainerState struct {
	// Waiting is set while the container is not running, with why
	// (ImagePullBackOff, CrashLoopBackOff, ...).
	Waiting *ContainerStateWaiting `json:"waiting,omitempty"`
	// Running is set while it runs.
	Running *ContainerStateRunning `json:"running,omitempty"`
	// Terminated is set once it exited.
	Terminated *ContainerStateTerminated `json:"terminated,omitempty"`
}

// ContainerStateWaiting says why a container does not run yet.
type ContainerStateWaiting struct {
	// Reason is a CamelCase word, for example CrashLoopBackOff.
	Reason string `json:"reason,omitempty"`
	// Message explains it.
	Message string `json:"message,omitempty"`
}

// ContainerStateRunning says since when a container runs.
type ContainerStateRunning struct {
	// StartedAt is when the container started.
	StartedAt time.Time `json:"startedAt,omitempty"`
}

// ContainerStateTerminated describes how a container exited.
type ContainerStateTerminated struct {
	// ExitCode of the process.
	ExitCode int32 `json:"exitCode"`
	// Signal that killed it, if any.
	Signal int32 `json:"signal,omitempty"`
	// Reason is a CamelCase word (Completed, Error, OOMKilled).
	Reason string `json:"reason,omitempty"`
	// Message holds the last log lines of a failed container.
	Message string `json:"message,omitempty"`
	// StartedAt is when it started.
	StartedAt time.Time `json:"startedAt,omitempty"`
	// FinishedAt is when it exited.
	FinishedAt time.Time `json:"finishedAt,omitempty"`
}

// IsPodReady reports whether the pod's Ready condition is true.
func IsPodReady(p *Pod) bool {
	c := FindCondition(p.Status.Conditions, PodReady)
	return c != nil && c.Status == ConditionTrue
}

// PodReadySince returns when the pod last became Ready, and false when it
// is not Ready.
func PodReadySince(p *Pod) (time.Time, bool) {
	c := FindCondition(p.Status.Conditions, PodReady)
	if c == nil || c.Status != ConditionTrue {
		return time.Time{}, false
	}
	return c.LastTransitionTime, true
}

// IsPodTerminating reports whether deletion of the pod has begun.
func IsPodTerminating(p *Pod) bool { return p.Metadata.DeletionTimestamp != nil }

// IsPodFinished reports whether the pod's containers have all exited for
// good (Succeeded or Failed).
func IsPodFinished(p *Pod) bool {
	return p.Status.Phase == PodSucceeded || p.Status.Phase == PodFailed
}
