package api

import "time"

// Deployment keeps a number of identical pods running and replaces them by
// a rolling update when its template changes.
type Deployment struct {
	TypeMeta `json:",inline"`
	// Metadata is the deployment's metadata.
	Metadata ObjectMeta `json:"metadata"`
	// Spec is the desired state.
	Spec DeploymentSpec `json:"spec"`
	// Status is the rollout's progress, written by the deployment controller.
	Status DeploymentStatus `json:"status,omitempty"`
}

// DeploymentSpec is what a deployment should run and how changes roll out.
type DeploymentSpec struct {
	// Replicas is the number of pods. Default 1.
	Replicas *int32 `json:"replicas,omitempty"`
	// Selector picks the deployment's pods by label; it must match the
	// template's labels. Defaults to the template's labels.
	Selector map[string]string `json:"selector,omitempty"`
	// Template is the pod every replica is made from.
	Template PodTemplate `json:"template"`
	// Strategy says how a template change rolls out.
	Strategy DeploymentStrategy `json:"strategy,omitempty"`
	// MinReadySeconds is how long a new pod must be Ready before it counts
	// as available. Default 0.
	MinReadySeconds int32 `json:"minReadySeconds,omitempty"`
	// ProgressDeadlineSeconds is how long a rollout may go without progress
	// before it fails. Default 600.
	ProgressDeadlineSeconds *int32 `json:"progressDeadlineSeconds,omitempty"`
	// RevisionHistoryLimit is how many old Revisions are kept for rollback.
	// Default 10.
	RevisionHistoryLimit *int32 `json:"revisionHistoryLimit,omitempty"`
	// Paused stops the rollout where it is; set by the Pause failure policy
	// or by a user, cleared by a user (or by a template change).
	Paused bool `json:"paused,omitempty"`
}

// PodTemplate is the part of a pod a deployment stamps out.
type PodTemplate struct {
	// Metadata holds the pods' labels and annotations.
	Metadata TemplateMeta `json:"metadata,omitempty"`
	// Spec is the pods' spec.
	Spec PodSpec `json:"spec"`
}

// TemplateMeta is the metadata a template gives its pods.
type TemplateMeta struct {
	// Labels of the pods; the deployment's selector must match them.
	Labels map[string]string `json:"labels,omitempty"`
	// Annotations of the pods.
	Annotations map[string]string `json:"annotations,omitempty"`
}

// DeploymentStrategy bounds a rolling update.
type DeploymentStrategy struct {
	// Type is RollingUpdate (the only type for now).
	Type string `json:"type,omitempty"`
	// MaxSurge is how many pods above replicas may exist during the
	// update: a number or a percentage ("25%", rounded up). Default 25%.
	MaxSurge *IntOrString `json:"maxSurge,omitempty"`
	// MaxUnavailable is how many pods below replicas may be unavailable: a
	// number or a percentage (rounded down). Default 25%.
	MaxUnavailable *IntOrString `json:"maxUnavailable,omitempty"`
	// OnFailure is what happens when the progress deadline passes:
	// Rollback (default) returns to the last good revision, Pause stops
	// where the rollout is.
	OnFailure FailurePolicy `json:"onFailure,omitempty"`
}

// StrategyRollingUpdate is the only strategy type.
const StrategyRollingUpdate = "RollingUpdate"

// FailurePolicy is what a failed rollout does.
type FailurePolicy string

// The failure policies.
const (
	FailureRollback FailurePolicy = "Rollback"
	FailurePause    FailurePolicy = "Pause"
)

// FailurePolicies lists the allowed failure policies.
var FailurePolicies = []FailurePolicy{FailureRollback, FailurePause}

// RolloutState is the outcome of a deployment's latest rollout.
type RolloutState string

// The rollout states. Only Complete means the spec is live.
const (
	RolloutProgressing RolloutState = "Progressing"
	RolloutComplete    RolloutState = "Complete"
	RolloutFailed      RolloutState = "Failed"
	RolloutRolledBack  RolloutState = "RolledBack"
	RolloutPaused      RolloutState = "Paused"
)

// DeploymentStatus is the rollout's progress.
type DeploymentStatus struct {
	// ObservedGeneration is the generation the controller acted on;
	// status describes the spec only when it equals metadata.generation.
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Replicas counts the deployment's pods, of every revision.
	Replicas int32 `json:"replicas"`
	// UpdatedReplicas counts pods of the desired revision.
	UpdatedReplicas int32 `json:"updatedReplicas"`
	// ReadyReplicas counts Ready pods.
	ReadyReplicas int32 `json:"readyReplicas"`
	// AvailableReplicas counts pods Ready for at least minReadySeconds.
	AvailableReplicas int32 `json:"availableReplicas"`
	// UnavailableReplicas is replicas minus available, never negative.
	UnavailableReplicas int32 `json:"unavailableReplicas"`
	// DesiredRevision is the revision number the spec's template maps to.
	DesiredRevision int64 `json:"desiredRevision,omitempty"`
	// LiveRevision is the last revision that completed a rollout: what
	// serves when the desired one is not yet (or never) available.
	LiveRevision int64 `json:"liveRevision,omitempty"`
	// RolloutState is the state of the latest rollout.
	RolloutState RolloutState `json:"rolloutState,omitempty"`
	// Message explains the state, naming failing pods and why.
	Message string `json:"message,omitempty"`
	// LastProgressTime is when the rollout last made progress; the progress
	// deadline counts from it.
	LastProgressTime *time.Time `json:"lastProgressTime,omitempty"`
	// FailedRevision is the revision whose rollout failed, when the state
	// is Failed, RolledBack or Paused by the failure policy.
	FailedRevision int64 `json:"failedRevision,omitempty"`
	// Conditions mirror the state for tools that read conditions.
	Conditions []Condition `json:"conditions,omitempty"`
}

// Revision is an immutable snapshot of a deployment's pod template; rolling
// back means making an old revision desired again.
type Revision struct {
	TypeMeta `json:",inline"`
	// Metadata is the revision's metadata; it is owned by its deployment
	// and labelled with berth.io/deployment and berth.io/template-hash.
	Metadata ObjectMeta `json:"metadata"`
	// Deployment names the owning deployment.
	Deployment string `json:"deployment"`
	// Number orders revisions: a newer rollout has a higher number.
	Number int64 `json:"number"`
	// TemplateHash is the hash of the template, also the pods' label
	// berth.io/template-hash.
	TemplateHash string `json:"templateHash"`
	// Template is the pod template of this revision.
	Template PodTemplate `json:"template"`
}

// Labels berth sets on objects it makes.
const (
	// LabelTemplateHash marks a deployment's pods and revisions with the
	// hash of their template.
	LabelTemplateHash = "berth.io/template-hash"
	// LabelDeployment marks a revision with its deployment's name.
	LabelDeployment = "berth.io/deployment"
	// LabelHostname is the node label carrying the node's name.
	LabelHostname = "berth.io/hostname"
	// AnnotationRevision carries the revision number on a deployment's pods.
	AnnotationRevision = "berth.io/revision"
)

// RollbackRequest asks for a deployment to roll back to a revision.
type RollbackRequest struct {
	// Revision to return to; 0 means the live revision before the current
	// desired one.
	Revision int64 `json:"revision"`
}
