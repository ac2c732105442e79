package framework

import (
	"fmt"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64default"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/mapplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/berth-io/berth/control/api"
)

// oneOfDoc renders the allowed values of a field for its description,
// from the same table the validator uses.
func oneOfDoc[T ~string](values []T) string {
	parts := make([]string, len(values))
	for i, v := range values {
		parts[i] = "`" + string(v) + "`"
	}
	return "One of " + strings.Join(parts, ", ") + "."
}

func strs[T ~string](values []T) []string {
	out := make([]string, len(values))
	for i, v := range values {
		out[i] = string(v)
	}
	return out
}

// oneOf validates a string attribute against an api table.
func oneOf[T ~string](values []T) []validator.String {
	return []validator.String{stringvalidator.OneOf(strs(values)...)}
}

func defaultDoc(v any) string { return fmt.Sprintf(" Default `%v`.", v) }

// metadataAttributes are name, namespace, labels and annotations, shared by
// every workload resource; replace says which of them force a new object.
func metadataAttributes(kind string, labelsReplace bool) map[string]schema.Attribute {
	mapMods := []planmodifier.Map{}
	if labelsReplace {
		mapMods = append(mapMods, mapplanmodifier.RequiresReplace())
	}
	return map[string]schema.Attribute{
		"id": schema.StringAttribute{
			Computed:            true,
			MarkdownDescription: "`namespace/name` of the " + kind + "; the import ID.",
			PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
		},
		"name": schema.StringAttribute{
			Required:            true,
			MarkdownDescription: fmt.Sprintf("Name of the %s: a DNS label (lower-case letters, digits and `-`, at most %d characters). Changing it creates a new %s.", kind, api.MaxNameLength, kind),
			PlanModifiers:       []planmodifier.String{stringplanmodifier.RequiresReplace()},
		},
		"namespace": schema.StringAttribute{
			Optional:            true,
			Computed:            true,
			Default:             stringdefault.StaticString(api.DefaultNamespace),
			MarkdownDescription: "Namespace of the " + kind + "." + defaultDoc(api.DefaultNamespace) + " Changing it creates a new " + kind + ".",
			PlanModifiers:       []planmodifier.String{stringplanmodifier.RequiresReplace()},
		},
		"labels": schema.MapAttribute{
			ElementType:         types.StringType,
			Optional:            true,
			MarkdownDescription: "Labels of the " + kind + " (keys: optional DNS-subdomain prefix and `/`, then a name of at most 63 characters).",
			PlanModifiers:       mapMods,
		},
		"annotations": schema.MapAttribute{
			ElementType:         types.StringType,
			Optional:            true,
			MarkdownDescription: "Free-form annotations of the " + kind + ", for tools.",
			PlanModifiers:       mapMods,
		},
	}
}

func int64Default(v int64) schema.Int64Attribute {
	return schema.Int64Attribute{Optional: true, Computed: true, Default: int64default.StaticInt64(v)}
}

func probeSchema(what string) schema.SingleNestedAttribute {
	port := func(desc string) schema.StringAttribute {
		return schema.StringAttribute{Required: true, MarkdownDescription: desc + ": a number (`8080`) or the name of one of the container's ports."}
	}
	ints := map[string]struct {
		def  int32
		desc string
	}{
		"initial_delay_seconds": {0, "Seconds to wait after the container starts before the first check."},
		"period_seconds":        {api.DefaultProbePeriodSeconds, "Seconds between checks."},
		"timeout_seconds":       {api.DefaultProbeTimeoutSeconds, "Seconds each check may take."},
		"success_threshold":     {api.DefaultProbeSuccessThreshold, "Successes in a row that make the probe pass."},
		"failure_threshold":     {api.DefaultProbeFailureThreshold, "Failures in a row that make the probe fail."},
	}
	attrs := map[string]schema.Attribute{
		"http_get": schema.SingleNestedAttribute{
			Optional:            true,
			MarkdownDescription: "An HTTP GET against the pod; a 2xx or 3xx answer passes.",
			Attributes: map[string]schema.Attribute{
				"path": schema.StringAttribute{Optional: true, Computed: true, Default: stringdefault.StaticString("/"),
					MarkdownDescription: "Path to request; must start with `/`." + defaultDoc("/")},
				"port": port("Port to connect to"),
				"scheme": schema.StringAttribute{Optional: true, Computed: true, Default: stringdefault.StaticString("HTTP"),
					Validators:          []validator.String{stringvalidator.OneOf("HTTP", "HTTPS")},
					MarkdownDescription: "One of `HTTP`, `HTTPS`." + defaultDoc("HTTP")},
			},
		},
		"tcp_socket": schema.SingleNestedAttribute{
			Optional:            true,
			MarkdownDescription: "A TCP connection to the pod; passes when it opens.",
			Attributes:          map[string]schema.Attribute{"port": port("Port to connect to")},
		},
		"exec": schema.SingleNestedAttribute{
			Optional:            true,
			MarkdownDescription: "A command run inside the container; passes when it exits 0. No shell is involved.",
			Attributes: map[string]schema.Attribute{
				"command": schema.ListAttribute{ElementType: types.StringType, Required: true, MarkdownDescription: "The command and its arguments."},
			},
		},
	}
	for name, d := range ints {
		a := int64Default(int64(d.def))
		a.MarkdownDescription = d.desc + defaultDoc(d.def)
		attrs[name] = a
	}
	return schema.SingleNestedAttribute{
		Optional:            true,
		MarkdownDescription: what + " Set exactly one of `http_get`, `tcp_socket` and `exec`.",
		Attributes:          attrs,
	}
}

