package framework

import (
	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

// podSpecModel is the part of a pod spec that berth_pod and a deployment's
// template share.
type podSpecModel struct {
	Containers                    []containerModel `tfsdk:"containers"`
	RestartPolicy                 types.String     `tfsdk:"restart_policy"`
	NodeSelector                  types.Map        `tfsdk:"node_selector"`
	TerminationGracePeriodSeconds types.Int64      `tfsdk:"termination_grace_period_seconds"`
}

type containerModel struct {
	Name           types.String         `tfsdk:"name"`
	Image          types.String         `tfsdk:"image"`
	Command        types.List           `tfsdk:"command"`
	Args           types.List           `tfsdk:"args"`
	Env            []envModel           `tfsdk:"env"`
	Ports          []containerPortModel `tfsdk:"ports"`
	Resources      *resourcesModel      `tfsdk:"resources"`
	ReadinessProbe *probeModel          `tfsdk:"readiness_probe"`
	LivenessProbe  *probeModel          `tfsdk:"liveness_probe"`
}

type envModel struct {
	Name  types.String `tfsdk:"name"`
	Value types.String `tfsdk:"value"`
}

type containerPortModel struct {
	Name          types.String `tfsdk:"name"`
	ContainerPort types.Int64  `tfsdk:"container_port"`
	Protocol      types.String `tfsdk:"protocol"`
}

type resourcesModel struct {
	Requests types.Map `tfsdk:"requests"`
	Limits   types.Map `tfsdk:"limits"`
}

type probeModel struct {
	HTTPGet             *httpGetModel `tfsdk:"http_get"`
	TCPSocket           *portModel    `tfsdk:"tcp_socket"`
	Exec                *execModel    `tfsdk:"exec"`
	InitialDelaySeconds types.Int64   `tfsdk:"initial_delay_seconds"`
	PeriodSeconds       types.Int64   `tfsdk:"period_seconds"`
	TimeoutSeconds      types.Int64   `tfsdk:"timeout_seconds"`
	SuccessThreshold    types.Int64   `tfsdk:"success_threshold"`
	FailureThreshold    types.Int64   `tfsdk:"failure_threshold"`
}

type httpGetModel struct {
	Path   types.String `tfsdk:"path"`
	Port   types.String `tfsdk:"port"`
	Scheme types.String `tfsdk:"scheme"`
}

type portModel struct {
	Port types.String `tfsdk:"port"`
}

type execModel struct {
	Command types.List `tfsdk:"command"`
}

// podModel is berth_pod.
type podModel struct {
	ID          types.String `tfsdk:"id"`
	Name        types.String `tfsdk:"name"`
	NamePrefix  types.String `tfsdk:"name_prefix"`
	Namespace   types.String `tfsdk:"namespace"`
	Labels      types.Map    `tfsdk:"labels"`
	Annotations types.Map    `tfsdk:"annotations"`
	podSpecModel
	WaitForReady    types.Bool     `tfsdk:"wait_for_ready"`
	UID             types.String   `tfsdk:"uid"`
	NodeName        types.String   `tfsdk:"node_name"`
	PodIP           types.String   `tfsdk:"pod_ip"`
	Phase           types.String   `tfsdk:"phase"`
	ResourceVersion types.Int64    `tfsdk:"resource_version"`
	Timeouts        timeouts.Value `tfsdk:"timeouts"`
}

// templateModel is a deployment's pod template.
type templateModel struct {
	Labels      types.Map `tfsdk:"labels"`
	Annotations types.Map `tfsdk:"annotations"`
	podSpecModel
}

type strategyModel struct {
	MaxSurge       types.String `tfsdk:"max_surge"`
	MaxUnavailable types.String `tfsdk:"max_unavailable"`
	OnFailure      types.String `tfsdk:"on_failure"`
}

// deploymentModel is berth_deployment.
type deploymentModel struct {
	ID                      types.String   `tfsdk:"id"`
	Name                    types.String   `tfsdk:"name"`
	Namespace               types.String   `tfsdk:"namespace"`
	Labels                  types.Map      `tfsdk:"labels"`
	Annotations             types.Map      `tfsdk:"annotations"`
	Replicas                types.Int64    `tfsdk:"replicas"`
	Selector                types.Map      `tfsdk:"selector"`
	Template                *templateModel `tfsdk:"template"`
	Strategy                *strategyModel `tfsdk:"strategy"`
	MinReadySeconds         types.Int64    `tfsdk:"min_ready_seconds"`
	ProgressDeadlineSeconds types.Int64    `tfsdk:"progress_deadline_seconds"`
	RevisionHistoryLimit    types.Int64    `tfsdk:"revision_history_limit"`
	Paused                  types.Bool     `tfsdk:"paused"`
	WaitForRollout          types.Bool     `tfsdk:"wait_for_rollout"`
	LiveRevision            types.Int64    `tfsdk:"live_revision"`
	DesiredRevision         types.Int64    `tfsdk:"desired_revision"`
	RolloutState            types.String   `tfsdk:"rollout_state"`
	AvailableReplicas       types.Int64    `tfsdk:"available_replicas"`
	ReadyReplicas           types.Int64    `tfsdk:"ready_replicas"`
	Timeouts                timeouts.Value `tfsdk:"timeouts"`
}

type servicePortModel struct {
	Name       types.String `tfsdk:"name"`
	Protocol   types.String `tfsdk:"protocol"`
	Port       types.Int64  `tfsdk:"port"`
	TargetPort types.String `tfsdk:"target_port"`
	NodePort   types.Int64  `tfsdk:"node_port"`
}

// serviceModel is berth_service.
type serviceModel struct {
	ID          types.String       `tfsdk:"id"`
	Name        types.String       `tfsdk:"name"`
	Namespace   types.String       `tfsdk:"namespace"`
	Labels      types.Map          `tfsdk:"labels"`
	Annotations types.Map          `tfsdk:"annotations"`
	Type        types.String       `tfsdk:"type"`
	Selector    types.Map          `tfsdk:"selector"`
	Ports       []servicePortModel `tfsdk:"ports"`
	ClusterIP   types.String       `tfsdk:"cluster_ip"`
}

type nodeModel struct {
	Name            types.String `tfsdk:"name"`
	Ready           types.Bool   `tfsdk:"ready"`
	Addresses       types.List   `tfsdk:"addresses"`
	InternalIP      types.String `tfsdk:"internal_ip"`
	PodCIDR         types.String `tfsdk:"pod_cidr"`
	Labels          types.Map    `tfsdk:"labels"`
	NodeImageDigest types.String `tfsdk:"node_image_digest"`
	Version         types.String `tfsdk:"version"`
	Unschedulable   types.Bool   `tfsdk:"unschedulable"`
}

// nodesModel is the berth_nodes data source.
type nodesModel struct {
	ID       types.String `tfsdk:"id"`
	Selector types.Map    `tfsdk:"selector"`
	Nodes    []nodeModel  `tfsdk:"nodes"`
}

type endpointAddressModel struct {
	IP       types.String `tfsdk:"ip"`
	NodeName types.String `tfsdk:"node_name"`
	PodName  types.String `tfsdk:"pod_name"`
}

type endpointPortModel struct {
	Name     types.String `tfsdk:"name"`
	Port     types.Int64  `tfsdk:"port"`
	Protocol types.String `tfsdk:"protocol"`
}

// serviceEndpointsModel is the berth_service_endpoints data source.
type serviceEndpointsModel struct {
	ID        types.String           `tfsdk:"id"`
	Name      types.String           `tfsdk:"name"`
	Namespace types.String           `tfsdk:"namespace"`
	Addresses []endpointAddressModel `tfsdk:"addresses"`
	Ports     []endpointPortModel    `tfsdk:"ports"`
}