func quantityMap(desc string) schema.MapAttribute {
	return schema.MapAttribute{
		ElementType: QuantityType{},
		Optional:    true,
		MarkdownDescription: desc + " Keys `cpu` (cores or millicores: `0.5`, `500m`) and `memory` (bytes with binary or decimal " +
			"suffixes: `128Mi`, `1G`). Equal amounts spelt differently (`0.5` and `500m`, `1024Mi` and `1Gi`) are the same value.",
	}
}

// containersAttribute is the containers list shared by berth_pod and a
// deployment's template.
func containersAttribute() schema.ListNestedAttribute {
	return schema.ListNestedAttribute{
		Required:            true,
		MarkdownDescription: "Containers of the pod; at least one.",
		NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
			"name": schema.StringAttribute{Required: true, MarkdownDescription: "Name of the container, unique within the pod (a DNS label)."},
			"image": schema.StringAttribute{Required: true,
				MarkdownDescription: "OCI image reference, for example `registry.example:5000/team/web:v2`."},
			"command": schema.ListAttribute{ElementType: types.StringType, Optional: true,
				MarkdownDescription: "Replaces the image's entrypoint."},
			"args": schema.ListAttribute{ElementType: types.StringType, Optional: true,
				MarkdownDescription: "Replaces the image's cmd."},
			"env": schema.ListNestedAttribute{
				Optional:            true,
				MarkdownDescription: "Environment variables.",
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"name":  schema.StringAttribute{Required: true, MarkdownDescription: "Name of the variable."},
					"value": schema.StringAttribute{Required: true, MarkdownDescription: "Value of the variable."},
				}},
			},
			"ports": schema.ListNestedAttribute{
				Optional:            true,
				MarkdownDescription: "Ports the container listens on; services and probes refer to them by number or name.",
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"name": schema.StringAttribute{Optional: true,
						MarkdownDescription: "Name services and probes may use instead of the number (a DNS label of at most 15 characters)."},
					"container_port": schema.Int64Attribute{Required: true, MarkdownDescription: "Port number inside the pod, 1-65535."},
					"protocol": schema.StringAttribute{Optional: true, Computed: true, Default: stringdefault.StaticString(string(api.ProtocolTCP)),
						Validators:          oneOf(api.Protocols),
						MarkdownDescription: oneOfDoc(api.Protocols) + defaultDoc(api.ProtocolTCP)},
				}},
			},
			"resources": schema.SingleNestedAttribute{
				Optional:            true,
				MarkdownDescription: "CPU and memory the container asks for and may use.",
				Attributes: map[string]schema.Attribute{
					"requests": quantityMap("Reserved on the node by the scheduler; a limit without a request reserves the limit."),
					"limits":   quantityMap("The most the container may use, enforced through cgroups."),
				},
			},
			"readiness_probe": probeSchema("Decides whether the pod receives service traffic and counts as available in a rollout."),
			"liveness_probe":  probeSchema("Restarts the container when it fails."),
		}},
	}
}

// podSpecAttributes are the pod-spec attributes shared by berth_pod and a
// deployment's template; replace forces a new object on any change.
func podSpecAttributes(replace bool, restartPolicyDoc string) map[string]schema.Attribute {
	containers := containersAttribute()
	restart := schema.StringAttribute{Optional: true, Computed: true, Default: stringdefault.StaticString(string(api.RestartAlways)),
		Validators:          oneOf(api.RestartPolicies),
		MarkdownDescription: "When exited containers are started again. " + oneOfDoc(api.RestartPolicies) + defaultDoc(api.RestartAlways) + restartPolicyDoc}
	selector := schema.MapAttribute{ElementType: types.StringType, Optional: true,
		MarkdownDescription: "Limits the nodes the pod may run on to those carrying all these labels."}
	grace := int64Default(api.DefaultTerminationGracePeriodSeconds)
	grace.MarkdownDescription = "Seconds between SIGTERM and SIGKILL when the pod stops, 0-3600." + defaultDoc(api.DefaultTerminationGracePeriodSeconds)
	if replace {
		// containers is replaced from the resource's ModifyPlan, after
		// equal quantities have kept their prior spelling.
		restart.PlanModifiers = []planmodifier.String{stringplanmodifier.RequiresReplace()}
		selector.PlanModifiers = []planmodifier.Map{mapplanmodifier.RequiresReplace()}
		grace.PlanModifiers = []planmodifier.Int64{int64planmodifier.RequiresReplace()}
	}
	return map[string]schema.Attribute{
		"containers":                       containers,
		"restart_policy":                   restart,
		"node_selector":                    selector,
		"termination_grace_period_seconds": grace,
	}
}
